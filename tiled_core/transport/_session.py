"""The one object that talks HTTP: a pooled httpx.Client plus retries and checks."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx

from .._version import user_agent
from ._auth import ApiKeyAuth, TokenAuth
from ._bulk import BulkReader, bulk_supported
from ._cache import Cache, CacheSlot, cache_key, identity_of
from ._config import Limits, RetryPolicy, Timeouts
from ._history import note_direct, observe
from ._decode import JSON, MSGPACK, decode_document, error_detail
from ._errors import (
    AuthenticationError,
    ClientClosed,
    ConnectionFailed,
    MalformedResponse,
    RequestTimeout,
    ServerError,
    TransportError,
    TruncatedResponse,
    error_for_status,
)

__all__ = ["Session", "Params"]

Params = Sequence[tuple[str, Any]] | dict[str, Any] | None
T = TypeVar("T")
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_DOCUMENT_ACCEPT = MSGPACK
_FORM = "application/x-www-form-urlencoded"


class _RetryableStatus(Exception):
    def __init__(self, error: ServerError, retry_after: float | None) -> None:
        self.error = error
        self.retry_after = retry_after


_INCOMPLETE_BODY = re.compile(r"received (\d+) bytes, expected (\d+)")


_DISCONNECTED = ("disconnected", "closed connection", "incomplete")


def _broken_connection(method: str, url: str, exc: Exception) -> TransportError | MalformedResponse:
    """A dropped connection; TruncatedResponse when httpx saw a body shorter than its Content-Length.

    A reply that breaks HTTP itself (not a dropped connection) is MalformedResponse: whatever
    answers there is not an HTTP server, and asking again would not change that.
    """
    match = _INCOMPLETE_BODY.search(str(exc))
    if match:
        return TruncatedResponse(url, int(match.group(2)), int(match.group(1)))
    if isinstance(exc, httpx.RemoteProtocolError) and not any(w in str(exc).lower() for w in _DISCONNECTED):
        return MalformedResponse(f"{url} answered {method} with something that is not valid HTTP ({exc}): "
                                 "is a Tiled server listening there?")
    return ConnectionFailed(f"connection broke during {method} {url}: {exc}")


def _undecodable(url: str, exc: Exception) -> MalformedResponse:
    return MalformedResponse(f"{url}: the body does not decode as its Content-Encoding says ({exc})")


def _tls_failure(exc: BaseException) -> bool:
    """Whether a connection failed in the TLS handshake (certificate, or plain HTTP on the other end)."""
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_loopback(base_url: str) -> bool:
    host = httpx.URL(base_url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SEND_PIECE = 1 << 20  # h11 copies each piece it frames: small pieces keep that copy small


def _body_factory(content, headers: dict[str, str]) -> Callable[[], Any]:
    """A callable giving a fresh request body per attempt (an iterator cannot be sent twice).

    A ``bytes`` body goes as is. Any other buffer (memoryview, bytearray, numpy
    array) is sent as an iterator of 1 MiB slices with an explicit
    ``Content-Length``: httpx would otherwise need a ``bytes`` copy of the whole
    buffer, and h11 copies what it frames anyway.
    """
    if content is None or isinstance(content, bytes):
        return lambda: content
    view = memoryview(content)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    if not view.nbytes:
        return lambda: b""
    headers["content-length"] = str(view.nbytes)
    return lambda: (view[start:start + _SEND_PIECE] for start in range(0, view.nbytes, _SEND_PIECE))


def _check_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """Extra headers, checked before any request (values are not echoed: they may be credentials)."""
    checked = dict(headers or {})
    for name, value in checked.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"headers map names to values, both strings; got {type(name).__name__} -> "
                            f"{type(value).__name__} for {name!r}")
        if not name or not all(33 <= ord(ch) < 127 and ch not in '()<>@,;:\\"/[]?={}' for ch in name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if not all(32 <= ord(ch) < 127 or ch == "\t" for ch in value):
            raise ValueError(f"the value of header {name!r} must be printable ASCII (no line breaks)")
    return checked


def _check_verify(verify):
    """A CA bundle path that does not exist is named now (httpx would say only 'No such file')."""
    if isinstance(verify, (str, os.PathLike)) and not os.path.exists(verify):
        raise FileNotFoundError(f"verify={os.fspath(verify)!r}: no such CA bundle file or directory")
    return verify


def _retry_after(response_headers) -> float | None:
    value = response_headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class Session:
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
        if api_key and auth is not None:
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
        self._loopback = _is_loopback(self._base_url)
        base_headers = {"user-agent": user_agent()}
        base_headers.update(_check_headers(headers))
        verify = _check_verify(verify)
        if http_client is None:
            direct = bulk_supported(self._base_url, trust_env) and self.limits.max_connections > 1
            # The direct path's sockets count against max_connections too: half for it, the rest for httpx.
            direct_share = self.limits.max_connections // 2 if direct else 0
            self._http = httpx.Client(
                timeout=self.timeouts.to_httpx(),
                limits=self.limits.to_httpx(reserved=direct_share),
                verify=verify,
                trust_env=trust_env,
                headers=base_headers,
                follow_redirects=True,
            )
            self._bulk = (
                BulkReader(self._base_url, verify=verify, timeouts=self.timeouts,
                           max_idle=min(self.limits.concurrency, direct_share), max_open=direct_share)
                if direct
                else None
            )
        else:
            self._http = http_client
            self._http.headers.update(base_headers)
            self._http.timeout = self.timeouts.to_httpx()  # the session's timeouts apply to any client
            self._bulk = None
        self._auth = ApiKeyAuth(api_key) if api_key else auth
        observe(self._http)  # record_history() and show_logs() see every exchange of this client
        self._count_lock = threading.Lock()
        self.request_count = 0  # attempts sent; tests and benchmarks read it

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

    def set_auth(self, auth: httpx.Auth | None) -> None:
        """Switch credentials (e.g. after a login or logout); requests already under way keep theirs."""
        self._auth = auth

    @property
    def has_credentials(self) -> bool:
        """True with an API key, a login session, custom auth, or an Authorization header."""
        return self._auth is not None or "authorization" in self._http.headers

    def _identity(self) -> str:
        """Who requests speak for, without the secret (keys the response cache)."""
        auth = self._auth
        if isinstance(auth, TokenAuth) and auth.principal:
            return f"principal:{auth.principal}"
        if isinstance(auth, ApiKeyAuth):
            return identity_of(auth.headers()["Authorization"])
        if auth is not None:
            return f"auth:{id(auth)}"  # custom auth: its identity is unknown, keep it apart
        return identity_of(self._http.headers.get("authorization"))

    def _auth_hint(self) -> str:
        if isinstance(self._auth, ApiKeyAuth):
            return "the API key is wrong, expired or revoked"
        if isinstance(self._auth, TokenAuth):
            return "the login session is no longer valid; log in again"
        if self.has_credentials:
            return "check the credentials given in headers or auth"
        return "pass api_key=, set TILED_API_KEY, or log in"

    def _header_auth(self) -> dict[str, str] | None:
        """The auth header for the bulk path, or None when the credential cannot be a plain header."""
        if self._auth is None:
            return {}
        if isinstance(self._auth, (ApiKeyAuth, TokenAuth)):
            return self._auth.headers()
        return None

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
        policy = self.retry
        if self.closed:
            # The bulk path would quietly open new sockets; say so instead, as httpx does.
            raise ClientClosed(f"cannot {method} {url}: this client was closed; connect again with from_uri")
        idempotent = method in _IDEMPOTENT if idempotent is None else idempotent
        start = time.monotonic()
        tries = 0
        while True:
            tries += 1
            with self._count_lock:
                self.request_count += 1
            try:
                return attempt()
            except _RetryableStatus as exc:
                error, wait = exc.error, exc.retry_after
                # A 429 is a refusal before any work (rate limiting): safe to resend any method.
                retry = idempotent or error.status == 429
            except httpx.ConnectError as exc:
                if _tls_failure(exc):  # the same next time: not retried
                    raise ConnectionFailed(
                        f"TLS handshake with {url} failed ({exc}): is it a plain http:// server, or does "
                        "verify= need the server's CA bundle?") from None
                # Nothing reached the server: safe to retry any method.
                error, wait, retry = ConnectionFailed(f"cannot connect to {url}: {exc}"), None, True
            except httpx.TimeoutException as exc:
                error, wait = RequestTimeout(f"timed out on {method} {url} ({type(exc).__name__})"), None
                # A connect or pool timeout means it was never sent (no connection, or none free in
                # time): safe to retry any method. A read or write timeout may follow the server acting.
                retry = idempotent or isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                error, wait = _broken_connection(method, url, exc), None
                retry = idempotent and not isinstance(error, MalformedResponse)
            except (TruncatedResponse, ConnectionFailed, RequestTimeout) as exc:  # from the bulk path
                error, wait, retry = exc, None, idempotent
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise ValueError(f"cannot request {url}: {exc}") from None
            except httpx.TooManyRedirects:
                raise MalformedResponse(f"{method} {url}: too many redirects (a redirect loop?); "
                                        "is the URI that of a Tiled server's API?") from None
            except httpx.DecodingError as exc:
                raise _undecodable(url, exc) from None
            delay = policy.delay(tries) if wait is None else wait
            delay *= 1.0 if wait is not None else random.uniform(0.5, 1.0)
            elapsed = time.monotonic() - start
            if not retry or tries >= policy.attempts or elapsed + delay > policy.deadline:
                if retry:  # say why it stopped, even when the deadline left no room for a second try
                    error.add_note(f"gave up after {tries} attempt{'s' if tries > 1 else ''} in {elapsed:.1f}s "
                                   f"(retry limits: {policy.attempts} attempts, {policy.deadline:g}s)")
                raise error
            time.sleep(delay)

    def _check(self, response: httpx.Response, url: str) -> httpx.Response:
        if response.status_code < 400:
            return response
        response.read()
        error = error_for_status(
            response.status_code,
            error_detail(response.content, response.headers.get("content-type", "")),
            url=url,
            request_id=response.headers.get("x-tiled-request-id"),
            auth_hint=self._auth_hint(),
            response=response,
        )
        if response.status_code in self.retry.statuses:
            raise _RetryableStatus(error, _retry_after(response.headers))
        raise error

    def _data_headers(self, accept: str) -> dict[str, str]:
        headers = {"accept": accept}
        if self._compression == "auto":
            if accept == "application/octet-stream" or self._loopback:
                headers["accept-encoding"] = "identity"
        elif self._compression == "none":
            headers["accept-encoding"] = "identity"
        else:
            headers["accept-encoding"] = self._compression
        return headers

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
                    return body, slot.entry.content_type
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

    def read_into(self, path: str, params: Params, *, accept: str, out: memoryview) -> None:
        """GET a binary body of exactly ``len(out)`` bytes into ``out``.

        Large bodies take the bulk path (straight from the socket into ``out``);
        with a cache, a ``304`` fills ``out`` from the stored copy instead.
        """
        url = self.url(path)
        headers = self._data_headers(accept)
        full_url = httpx.URL(url, params=params)
        slot = self._cache_slot(str(full_url), accept, headers)
        if slot is not None and slot.fresh() and slot.stored_body(out):
            return
        use_bulk = self._bulk is not None and headers.get("accept-encoding") == "identity"

        def fetch(validators: dict[str, str]):
            wanted = {**headers, **validators}
            if use_bulk:
                auth_headers = self._header_auth()
                if auth_headers is not None:  # custom httpx.Auth cannot ride the bulk path
                    return self._bulk_fetch(full_url.raw_path.decode("ascii"), wanted, auth_headers, out, url)
            return self._stream_fetch(url, params, wanted, out)

        def attempt():
            try:
                status, response_headers = fetch(slot.validators() if slot is not None else {})
            except (httpx.ConnectError, httpx.ConnectTimeout, ConnectionFailed, RequestTimeout):
                if slot is not None and slot.offline(out):
                    return
                raise
            if status == 304 and slot is not None:
                if slot.stored_body(out, validated=True):
                    return
                status, response_headers = fetch({})  # the stored copy was replaced meanwhile
            if slot is not None:
                slot.keep(headers, status, response_headers, out)

        self._with_retries("GET", url, attempt)

    def _bulk_fetch(self, target: str, headers: dict[str, str], auth_headers: dict[str, str], out: memoryview, url: str):
        request_headers = {"user-agent": user_agent(), "accept-encoding": "identity", **headers}
        request_headers.update(
            {k: v for k, v in self._http.headers.items() if k.lower() not in ("accept", "accept-encoding")}
        )
        request_headers.update(auth_headers)

        def once():
            try:
                return note_direct("GET", self._bulk_url(target), request_headers, lambda: self._bulk.read_into(
                    target, request_headers, out, url=url, auth_hint=self._auth_hint()))
            except ServerError as error:
                if error.status in self.retry.statuses:
                    raise _RetryableStatus(error, getattr(error, "retry_after", None)) from None
                raise

        try:
            return once()
        except AuthenticationError:
            if not isinstance(self._auth, TokenAuth):
                raise
            # As TokenAuth.auth_flow does for httpx: refresh once and resend.
            stale = auth_headers["Authorization"].partition(" ")[2]
            request_headers["Authorization"] = f"Bearer {self._auth.renew(stale).access_token}"
            return once()

    def _bulk_url(self, target: str) -> str:
        base = httpx.URL(self._base_url)
        return str(base.copy_with(raw_path=target.encode("ascii")))

    def _stream_fetch(self, url: str, params: Params, headers: dict[str, str], out: memoryview):
        with self._http.stream("GET", url, params=params, headers=headers, auth=self._auth) as response:
            if response.status_code == 304:
                return 304, response.headers
            self._check(response, url)
            received = 0
            total = len(out)
            for chunk in response.iter_bytes():
                end = received + len(chunk)
                if end > total:
                    raise MalformedResponse(f"{url}: body is longer than the {total} bytes expected")
                out[received:end] = chunk
                received = end
            if received != total:
                raise TruncatedResponse(url, total, received)
            return response.status_code, response.headers

    @contextlib.contextmanager
    def stream(self, path: str, params: Params = None, *, accept: str) -> Iterator[Iterator[bytes]]:
        """GET and yield an iterator over the (decoded) body chunks; for exports."""
        url = self.url(path)
        headers = self._data_headers(accept)

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
            yield self._checked_chunks(response, url)
        finally:
            response.close()

    @staticmethod
    def _checked_chunks(response: httpx.Response, url: str) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except (httpx.RemoteProtocolError, httpx.NetworkError) as exc:
            raise _broken_connection("GET", url, exc) from None
        except httpx.DecodingError as exc:
            raise _undecodable(url, exc) from None

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
    ) -> Any:
        """Send a body (JSON-encodable ``json``, a ``form``, or raw ``content``); return the decoded reply or None.

        ``authenticate=False`` sends no credential (login and token endpoints).
        ``content`` may be any C-contiguous buffer; it is streamed without a copy.
        """
        import orjson

        url = self.url(path)
        auth = self._auth if authenticate else None
        if form is not None:
            content, content_type = urlencode(form).encode(), _FORM
        headers = {"accept": f"{_DOCUMENT_ACCEPT}, {JSON}"}
        if json is not None:
            try:
                content = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
            except TypeError as exc:
                raise TypeError(f"cannot encode the request body as JSON: {exc}") from None
            headers["content-type"] = JSON
        elif content_type is not None:
            headers["content-type"] = content_type
        body = _body_factory(content, headers)

        def attempt():
            response = self._check(
                self._http.request(method, url, params=params, content=body(), headers=headers, auth=auth),
                url,
            )
            if not response.content or response.status_code == 204:
                return None
            return decode_document(response.content, response.headers.get("content-type", ""), url=url)

        return self._with_retries(method, url, attempt)

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
