"""A tiny fault-injecting HTTP/1.1 proxy on loopback, for reliability tests.

It forwards every request to a real upstream server and, when told to,
damages the answer to the next matching request(s):

* ``cut(n)``: send the real status line and headers (with the real
  ``Content-Length``), then only the first ``n`` bytes of the body, then close
  the connection -- a truncated response.
* ``respond(status, ...)``: answer with a canned status, headers and body
  instead of forwarding (e.g. 503 with ``Retry-After``).
* ``drop()``: close the connection without answering.

It also records every request it sees (``requests``: ``(method, target,
headers)``) and the status of every forwarded answer (``responses``:
``(method, target, status)``), so tests can count round trips, inspect URLs
and see revalidations (304).

Only what the tests need: keep-alive, Content-Length and chunked request
bodies; upstream responses are read whole (``http.client`` decodes chunked
transfer encoding) and re-sent with a Content-Length.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import threading

__all__ = ["FaultProxy"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclasses.dataclass
class _Fault:
    kind: str  # "cut", "respond" or "drop"
    times: int | None  # None: every matching request
    match: str | None  # substring of the request target, or None for any
    method: str | None = None  # only requests with this method, or None for any
    nbytes: int = 0
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def applies(self, method: str, target: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and (self.match is None or self.match in target)
            and (self.method is None or self.method == method)
        )


class FaultProxy:
    """A threaded TCP proxy from ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.responses: list[tuple[str, str, int]] = []
        self.faults_applied = 0
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    # -- control ---------------------------------------------------------------
    @property
    def uri(self) -> str:
        """The proxied API base, ``http://127.0.0.1:<port>/api/v1``."""
        return f"http://127.0.0.1:{self.port}/api/v1"

    def cut(self, nbytes: int, *, times: int | None = 1, match: str | None = None,
            method: str | None = None) -> None:
        """Truncate the body of the next ``times`` matching responses (None: all) after ``nbytes``."""
        with self._lock:
            self._faults.append(_Fault("cut", times, match, method, nbytes=nbytes))

    def drop(self, *, times: int | None = 1, match: str | None = None, method: str | None = None) -> None:
        """Close the connection instead of answering (nothing is forwarded upstream)."""
        with self._lock:
            self._faults.append(_Fault("drop", times, match, method))

    def respond(self, status: int, *, headers: dict[str, str] | None = None, body: bytes = b"",
                times: int | None = 1, match: str | None = None, method: str | None = None) -> None:
        """Answer the next ``times`` matching requests with this canned response (not forwarded)."""
        with self._lock:
            self._faults.append(
                _Fault("respond", times, match, method, status=status,
                       headers=tuple((headers or {}).items()), body=body)
            )

    def clear(self) -> None:
        """Forget pending faults and recorded requests."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.responses.clear()
            self.faults_applied = 0

    def targets(self) -> list[str]:
        with self._lock:
            return [target for _, target, _ in self.requests]

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(): the port stops answering
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        self._thread.join(timeout=5)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------
    def _take_fault(self, method: str, target: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies(method, target):
                    if fault.times is not None:
                        fault.times -= 1
                    self.faults_applied += 1
                    return fault
        return None

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = http.client.HTTPConnection(*self._upstream, timeout=60)
        reader = client.makefile("rb")
        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    return
                method, target, headers, body = request
                with self._lock:
                    self.requests.append((method, target, dict(headers)))
                fault = self._take_fault(method, target)
                if fault is not None and fault.kind == "drop":
                    return
                if fault is not None and fault.kind == "respond":
                    extra = {k.lower() for k, _ in fault.headers}
                    head = [f"HTTP/1.1 {fault.status} {http.client.responses.get(fault.status, 'Error')}"]
                    head += [f"{k}: {v}" for k, v in fault.headers]
                    if "content-length" not in extra:
                        head.append(f"content-length: {len(fault.body)}")
                    client.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + fault.body)
                    continue
                forward = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
                try:
                    upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                    for k, v in forward:
                        upstream.putheader(k, v)
                    upstream.putheader("content-length", str(len(body)))
                    upstream.endheaders(body)
                    response = upstream.getresponse()
                    payload = response.read()
                except (OSError, http.client.HTTPException):
                    return
                with self._lock:
                    self.responses.append((method, target, response.status))
                head = [f"HTTP/1.1 {response.status} {response.reason}"]
                head += [f"{k}: {v}" for k, v in response.getheaders()
                         if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
                head.append(f"content-length: {len(payload)}")  # the full size, even when cutting
                data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
                if fault is not None and fault.kind == "cut":
                    client.sendall(data + payload[: fault.nbytes])
                    return  # close: the client sees a body shorter than announced
                client.sendall(data + payload)
        except OSError:
            return
        finally:
            upstream.close()
            reader.close()
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.close()
            with self._lock:
                self._sockets.discard(client)


def _read_request(reader):
    """``(method, target, [(name, value)], body)`` or None at end of stream."""
    line = reader.readline(65537)
    while line in (b"\r\n", b"\n"):
        line = reader.readline(65537)
    if not line:
        return None
    method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    lowered = {k.lower(): v for k, v in headers}
    if lowered.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(reader.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            parts.append(reader.read(size))
            reader.readline()
        body = b"".join(parts)
    else:
        body = reader.read(int(lowered.get("content-length", "0") or 0))
    return method, target, headers, body
