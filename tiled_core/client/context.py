"""Context: one connection to one Tiled server (session, server info, credentials source)."""

from __future__ import annotations

import collections.abc
import os
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from ..distributed._handles import ANONYMOUS, EnvVarCredential, SessionHandle, TokenFileCredential
from ..transport import (
    ApiKeyAuth,
    AuthenticationError,
    Cache,
    Conflict,
    FileTokenStore,
    Limits,
    MemoryTokenStore,
    Session,
    TokenAuth,
    Tokens,
    Timeouts,
    token_file_for,
)
from .login._credentials import Admin, CredentialRequests
from .login._password import CannotPrompt, choose_provider, password_login, terminal_password, terminal_username

__all__ = ["Context", "Admin", "UNSET", "CannotPrompt", "username_input", "password_input"]


# -- the prompt hooks ----------------------------------------------------------
# Module attributes, looked up at each login: a script (or a test) may replace
# them with its own callables, as with the reference client. A replaced hook is
# called whether or not there is a terminal; the defaults refuse to wait for
# input that cannot come (CannotPrompt).

def username_input() -> str:
    """Ask for a username at the terminal (CannotPrompt without a terminal).

    Replace ``tiled_core.client.context.username_input`` with a callable taking
    no arguments to supply the username another way.
    """
    return terminal_username()


def password_input() -> str:
    """Ask for a password at the terminal, without echo (CannotPrompt without a terminal).

    Replace ``tiled_core.client.context.password_input`` with a callable taking
    no arguments to supply the password another way.
    """
    return terminal_password()


_DEFAULT_USERNAME_INPUT = username_input
_DEFAULT_PASSWORD_INPUT = password_input


def _replaced_hooks():
    """The prompt hooks a script has put in place of the defaults (None where it has not)."""
    return (username_input if username_input is not _DEFAULT_USERNAME_INPUT else None,
            password_input if password_input is not _DEFAULT_PASSWORD_INPUT else None)

API_PREFIX = "/api/v1"
_ROUTES = ("metadata", "search", "array/full", "array/block", "table/full", "table/partition",
           "container/full", "awkward/full", "awkward/buffers", "node/full", "distinct", "revisions")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def _split_api_key(uri: str) -> tuple[str, str | None]:
    """Remove ``api_key=`` from the query: keys travel in a header, never in URLs."""
    if not isinstance(uri, str):
        raise TypeError(f"the URI must be a string like 'http://host:8000/api/v1', not {type(uri).__name__}")
    try:
        parts = urlsplit(uri.strip())
    except ValueError as error:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"malformed URI {uri!r}: {error}") from None
    _refuse_unmeant(uri, parts)
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = [v for k, v in query if k == "api_key"]
    return urlunsplit(parts._replace(query="")), (keys[-1] if keys else None)


def _refuse_unmeant(uri: str, parts) -> None:
    """Refuse what would otherwise be dropped or mangled silently (no part of the query is echoed)."""
    if any(ch.isspace() or not ch.isprintable() for ch in uri.strip()):
        raise ValueError(f"the URI {_shown(parts)!r} contains spaces or control characters; "
                         "percent-encode them (%20) if they belong to a key")
    if "#" in uri:
        raise ValueError(f"the URI {_shown(parts)!r} has a '#' fragment, which no Tiled request uses; remove it")
    if parts.query:
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        if names != ["api_key"] * len(names) or not names or "?" in parts.query:
            raise ValueError(f"the URI {_shown(parts)!r} has query parameters other than api_key=, which would be "
                             "ignored; remove them (give the node's path, and slices or formats in the call)")


def _shown(parts) -> str:
    """The URI without user info, query or fragment (they may hold a password or an API key)."""
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment=""))


def _parse_node_uri(uri: str) -> tuple[str, list[str]]:
    """``http://h/api/v1/metadata/a/b`` -> (``http://h/api/v1``, ["a", "b"])."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"Tiled URIs start with http:// or https://, not {uri!r}")
    if "@" in parts.netloc:
        # Not echoed: the part before "@" may be a password. Tiled takes no credentials in URLs.
        raise ValueError(f"a Tiled URI carries no user name or password (found 'user@' before {parts.hostname!r}); "
                         "use api_key= or log in")
    if not parts.hostname:
        raise ValueError(f"no host in URI {uri!r}")
    if any(ch.isspace() or not ch.isprintable() for ch in parts.netloc):
        raise ValueError(f"the host part of URI {uri!r} contains spaces or control characters")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"URI {uri!r} has an invalid port: expected a number from 1 to 65535")
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


class Context(CredentialRequests):
    """A connection to one Tiled server.

    Arguments (as the reference client's):
        uri: the API base (``http://host:port/api/v1``) or the server root.
        headers: extra headers for every request.
        api_key: the API key; default ``TILED_API_KEY`` from the environment.
        cache: a response ``Cache`` (or a mapping of its arguments); default none.
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
        cache = _coerce_cache(cache)
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
            cache=cache,
        )
        self._handle = SessionHandle(self._session, source)
        self._server_info: dict | None = None
        self._closers: list = []
        self._in_process = _http_client is not None and hasattr(_http_client, "app")

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

        With ``api_key`` unset, a single-user app's own key is used (one request
        for the server's about document tells single- from multi-user apps).
        """
        from starlette.testclient import TestClient  # only for in-process apps

        from ..transport._in_process import OneAtATime

        guess_key = api_key is UNSET
        api_key = None if guess_key else api_key
        base = uri or "http://local-tiled-app"
        client = TestClient(app, base_url=base, raise_server_exceptions=raise_server_exceptions)
        # One request at a time: the app's in-memory catalog cannot take concurrent ones (see OneAtATime).
        client._transport = OneAtATime(client._transport)
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
        if guess_key:
            # A single-user app (no login providers): use its own key. A multi-user one: no key.
            providers = (context.server_info.get("authentication") or {}).get("providers")
            context.api_key = None if providers else _app_api_key(app)
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
    def http_client(self) -> "httpx.Client":
        """The httpx client this context talks through, for scripting raw requests.

        It carries this context's credential (refreshed as needed; change it with
        ``api_key``, ``login`` or ``logout``), headers and connection pool, and
        its exchanges are seen by ``record_history()`` and ``show_logs()``. For
        ``from_app`` it is the in-process test client, whose base URL is the
        app's root (``http_client.get("/api/v1/")``); otherwise pass absolute
        URLs (``context.api_uri`` + path). Its requests are not retried: wrap
        them in ``tiled_core.client.utils.retry_context`` and ``handle_error``.
        """
        return self._session.http_client

    @property
    def api_key(self) -> str | None:
        """The API key in use (None without one). Set it to switch keys; set None to drop it."""
        return self._session.reveal_api_key()

    @api_key.setter
    def api_key(self, api_key: str | None) -> None:
        if api_key is None:
            if self._session.has_api_key:
                self._session.set_auth(None)
                self._handle = SessionHandle(self._session, ANONYMOUS)
            return
        self._session.set_auth(ApiKeyAuth(api_key))  # checks the key's form before any request
        self._handle = SessionHandle(self._session, None)  # given directly: never shipped to other processes

    @property
    def max_connections(self) -> int:
        """The size of the connection pool (``max_connections`` as given)."""
        return self._session.limits.max_connections

    @property
    def cache(self) -> Cache | None:
        """The response cache, or None."""
        return self._session.cache

    @cache.setter
    def cache(self, cache: Cache | None) -> None:
        self._session.cache = _coerce_cache(cache)

    @property
    def server_info(self) -> dict:
        """The server's about document (formats, queries, authentication), fetched once."""
        if self._server_info is None:
            self._server_info = self._session.get_document("")
        return self._server_info

    def __repr__(self) -> str:
        auth = self._session.auth
        who = ""
        if isinstance(auth, TokenAuth):
            name = auth.tokens.username if auth.tokens is not None else None
            who = f" (authenticated as '{name}')" if name else " (logged in)"
        elif self._session.has_credentials:
            who = " (authenticated)"
        else:
            who = " (unauthenticated)"
        return f"<Context {self.api_uri}{who}>"

    # -- login sessions --------------------------------------------------------
    @property
    def authenticated(self) -> bool:
        """True with an API key, a login session, custom auth or an Authorization header."""
        return self._session.has_credentials

    def _auth_links(self) -> dict:
        return (self.server_info.get("authentication") or {}).get("links") or {}

    def _token_file(self) -> FileTokenStore:
        return FileTokenStore(token_file_for(self.api_uri))

    def _install_tokens(self, store) -> None:
        # The server's own link if its about document is at hand; no request just for it.
        links = ((self._server_info or {}).get("authentication") or {}).get("links") or {}
        refresh = self._session.token_refresher(links.get("refresh_session") or "auth/session/refresh")
        self._session.set_auth(TokenAuth(store, refresh, server=self._session.base_url))
        source = TokenFileCredential(str(store.path)) if isinstance(store, FileTokenStore) else None
        self._handle = SessionHandle(self._session, source)

    def use_cached_tokens(self) -> bool:
        """Log in with the tokens an earlier login saved for this server, if there are any.

        Returns whether it did (no request is sent; a stale session shows on
        the next request, as LoginRequired).
        """
        return self._use_cached_tokens()

    def _use_cached_tokens(self) -> bool:
        """Use tokens a previous login saved for this server, if any (no request is sent)."""
        store = self._token_file()
        if self.authenticated or store.load() is None:
            return False
        self._install_tokens(store)
        return True

    def authenticate(
        self,
        *,
        remember_me: bool = True,
        username: str | None = None,
        password: str | None = None,
        provider: str | None = None,
    ) -> None:
        """Log in to a Tiled server with a username and password.

        What is not given is asked for at the terminal (the password without
        echo); without a terminal that is a ``CannotPrompt`` error, never a
        wait. Replaced ``username_input``/``password_input`` hooks of this
        module are asked instead, terminal or not. With ``remember_me`` the tokens are kept (mode 0600) in the
        user's cache directory, shared by this user's processes, so later
        connections log in by themselves; otherwise only in memory.

        Raises AuthenticationError for a wrong username or password, and
        RuntimeError when an API key is set or the server has no login.
        """
        if self._session.has_api_key:
            raise RuntimeError("An API key is set. Cannot use both an API key and a login session.")
        authentication = self.server_info.get("authentication") or {}
        spec = choose_provider(list(authentication.get("providers") or []), provider, self._session.base_url)
        ask_username, ask_password = _replaced_hooks()
        reply = password_login(self._session, spec, username=username, password=password,
                               server=self._session.base_url, ask_username=ask_username, ask_password=ask_password)
        tokens = Tokens.from_response(reply)
        file_store = self._token_file()
        if remember_me:
            store = file_store
        else:
            with file_store.locked():
                file_store.clear()  # do not leave an older session's tokens behind
            store = MemoryTokenStore()
        with store.locked():
            store.save(tokens)
        self._install_tokens(store)
        message = spec.get("confirmation_message")
        if message:
            print(message.format(id=tokens.username or username))

    # The reference client offers both names.
    login = authenticate

    def logout(self) -> None:
        """Log out of the current session (if any): revoke it on the server and forget its tokens.

        Idempotent. The tokens are forgotten here and in the token file even
        when the server cannot be told.
        """
        auth = self._session.auth
        if not isinstance(auth, TokenAuth):
            return
        tokens = auth.tokens or auth.store.load()
        try:
            if tokens is not None:
                self._session.send("POST", "auth/session/revoke", json={"refresh_token": tokens.refresh_token},
                                   authenticate=False)
        except (Conflict, AuthenticationError):
            pass  # already revoked or expired
        finally:
            auth.forget()
            self._forget_login()

    def _forget_login(self) -> None:
        """Stop using the login session here (its tokens stay wherever they are)."""
        self._session.set_auth(None)
        self._handle = SessionHandle(self._session, ANONYMOUS)

    def __getstate__(self):
        raise TypeError("a Context holds connections and credentials and cannot be pickled")

    def close(self) -> None:
        """Close the connections; later requests raise ClientClosed.

        For ``from_app`` this ends the app's lifespan (its shutdown runs) and,
        as with the reference client, the in-process client stays usable:
        later requests are still served by the app, each on its own.
        """
        for closer in self._closers:
            closer()
        self._closers.clear()
        if not self._in_process:
            self._session.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _coerce_cache(cache: Any) -> Cache | None:
    """``UNSET``/None -> no cache; a mapping -> ``Cache(**mapping)`` (as profiles give it); a Cache as is."""
    if cache is UNSET or cache is None:
        return None
    if isinstance(cache, Cache):
        return cache
    if isinstance(cache, collections.abc.Mapping):
        return Cache(**cache)
    raise TypeError(f"cache must be a tiled_core.client.cache.Cache (or a mapping of its arguments), not {type(cache).__name__}")


def _app_api_key(app: Any) -> str | None:
    """The single-user key an in-process Tiled app was built with, if any (no tiled import)."""
    for dependency, override in getattr(app, "dependency_overrides", {}).items():
        if getattr(dependency, "__name__", "") == "get_settings":
            return getattr(override(), "single_user_api_key", None) or None
    return None
