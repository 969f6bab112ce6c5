"""Context: one connection to one Tiled server (session, server info, credentials source)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..distributed._handles import ANONYMOUS, EnvVarCredential, SessionHandle
from ..transport import Limits, Session, Timeouts

__all__ = ["Context", "UNSET"]

API_PREFIX = "/api/v1"
_ROUTES = ("metadata", "search", "array/full", "array/block", "table/full", "table/partition",
           "container/full", "awkward/full", "awkward/buffers", "node/full", "distinct", "revisions")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def _split_api_key(uri: str) -> tuple[str, str | None]:
    """Remove ``api_key=`` from the query: keys travel in a header, never in URLs."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = [v for k, v in query if k == "api_key"]
    rest = [(k, v) for k, v in query if k != "api_key"]
    return urlunsplit(parts._replace(query=urlencode(rest))), (keys[-1] if keys else None)


def _parse_node_uri(uri: str) -> tuple[str, list[str]]:
    """``http://h/api/v1/metadata/a/b`` -> (``http://h/api/v1``, ["a", "b"])."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"Tiled URIs start with http:// or https://, not {uri!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URI {uri!r}")
    path = parts.path.rstrip("/")
    if API_PREFIX in path:
        prefix, _, rest = path.partition(API_PREFIX)
        rest = rest.strip("/")
        node: list[str] = []
        for route in _ROUTES:
            if rest == route or rest.startswith(route + "/"):
                node = [p for p in rest[len(route):].split("/") if p]
                break
        else:
            if rest:
                raise ValueError(f"cannot tell which node {uri!r} names: expected .../api/v1/metadata/<path>")
        base = urlunsplit((parts.scheme, parts.netloc, prefix + API_PREFIX, "", ""))
        return base, node
    base = urlunsplit((parts.scheme, parts.netloc, path + API_PREFIX, "", ""))
    return base, []


class Context:
    """A connection to one Tiled server.

    Arguments (as the reference client's):
        uri: the API base (``http://host:port/api/v1``) or the server root.
        headers: extra headers for every request.
        api_key: the API key; default ``TILED_API_KEY`` from the environment.
        cache: a response cache (not available yet: pass ``None`` or leave unset).
        timeout: seconds (one number), a mapping of phases, or ``Timeouts``.
        verify: TLS verification.
        max_connections: size of the connection pool.
        trust_env: honour proxy variables.

    Constructing it sends no request; the server's about document is fetched
    on first use of ``server_info``.
    """

    def __init__(
        self,
        uri: str,
        *,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        cache: Any = UNSET,
        timeout: Any = None,
        verify: Any = True,
        app: Any = None,
        raise_server_exceptions: bool = True,
        max_connections: int = 16,
        show_progress: Any = None,
        trust_env: bool = True,
        _http_client: Any = None,
    ) -> None:
        if cache not in (UNSET, None):
            raise NotImplementedError("the response cache is not part of tiled_core yet; pass cache=None")
        if app is not None:
            raise TypeError("use Context.from_app(app) to talk to an in-process server")
        uri, key_in_uri = _split_api_key(uri)
        base, _ = _parse_node_uri(uri)
        if api_key is None:
            api_key = key_in_uri
        source = ANONYMOUS
        if api_key is None and os.environ.get("TILED_API_KEY"):
            api_key = os.environ["TILED_API_KEY"]
            source = EnvVarCredential("TILED_API_KEY")
        elif api_key is not None:
            source = None  # given directly: never shipped to other processes
        headers = dict(headers or {})
        if any(k.lower() == "authorization" for k in headers):
            source = None  # a header credential is not shippable either
        limits = Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._session = Session(
            base,
            api_key=api_key,
            headers=headers,
            timeouts=Timeouts.coerce(timeout),
            limits=limits,
            verify=verify,
            trust_env=trust_env,
            http_client=_http_client,
        )
        self._handle = SessionHandle(self._session, source)
        self._server_info: dict | None = None
        self._closers: list = []

    # -- constructors ------------------------------------------------------
    @classmethod
    def from_any_uri(cls, uri: str, **kwargs) -> tuple["Context", list[str]]:
        """Accept a URI to any node; return ``(context, node_path_parts)``."""
        uri, key_in_uri = _split_api_key(uri)
        base, node = _parse_node_uri(uri)
        if key_in_uri and kwargs.get("api_key") is None:
            kwargs["api_key"] = key_in_uri
        return cls(base, **kwargs), node

    @classmethod
    def from_app(
        cls,
        app: Any,
        *,
        cache: Any = UNSET,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        api_key: Any = UNSET,
        raise_server_exceptions: bool = True,
        uri: str | None = None,
        max_connections: int = 16,
        show_progress: Any = None,
    ) -> "Context":
        """Talk to an ASGI app in this process (its lifespan runs until ``close()``).

        With ``api_key`` unset, the app's own single-user key is used if it has one.
        """
        from starlette.testclient import TestClient  # only for in-process apps

        if api_key is UNSET:
            api_key = _app_api_key(app)
        base = uri or "http://local-tiled-app"
        client = TestClient(app, base_url=base, raise_server_exceptions=raise_server_exceptions)
        client.__enter__()  # runs the lifespan: the catalog needs its startup
        context = cls(
            base.rstrip("/") + API_PREFIX if API_PREFIX not in base else base,
            headers=headers,
            api_key=api_key,
            cache=cache,
            timeout=timeout,
            max_connections=max_connections,
            _http_client=client,
        )
        context._closers.append(lambda: client.__exit__(None, None, None))
        return context

    # -- properties ----------------------------------------------------------
    @property
    def session(self) -> Session:
        """The transport session (HTTP, retries, pool)."""
        return self._session

    @property
    def session_handle(self) -> SessionHandle:
        """A picklable reference to the session, for Dask graphs."""
        return self._handle

    @property
    def api_uri(self) -> str:
        """The API base, ending with ``/``."""
        return self._session.base_url + "/"

    @property
    def cache(self) -> None:
        """The response cache (none yet)."""
        return None

    @property
    def server_info(self) -> dict:
        """The server's about document (formats, queries, authentication), fetched once."""
        if self._server_info is None:
            self._server_info = self._session.get_document("")
        return self._server_info

    def __repr__(self) -> str:
        return f"<Context {self.api_uri}>"

    def __getstate__(self):
        raise TypeError("a Context holds connections and credentials and cannot be pickled")

    def close(self) -> None:
        self._session.close()
        for closer in self._closers:
            closer()
        self._closers.clear()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _app_api_key(app: Any) -> str | None:
    """The single-user key an in-process Tiled app was built with, if any (no tiled import)."""
    for dependency, override in getattr(app, "dependency_overrides", {}).items():
        if getattr(dependency, "__name__", "") == "get_settings":
            return getattr(override(), "single_user_api_key", None) or None
    return None
