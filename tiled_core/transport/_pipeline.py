"""Several requests sent back to back on one HTTP/1.1 connection, answered in order.

A server answers the requests of one connection one after the other, in the
order they arrive (HTTP/1.1 pipelining; uvicorn queues them). Writes whose
order matters (a container's children are listed in the order they were
created) can then travel together: the link's round trip is paid once per
batch instead of once per request, and the server never waits for the next
one. httpx does not pipeline, so this speaks HTTP/1.1 itself, on the same
direct connections as the bulk read path (plain HTTP(S), no proxy).

Only what the server's answers to such writes need: ``Content-Length`` or
chunked bodies, no content coding (``identity`` is asked for).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Sequence

from ._decode import decode_document, error_detail
from ._errors import ConnectionFailed, RequestTimeout, TransportError, TruncatedResponse, error_for_status

__all__ = ["Pipeliner", "PipelinedRequest"]

PipelinedRequest = tuple[str, str, dict[str, str], bytes]  # method, target (path and query), headers, body
FRESH_SECONDS = 1.0  # an idle connection older than this may be closing (servers time idle ones out): not reused


class Pipeliner:
    """Pipelined batches over a few direct connections (``connect()`` opens one)."""

    def __init__(self, connect: Callable[[], http.client.HTTPConnection], host: str) -> None:
        self._connect, self._host = connect, host
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    def send(self, requests: Sequence[PipelinedRequest], *, url_of: Callable[[str], str], auth_hint: str,
             on_answer: Callable[[int, int | None, http.client.HTTPMessage | None], None]) -> list:
        """Send ``requests`` at once on one connection, then read their answers in order.

        Returns one entry per request: the decoded reply (None for an empty one)
        or the exception for its status. When the connection fails, the requests
        left unanswered get that ``TransportError`` (whether the server applied
        them is not known). ``on_answer(i, status, headers)`` sees each exchange
        (status None: unanswered).
        """
        connection = self._checkout()
        results: list = []
        try:
            if connection.sock is None:
                connection.connect()
            connection.sock.sendall(b"".join(_encode(m, t, self._host, h, b) for m, t, h, b in requests))
            reader = connection.sock.makefile("rb")
            try:
                for index, (_, target, _, _) in enumerate(requests):
                    status, headers, result = _read_answer(reader, url_of(target), auth_hint)
                    on_answer(index, status, headers)
                    results.append(result)
            finally:
                reader.close()
        except (socket.timeout, TimeoutError) as exc:
            connection.close()
            self._fail_rest(results, requests, RequestTimeout(f"timed out waiting for the server at {self._host}"),
                            exc, on_answer)
        except (OSError, http.client.HTTPException, TransportError) as exc:
            connection.close()
            error = exc if isinstance(exc, TransportError) else ConnectionFailed(
                f"connection to {self._host} failed after {len(results)} of {len(requests)} pipelined requests: "
                f"{exc}")
            self._fail_rest(results, requests, error, exc, on_answer)
        else:
            self._checkin(connection)
        return results

    def _checkout(self) -> http.client.HTTPConnection:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                connection, used = self._idle.pop()
                if now - used < FRESH_SECONDS:
                    return connection
                connection.close()
        return self._connect()

    def _checkin(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append((connection, time.monotonic()))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    @staticmethod
    def _fail_rest(results: list, requests, error: BaseException, cause: BaseException, on_answer) -> None:
        if cause is not error:
            error.__cause__ = cause
        for index in range(len(results), len(requests)):
            on_answer(index, None, None)
            results.append(error)


def _encode(method: str, target: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _read_answer(reader, url: str, auth_hint: str) -> tuple[int, http.client.HTTPMessage, object]:
    status_line = reader.readline(65537)
    if not status_line:
        raise ConnectionFailed(f"the server closed the connection before answering {url}")
    try:
        _, status_text, _ = (status_line.decode("latin-1").rstrip("\r\n") + " ").split(" ", 2)
        status = int(status_text)
    except ValueError:
        raise ConnectionFailed(f"{url}: not an HTTP answer: {status_line[:80]!r}") from None
    headers = http.client.parse_headers(reader)
    body = _read_body(reader, headers, url)
    if 200 <= status < 300:
        reply = decode_document(body, headers.get("content-type", ""), url=url) if body and status != 204 else None
        return status, headers, reply
    detail = error_detail(body, headers.get("content-type", ""))
    error = error_for_status(status, detail, url=url, request_id=headers.get("x-tiled-request-id"),
                             auth_hint=auth_hint)
    return status, headers, error  # never retried here (see Session.send_in_order): no Retry-After kept


def _read_body(reader, headers, url: str) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(reader.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(_read_exactly(reader, size, url))
            reader.readline(65537)
    length = int(headers.get("content-length") or 0)
    return _read_exactly(reader, length, url)


def _read_exactly(reader, size: int, url: str) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise TruncatedResponse(url, size, len(data))
    return data
