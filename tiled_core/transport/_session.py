"""The one object that talks HTTP: a pooled httpx.Client plus retries and checks.

Its parts: ``_request`` (building requests), ``_retry`` (the retry loop and its
policy), ``_response`` (statuses and bodies), ``_read_into`` (reads into a
caller's buffer: the bulk path, the stream, the cache), ``_bulk`` (the direct
read path).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx

from .._version import user_agent
from ._auth import ApiKeyAuth, TokenAuth
from ._cache import Cache, CacheSlot, cache_key
from ._config import Limits, RetryPolicy, Timeouts
from ._credentials import auth_hint, header_auth, identity
from ._history import note_exchange, observe, served_from_cache
from ._decode import JSON, MSGPACK, decode_document
from ._gate import FetchGate
from ._errors import ClientClosed, MalformedResponse, ServerError
from ._request import body_factory, check_headers, check_verify, data_headers, is_loopback, open_pools
from ._response import check_response, checked_chunks
from ._read_into import ReadInto
from ._retry import run_with_retries

__all__ = ["Session", "Params"]

Params = Sequence[tuple[str, Any]] | dict[str, Any] | None
T = TypeVar("T")
_DOCUMENT_ACCEPT = MSGPACK
_FORM = "application/x-www-form-urlencoded"


def _json_body(value: Any) -> bytes:
    import orjson

    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise TypeError(f"cannot encode the request body as JSON: {exc}") from None


class Session(ReadInto):
    """HTTP access to one Tiled server's API (``.../api/v1``).

    Arguments:
        base_url: the API base, e.g. ``http://127.0.0.1:8000/api/v1``.
        api_key: sent as ``Authorization: Apikey ...`` on every request.
        auth: another credential instead (``TokenAuth`` for a login session,
            or any ``httpx.Auth``); see also ``set_auth``.
        cache: a response ``Cache``: GETs of documents and data are
            revalidated by ETag and a ``304`` reuses the stored body.
        headers: extra headers for every request.
        timeouts, limits, retry: see ``Timeouts``, ``Limits``, ``RetryPolicy``.
        verify: TLS verification (bool, CA bundle path or ``ssl.SSLContext``).
        trust_env: honour proxy settings from the environment.
        http_client: use this httpx.Client (e.g. an in-process ASGI test client)
            instead of opening a network pool.
        compression: ``"auto"`` (no compression for raw array bytes, which are
            mostly incompressible, nor for any data from a server on the
            loopback interface, where compressing only costs the server CPU;
            httpx's defaults otherwise), ``"none"``, or an ``Accept-Encoding``
            value to ask for everywhere.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        auth: httpx.Auth | None = None,
        cache: Cache | None = None,
        headers: dict[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        verify=True,
        trust_env: bool = True,
        http_client: httpx.Client | None = None,
        compression: str = "auto",
    ) -> None:
        if api_key is not None and auth is not None:
            raise ValueError("give api_key or auth, not both")
        if cache is not None and not isinstance(cache, Cache):
            raise TypeError(f"cache must be a tiled_core Cache, not {type(cache).__name__}")
        self._base_url = base_url.rstrip("/")
        self.closed = False
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or Limits()
        self.retry = retry or RetryPolicy.from_env()
        self.cache = cache
        self._compression = compression
        self._loopback = is_loopback(self._base_url)
        base_headers = {"user-agent": user_agent()}
        base_headers.update(check_headers(headers))
        verify = check_verify(verify)
        if http_client is None:
            self._http, self._bulk = open_pools(self._base_url, self.timeouts, self.limits, verify=verify,
                                                trust_env=trust_env, headers=base_headers)
        else:
            self._http = http_client
            self._http.headers.update(base_headers)
            self._http.timeout = self.timeouts.to_httpx()  # the session's timeouts apply to any client
            self._bulk = None
        self._auth = ApiKeyAuth(api_key) if api_key is not None else auth
        self.credential_note: str | None = None  # what a 401 says without credentials, instead of the default
        observe(self._http)  # record_history() and show_logs() see every exchange of this client
        self._count_lock = threading.Lock()
        self.request_count = 0  # attempts sent; tests and benchmarks read it
        self.fetch_gate = FetchGate(self.limits.max_connections)  # dask tasks' data fetches, at most this many at once
        # Once the server has answered, a refused connection means a restart: retries wait for it (a wrong port fails fast).
        self._server_answered = False

    # -- identity ------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def has_api_key(self) -> bool:
        return isinstance(self._auth, ApiKeyAuth)

    # One credential for our requests and for raw ones scripted on ``http_client``: the httpx client's own.
    @property
    def _auth(self) -> httpx.Auth | None:
        return self._http.auth

    @_auth.setter
    def _auth(self, auth: httpx.Auth | None) -> None:
        self._http.auth = auth

    @property
    def http_client(self) -> httpx.Client:
        """The httpx client under this session (the in-process test client for ``from_app``).

        Requests scripted on it carry this session's credential (refreshed as
        needed) and headers, share its connection pool, and are seen by
        ``record_history()`` and ``show_logs()``; they are not retried.
        """
        return self._http

    @property
    def auth(self) -> httpx.Auth | None:
        """The credential sent with requests (``ApiKeyAuth``, ``TokenAuth``, another ``httpx.Auth``, or None)."""
        return self._auth

    def use_http_client(self, client: httpx.Client) -> None:
        """Send through ``client`` from now on (its auth, cookies and pool; no direct read path)."""
        self._http, self._bulk = client, None
        observe(client)

    def set_auth(self, auth: httpx.Auth | None) -> None:
        """Switch credentials (e.g. after a login or logout); requests already under way keep theirs."""
        self._auth = auth

    @property
    def has_credentials(self) -> bool:
        """True with an API key, a login session, custom auth, or an Authorization header."""
        return self._auth is not None or "authorization" in self._http.headers

    def _identity(self) -> str:
        return identity(self._auth, self._http.headers.get("authorization"))

    def _auth_hint(self) -> str:
        return auth_hint(self._auth, self.has_credentials, self.credential_note)

    def _header_auth(self) -> dict[str, str] | None:
        return header_auth(self._auth)

    def reveal_api_key(self) -> str | None:
        """The API key itself, for shipping once, out of band, to trusted workers.

        Only ``tiled_core.distributed.share_credentials`` should need this; never log it.
        """
        return self._auth.secret if isinstance(self._auth, ApiKeyAuth) else None

    def __repr__(self) -> str:
        return f"<Session {self._base_url}>"

    def __reduce__(self):
        raise TypeError("a Session holds connections and credentials and cannot be pickled")

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``metadata/a/b`` (absolute URLs, e.g. server links, pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self._base_url}/{quote(path, safe='/')}" if path else f"{self._base_url}/"

    # -- the retry loop ----------------------------------------------------
    def _with_retries(self, method: str, url: str, attempt: Callable[[], T], *, idempotent: bool | None = None) -> T:
        """Run ``attempt`` under this session's ``RetryPolicy`` (see ``_retry.run_with_retries``)."""
        if self.closed:
            # The bulk path would quietly open new sockets; say so instead, as httpx does.
            raise ClientClosed(f"cannot {method} {url}: this client was closed; connect again with from_uri")
        return run_with_retries(self.retry, method, url, self._answered(attempt), idempotent=idempotent,
                                on_attempt=self._count, restarting=lambda: self._server_answered, signals=self.fetch_gate)

    def _answered(self, attempt: Callable[[], T]) -> Callable[[], T]:
        """``attempt``, noting that the server answered when it returns (see ``_server_answered``)."""
        def run() -> T:
            result = attempt()
            self._server_answered = True
            return result
        return run

    def _count(self) -> None:
        with self._count_lock:
            self.request_count += 1

    def _check(self, response: httpx.Response, url: str) -> httpx.Response:
        self._server_answered = True
        return check_response(response, url, auth_hint=self._auth_hint(), retry_statuses=self.retry.statuses)

    def _data_headers(self, accept: str) -> dict[str, str]:
        return data_headers(accept, self._compression, self._loopback)

    # -- the response cache ------------------------------------------------------
    def _cache_slot(self, full_url: str, accept: str, headers: dict[str, str]) -> CacheSlot | None:
        """Where this GET's answer is (or will be) cached; None when not caching it."""
        cache = self.cache
        if cache is None or not cache.usable or "no-store" in headers.get("cache-control", "").lower():
            return None
        key = cache_key("GET", full_url, accept, self._identity())
        return CacheSlot(cache, key, cache.lookup(key))

    # -- requests ------------------------------------------------------------
    def _get_whole(self, url: str, params: Params, headers: dict[str, str]) -> tuple[bytes, str]:
        """GET a whole body (through the cache if any): ``(body, content type)``."""
        request = self._http.build_request("GET", url, params=params, headers=headers)
        slot = self._cache_slot(str(request.url), headers.get("accept", ""), headers)
        if slot is not None and slot.fresh():
            body = slot.stored_body()
            if body is not None:
                return body, slot.entry.content_type
        if slot is not None:
            request.headers.update(slot.validators())

        def attempt():
            try:
                response = self._http.send(request, auth=self._auth)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                body = slot.offline() if slot is not None else None
                if body is None:
                    raise
                return body, slot.entry.content_type
            if response.status_code == 304 and slot is not None and slot.entry is not None:
                body = slot.stored_body(validated=True)
                if body is not None:
                    entry = slot.entry
                    served_from_cache(str(request.url), lambda: entry.response(request, body))
                    return body, entry.content_type
                # The stored copy was replaced meanwhile (another process): fetch it whole.
                request.headers.pop("if-none-match", None)
                slot.entry = None
                response = self._http.send(request, auth=self._auth)
            self._check(response, url)
            if slot is not None:
                slot.keep(headers, response.status_code, response.headers, response.content)
            return response.content, response.headers.get("content-type", "")

        return self._with_retries("GET", url, attempt)

    def get_document(self, path: str, params: Params = None) -> Any:
        """GET a metadata-type document (msgpack on the wire), decoded."""
        url = self.url(path)
        headers = {"accept": _DOCUMENT_ACCEPT}
        if self._compression not in ("auto",):
            headers.update(self._data_headers(_DOCUMENT_ACCEPT))
        body, content_type = self._get_whole(url, params, headers)
        return decode_document(body, content_type, url=url)

    def get_bytes(self, path: str, params: Params = None, *, accept: str, expected_size: int | None = None,
                  json: Any = None) -> bytes:
        """GET a body whole; with ``expected_size`` a body of another size is an error.

        With ``json``, the query goes as a POST body instead (read routes that
        take one, e.g. long column lists). Such a POST only reads, so it is
        retried like a GET.
        """
        url = self.url(path)
        if json is None:
            body, _ = self._get_whole(url, params, self._data_headers(accept))
            if expected_size is not None and len(body) != expected_size:
                raise MalformedResponse(f"{url}: got {len(body)} bytes, expected {expected_size}")
            return body
        import orjson

        headers = self._data_headers(accept)
        headers["content-type"] = JSON
        content = orjson.dumps(json)

        def attempt():  # a read sent as POST (not cached): retried like a GET
            response = self._check(
                self._http.request("POST", url, params=params, content=content, headers=headers, auth=self._auth), url
            )
            body = response.content
            if expected_size is not None and len(body) != expected_size:
                raise MalformedResponse(f"{url}: got {len(body)} bytes, expected {expected_size}")
            return body

        return self._with_retries("POST", url, attempt, idempotent=True)

    @contextlib.contextmanager
    def stream(self, path: str, params: Params = None, *, accept: str,
               accept_encoding: str | None = None) -> Iterator[Iterator[bytes]]:
        """GET and yield an iterator over the (decoded) body chunks; for exports.

        ``accept_encoding`` replaces the session's ``Accept-Encoding`` for this request.
        """
        url = self.url(path)
        headers = self._data_headers(accept)
        if accept_encoding is not None:
            headers["accept-encoding"] = accept_encoding

        def attempt():
            request = self._http.build_request("GET", url, params=params, headers=headers)
            response = self._http.send(request, auth=self._auth, stream=True)
            try:
                self._check(response, url)
            except BaseException:
                response.close()
                raise
            return response

        response = self._with_retries("GET", url, attempt)
        try:
            yield checked_chunks(response, url)
        finally:
            response.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        content: bytes | memoryview | bytearray | None = None,
        content_type: str | None = None,
        form: dict[str, str] | None = None,
        authenticate: bool = True,
        idempotent: bool | None = None,
    ) -> Any:
        """Send a body (JSON-encodable ``json``, a ``form``, or raw ``content``); return the decoded reply or None.

        ``authenticate=False`` sends no credential (login and token endpoints).
        ``idempotent=False`` marks a request that must not be resent after a
        failure mid-way (a PUT the server applies as an append); by default
        the method decides.
        ``content`` may be any C-contiguous buffer; it is streamed without a copy.
        """
        url = self.url(path)
        auth = self._auth if authenticate else None
        if form is not None:
            content, content_type = urlencode(form).encode(), _FORM
        headers = {"accept": f"{_DOCUMENT_ACCEPT}, {JSON}"}
        if json is not None:
            content = _json_body(json)
            headers["content-type"] = JSON
        elif content_type is not None:
            headers["content-type"] = content_type
        body = body_factory(content, headers)

        def request():
            return self._http.request(method, url, params=params, content=body(), headers=headers, auth=auth)

        def attempt():
            try:
                sent = request()
            except httpx.StreamConsumed:
                # The access token expired in flight: the server answered 401 (nothing applied) and the
                # auth flow refreshed it, but a streamed body cannot be replayed. Send it anew, fresh.
                sent = request()
            response = self._check(sent, url)
            if not response.content or response.status_code == 204:
                return None
            return decode_document(response.content, response.headers.get("content-type", ""), url=url)

        return self._with_retries(method, url, attempt, idempotent=idempotent)

    def send_in_order(self, method: str, items: Sequence[tuple[str, Any]]) -> list:
        """Send ``(path, JSON body)`` requests that the server must apply in this order; never raises.

        Returns per item the decoded reply or the exception it ended with. Over a
        direct connection with a header credential the requests are pipelined:
        sent together on one connection, which the server answers one by one in
        order, so a slow link's round trip is paid once for them all. As with
        ``send``, a request that may have been applied (its answer lost, or a
        503 from a gateway) is not resent; when the credential was refused (an
        expired token), the requests from there on, all refused too, are sent
        again one by one through ``send``, which renews it. (A body that is not
        JSON raises ``TypeError`` before anything is sent.)
        """
        auth_headers = self._header_auth() if self._bulk is not None else None
        if len(items) < 2 or auth_headers is None or self.closed:
            return [self._outcome(method, path, body) for path, body in items]
        headers = self._direct_headers()
        headers.update({"accept": f"{_DOCUMENT_ACCEPT}, {JSON}", "accept-encoding": "identity",
                        "content-type": JSON, **auth_headers})
        urls = [self.url(path) for path, _ in items]
        requests = [(method, httpx.URL(url).raw_path.decode("ascii"), headers, _json_body(body))
                    for url, (_, body) in zip(urls, items)]

        def on_answer(index: int, status, response_headers) -> None:
            self._count()
            if status is not None:
                self._server_answered = True
            note_exchange(method, urls[index], headers, status, response_headers)

        results = self._bulk.pipeliner.send(requests, url_of=self._bulk_url, auth_hint=self._auth_hint(),
                                            on_answer=on_answer)
        first = next((i for i, r in enumerate(results) if self._resendable(r)), None)
        if first is not None and all(map(self._resendable, results[first:])):
            results[first:] = [self._outcome(method, path, body) for path, body in items[first:]]
        return results

    @staticmethod
    def _resendable(result) -> bool:
        """Refused before anything was applied, and maybe not next time: the credential (an expired token)."""
        return isinstance(result, ServerError) and result.status == 401

    def _outcome(self, method: str, path: str, body: Any):
        try:
            return self.send(method, path, json=body)
        except Exception as error:  # noqa: BLE001 - handed back per item
            return error

    # -- login sessions --------------------------------------------------------
    def token_refresher(self, refresh_url: str) -> Callable[[str], Any]:
        """For ``TokenAuth``: one POST of a refresh token to ``refresh_url`` (an API path or URL).

        No retries of its own: the request that needed fresh tokens is retried
        whole by ``_with_retries``. A refusal raises AuthenticationError.
        """
        url = self.url(refresh_url)

        def refresh(refresh_token: str):
            response = self._http.post(url, json={"refresh_token": refresh_token}, headers={"accept": JSON}, auth=None)
            self._check(response, url)
            return decode_document(response.content, response.headers.get("content-type", ""), url=url)

        return refresh

    def refresh_login(self) -> Any:
        """Refresh the login session's tokens now (with retries); returns the new ``Tokens``."""
        auth = self._auth
        if not isinstance(auth, TokenAuth):
            raise RuntimeError("not logged in: there is no login session to refresh")
        return self._with_retries("POST", self.url("auth/session/refresh"), lambda: auth.renew(None, force=True))

    # -- concurrency -------------------------------------------------------
    def run_concurrently(self, function: Callable[[Any], T], items: Iterable[Any], *, concurrency: int | None = None) -> list[T]:
        """Apply ``function`` to ``items`` over at most ``concurrency`` threads; results in order.

        The first error cancels what has not started and is raised.
        """
        items = list(items)
        workers = min(concurrency or self.limits.concurrency, len(items))
        if workers <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tiled-core") as pool:
            futures = [pool.submit(function, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def close(self) -> None:
        self.closed = True
        self._http.close()
        if self._bulk is not None:
            self._bulk.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
