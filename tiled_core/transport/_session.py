"""The one object that talks HTTP: a pooled httpx.Client plus retries and checks."""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from .._version import user_agent
from ._auth import ApiKeyAuth
from ._bulk import BulkReader, bulk_supported
from ._config import Limits, RetryPolicy, Timeouts
from ._decode import JSON, MSGPACK, decode_document, error_detail
from ._errors import (
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


class _RetryableStatus(Exception):
    def __init__(self, error: ServerError, retry_after: float | None) -> None:
        self.error = error
        self.retry_after = retry_after


_INCOMPLETE_BODY = re.compile(r"received (\d+) bytes, expected (\d+)")


def _broken_connection(method: str, url: str, exc: Exception) -> TransportError:
    """A dropped connection; TruncatedResponse when httpx saw a body shorter than its Content-Length."""
    match = _INCOMPLETE_BODY.search(str(exc))
    if match:
        return TruncatedResponse(url, int(match.group(2)), int(match.group(1)))
    return ConnectionFailed(f"connection broke during {method} {url}: {exc}")


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
        headers: extra headers for every request.
        timeouts, limits, retry: see ``Timeouts``, ``Limits``, ``RetryPolicy``.
        verify: TLS verification (bool, CA bundle path or ``ssl.SSLContext``).
        trust_env: honour proxy settings from the environment.
        http_client: use this httpx.Client (e.g. an in-process ASGI test client)
            instead of opening a network pool.
        compression: ``"auto"`` (no compression for raw array bytes, which are
            mostly incompressible; httpx's defaults for documents), ``"none"``,
            or an ``Accept-Encoding`` value to ask for everywhere.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        verify=True,
        trust_env: bool = True,
        http_client: httpx.Client | None = None,
        compression: str = "auto",
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or Limits()
        self.retry = retry or RetryPolicy.from_env()
        self._auth = ApiKeyAuth(api_key) if api_key else None
        self._compression = compression
        base_headers = {"user-agent": user_agent()}
        base_headers.update(headers or {})
        if http_client is None:
            self._http = httpx.Client(
                timeout=self.timeouts.to_httpx(),
                limits=self.limits.to_httpx(),
                verify=verify,
                trust_env=trust_env,
                headers=base_headers,
                follow_redirects=True,
            )
            self._bulk = (
                BulkReader(self._base_url, verify=verify, timeouts=self.timeouts, max_idle=self.limits.concurrency)
                if bulk_supported(self._base_url, trust_env)
                else None
            )
        else:
            self._http = http_client
            self._http.headers.update(base_headers)
            self._bulk = None
        self._count_lock = threading.Lock()
        self.request_count = 0  # attempts sent; tests and benchmarks read it

    # -- identity ------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def has_api_key(self) -> bool:
        return self._auth is not None

    def __repr__(self) -> str:
        return f"<Session {self._base_url}>"

    def __reduce__(self):
        raise TypeError("a Session holds connections and credentials and cannot be pickled")

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``metadata/a/b``."""
        return f"{self._base_url}/{quote(path, safe='/')}" if path else f"{self._base_url}/"

    # -- the retry loop ----------------------------------------------------
    def _with_retries(self, method: str, url: str, attempt: Callable[[], T]) -> T:
        policy = self.retry
        idempotent = method in _IDEMPOTENT
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
                retry = idempotent
            except httpx.ConnectError as exc:
                # Nothing reached the server: safe to retry any method.
                error, wait, retry = ConnectionFailed(f"cannot connect to {url}: {exc}"), None, True
            except httpx.TimeoutException as exc:
                error, wait, retry = RequestTimeout(f"timed out on {method} {url} ({type(exc).__name__})"), None, idempotent
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                error, wait, retry = _broken_connection(method, url, exc), None, idempotent
            except (TruncatedResponse, ConnectionFailed, RequestTimeout) as exc:  # from the bulk path
                error, wait, retry = exc, None, idempotent
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise ValueError(f"cannot request {url}: {exc}") from None
            delay = policy.delay(tries) if wait is None else wait
            delay *= 1.0 if wait is not None else random.uniform(0.5, 1.0)
            elapsed = time.monotonic() - start
            if not retry or tries >= policy.attempts or elapsed + delay > policy.deadline:
                if retry and tries > 1:
                    error.add_note(f"gave up after {tries} attempts in {elapsed:.1f}s")
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
        )
        if response.status_code in self.retry.statuses:
            raise _RetryableStatus(error, _retry_after(response.headers))
        raise error

    def _data_headers(self, accept: str) -> dict[str, str]:
        headers = {"accept": accept}
        if self._compression == "auto":
            if accept == "application/octet-stream":
                headers["accept-encoding"] = "identity"
        elif self._compression == "none":
            headers["accept-encoding"] = "identity"
        else:
            headers["accept-encoding"] = self._compression
        return headers

    # -- requests ------------------------------------------------------------
    def get_document(self, path: str, params: Params = None) -> Any:
        """GET a metadata-type document (msgpack on the wire), decoded."""
        url = self.url(path)
        headers = {"accept": _DOCUMENT_ACCEPT}
        if self._compression not in ("auto",):
            headers.update(self._data_headers(_DOCUMENT_ACCEPT))

        def attempt():
            response = self._check(self._http.get(url, params=params, headers=headers, auth=self._auth), url)
            return decode_document(response.content, response.headers.get("content-type", ""), url=url)

        return self._with_retries("GET", url, attempt)

    def get_bytes(self, path: str, params: Params = None, *, accept: str, expected_size: int | None = None) -> bytes:
        """GET a body whole; with ``expected_size`` a body of another size is an error."""
        url = self.url(path)
        headers = self._data_headers(accept)

        def attempt():
            response = self._check(self._http.get(url, params=params, headers=headers, auth=self._auth), url)
            body = response.content
            if expected_size is not None and len(body) != expected_size:
                raise MalformedResponse(f"{url}: got {len(body)} bytes, expected {expected_size}")
            return body

        return self._with_retries("GET", url, attempt)

    def read_into(self, path: str, params: Params, *, accept: str, out: memoryview) -> None:
        """GET a binary body of exactly ``len(out)`` bytes into ``out``."""
        url = self.url(path)
        headers = self._data_headers(accept)
        use_bulk = self._bulk is not None and headers.get("accept-encoding") == "identity"
        if use_bulk:
            target = httpx.URL(url, params=params).raw_path.decode("ascii")
            bulk_headers = {"user-agent": user_agent(), "accept-encoding": "identity", **headers}
            bulk_headers.update({k: v for k, v in self._http.headers.items() if k.lower() not in ("accept", "accept-encoding")})
            if self._auth is not None:
                bulk_headers.update(self._auth.headers())

            def attempt():
                try:
                    self._bulk.read_into(target, bulk_headers, out, url=url)
                except ServerError as error:
                    if error.status in self.retry.statuses:
                        raise _RetryableStatus(error, getattr(error, "retry_after", None)) from None
                    raise

        else:

            def attempt():
                with self._http.stream("GET", url, params=params, headers=headers, auth=self._auth) as response:
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

        self._with_retries("GET", url, attempt)

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

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        content: bytes | memoryview | bytearray | None = None,
        content_type: str | None = None,
    ) -> Any:
        """Send a body (JSON-encodable ``json`` or raw ``content``); return the decoded reply or None.

        ``content`` may be any C-contiguous buffer; it is streamed without a copy.
        """
        import orjson

        url = self.url(path)
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
                self._http.request(method, url, params=params, content=body(), headers=headers, auth=self._auth),
                url,
            )
            if not response.content or response.status_code == 204:
                return None
            return decode_document(response.content, response.headers.get("content-type", ""), url=url)

        return self._with_retries(method, url, attempt)

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
        self._http.close()
        if self._bulk is not None:
            self._bulk.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
