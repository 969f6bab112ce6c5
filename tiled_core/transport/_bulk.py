"""Large binary downloads read straight into the caller's buffer.

httpx hands a body over as many small ``bytes`` objects, which must then be
copied into place; for arrays of hundreds of MiB that copying costs more than
the network on loopback. This path sends the same GET with the standard
library's ``http.client`` and ``readinto``s the body directly into the
destination memory: one copy, from the socket. It is used only for plain
HTTP(S) without a proxy; everything else goes through httpx.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.request
from urllib.parse import urlsplit

from ._config import Timeouts
from ._decode import error_detail
from ._errors import ConnectionFailed, MalformedResponse, RequestTimeout, TruncatedResponse, error_for_status
from ._pipeline import Pipeliner
from ._retry import retry_after

__all__ = ["BulkReader", "bulk_supported"]


def bulk_supported(base_url: str, trust_env: bool) -> bool:
    """True when a direct connection (no proxy) can reach ``base_url``."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        return False
    if trust_env:
        proxies = urllib.request.getproxies()
        if parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or ""):
            return False
    return True


def _ssl_context(verify: bool | str | ssl.SSLContext) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


class BulkReader:
    """A small keep-alive pool of ``http.client`` connections for big GETs."""

    def __init__(self, base_url: str, *, verify, timeouts: Timeouts, max_idle: int, max_open: int) -> None:
        parts = urlsplit(base_url)
        self._scheme = parts.scheme
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._context = _ssl_context(verify) if parts.scheme == "https" else None
        self._timeouts = timeouts
        self._idle: list[http.client.HTTPConnection] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()
        # One slot per request in flight. A connection is opened only when none is idle, so
        # connections open (idle or busy) never outnumber the slots.
        self._slots = threading.BoundedSemaphore(max_open)
        # Ordered writes sent together on connections of their own (see ``_pipeline``).
        self.pipeliner = Pipeliner(self._connect, parts.netloc)

    def _checkout(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        timeout = self._timeouts.read
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _checkin(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def read_into(self, target: str, headers: dict[str, str], out: memoryview, *, url: str,
                  auth_hint: str | None = None):
        """GET ``target`` (path and query) and fill ``out`` exactly with the body.

        Returns ``(status, response headers)``: 200, or 304 (``out`` untouched)
        when the request carried ``If-None-Match`` and the server's copy matches.
        Raises the status's ServerError, ``MalformedResponse`` when the server
        announces another size or an encoding, ``TruncatedResponse`` when the
        body ends early, ``ConnectionFailed``/``RequestTimeout`` on socket trouble
        or when no connection is free within the pool timeout.
        """
        if not self._slots.acquire(timeout=self._timeouts.pool):  # None: wait as long as it takes
            raise RequestTimeout(f"no free connection for {url} within {self._timeouts.pool:g}s (max_connections)")
        try:
            return self._read_into(target, headers, out, url=url, auth_hint=auth_hint)
        finally:
            self._slots.release()

    def _read_into(self, target: str, headers: dict[str, str], out: memoryview, *, url: str, auth_hint: str | None):
        connection = self._checkout()
        kept_alive = connection.sock is not None
        reusable = False
        try:
            try:
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
            except http.client.RemoteDisconnected:
                if not kept_alive:
                    raise  # a new connection closed unanswered: the session's retry loop decides
                # A kept-alive connection the server had closed meanwhile: one fresh try.
                connection.close()
                connection = self._checkout_fresh()
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
            if response.status == 304:
                response.read()
                reusable = not response.will_close
                return 304, response.msg
            if response.status != 200:
                body = response.read()
                detail = error_detail(body, response.getheader("content-type", ""))
                hint = {"auth_hint": auth_hint} if auth_hint else {}
                error = error_for_status(
                    response.status, detail, url=url, request_id=response.getheader("x-tiled-request-id"), **hint
                )
                error.retry_after = retry_after(response.msg)  # honoured by the session's retry loop
                raise error
            encoding = response.getheader("content-encoding", "identity")
            length = response.getheader("content-length")
            if encoding not in ("identity", ""):
                raise MalformedResponse(f"{url}: server sent content-encoding {encoding!r} after identity was asked")
            if length is not None and int(length) != len(out):
                raise MalformedResponse(
                    f"{url}: server announced {length} bytes where the structure implies {len(out)}"
                )
            received = 0
            total = len(out)
            while received < total:
                n = response.readinto(out[received:])
                if not n:
                    raise TruncatedResponse(url, total, received)
                received += n
            if response.read(1):
                raise MalformedResponse(f"{url}: body is longer than the {total} bytes expected")
            reusable = not response.will_close
            return 200, response.msg
        except (socket.timeout, TimeoutError) as exc:
            raise RequestTimeout(f"timed out reading {url}") from exc
        except http.client.IncompleteRead as exc:
            raise TruncatedResponse(url, len(out), len(exc.partial)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed(f"connection to {self._host}:{self._port} failed reading {url}: {exc}") from exc
        finally:
            if reusable:
                self._checkin(connection)
            else:
                connection.close()

    def _checkout_fresh(self) -> http.client.HTTPConnection:
        with self._lock:
            stale, self._idle = self._idle, []
        for connection in stale:
            connection.close()
        return self._connect()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self.pipeliner.close()

