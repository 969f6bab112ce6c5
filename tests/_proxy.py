"""A tiny fault-injecting HTTP/1.1 proxy on loopback, for reliability tests.

It forwards every request to a real upstream server and, when told to,
damages the answer to the next matching request(s). Each fault method takes
``times`` (how many matching requests it hits; None: all), ``match`` (a
substring of the request target), ``method`` (e.g. ``"PUT"``) and ``skip``
(let that many matching requests through first, to strike mid-operation):

* ``cut(at)``: send the real status line and headers (with the real
  ``Content-Length``), then only the first ``at`` bytes of the body, then close
  the connection -- a truncated response.
* ``reset(at=None)``: forward the request (the server does the work), then
  abort the connection with a TCP RST (``SO_LINGER`` 0): before any response
  byte (``at=None``) or after the headers and ``at`` body bytes.
* ``stall(seconds, at=None)``: forward, then hold the answer ``seconds``
  before its first byte (``at=None``) or after the headers and ``at`` body
  bytes; the rest follows if the client still listens.
* ``respond(status, ...)``: answer with a canned status, headers and body
  instead of forwarding (e.g. 429 or 503 with ``Retry-After``: see
  ``status()``).
* ``drop()``: close the connection without answering (nothing forwarded).
* ``hook(fn)``: call ``fn(method, target)`` before forwarding (e.g. kill the
  server mid-operation), then forward as usual.
* ``latency(seconds)``: not a fault but a slow link: every request waits
  ``seconds`` before it is forwarded and its answer ``seconds`` before it is
  sent (a round trip costs ``2 * seconds`` more). Each connection waits on its
  own, so concurrent connections overlap as on a real link; ``latency(0)``
  turns it off.
* ``chaos(seed=, rate=, kinds=)``: a random fault from ``kinds`` on a fraction
  ``rate`` of matching requests, drawn from ``random.Random(seed)`` in arrival
  order (reproducible for sequential clients).

``at`` is a byte count (int) or a fraction of the body (float, e.g. 0.5).
Faults are tried in the order they were added; the first that applies wins.

It also records every request it sees (``requests``: ``(method, target,
headers)``), the status of every forwarded answer (``responses``: ``(method,
target, status)``) and every fault applied (``applied``: ``(kind, method,
target)``), so tests can count round trips, inspect URLs and see
revalidations (304). ``in_flight`` is how many requests are between
arrival and the end of their answer now, ``peak_in_flight`` the most at once
(``clear()`` resets it): whether a client overlaps its requests.

Only what the tests need: keep-alive, Content-Length and chunked request
bodies; upstream responses are read whole (``http.client`` decodes chunked
transfer encoding) and re-sent with a Content-Length.
"""

from __future__ import annotations

import dataclasses
import http.client
import queue
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["FaultProxy", "CHAOS_KINDS"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}

#: What ``chaos`` picks from by default: every fault a client must survive.
CHAOS_KINDS = ("reset", "reset_mid", "stall", "stall_mid", "cut", "drop", "429", "502", "503", "504")


@dataclasses.dataclass
class _Fault:
    kind: str  # "cut", "reset", "stall", "respond", "drop", "hook" or "chaos"
    times: int | None  # None: every matching request
    match: str | None  # substring of the request target, or None for any
    method: str | None = None  # only requests with this method, or None for any
    skip: int = 0  # matching requests let through before this fault starts
    at: int | float | None = None  # where in the body (bytes, or a fraction of it); None: before any byte
    seconds: float = 0.0
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hook: Callable[[str, str], None] | None = None
    rng: random.Random | None = None  # chaos: the seeded draw
    rate: float = 0.0
    kinds: tuple[str, ...] = ()

    def applies(self, method: str, target: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and (self.match is None or self.match in target)
            and (self.method is None or self.method == method)
        )

    def offset(self, size: int) -> int:
        """Where in a body of ``size`` bytes this fault strikes."""
        if self.at is None:
            return 0
        if isinstance(self.at, float):
            return int(size * self.at)
        return self.at

    def draw(self) -> "_Fault | None":
        """Chaos: a concrete fault for this request, or None to let it through."""
        if self.rng.random() >= self.rate:
            return None
        kind = self.rng.choice(self.kinds)
        if kind.isdigit():
            retry_after = (("Retry-After", "0"),) if kind in ("429", "503") else ()
            return _status_fault(int(kind), retry_after, times=1, match=None)
        mid = 0.5 if kind.endswith("_mid") or kind == "cut" else None
        base = kind.removesuffix("_mid")
        return _Fault(base, 1, None, at=mid, seconds=self.seconds)


def _status_fault(status: int, headers: tuple[tuple[str, str], ...], *, times, match, method=None,
                  skip: int = 0) -> _Fault:
    body = b'{"detail": "injected %d"}' % status
    headers = (("content-type", "application/json"), *headers)
    return _Fault("respond", times, match, method, skip, status=status, headers=headers, body=body)


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
        self._stop = threading.Event()  # wakes stalls when the proxy closes
        self._sockets: set[socket.socket] = set()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.responses: list[tuple[str, str, int]] = []
        self.applied: list[tuple[str, str, str]] = []
        self.faults_applied = 0
        self.latency_seconds = 0.0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    # -- control ---------------------------------------------------------------
    @property
    def uri(self) -> str:
        """The proxied API base, ``http://127.0.0.1:<port>/api/v1``."""
        return f"http://127.0.0.1:{self.port}/api/v1"

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def cut(self, nbytes: int | float, *, times: int | None = 1, match: str | None = None,
            method: str | None = None, skip: int = 0) -> None:
        """Truncate the body of the next ``times`` matching responses (None: all) after ``nbytes``."""
        self._add(_Fault("cut", times, match, method, skip, at=nbytes))

    def reset(self, at: int | float | None = None, *, times: int | None = 1, match: str | None = None,
              method: str | None = None, skip: int = 0) -> None:
        """Forward, then abort with a TCP RST before the answer (``at=None``) or ``at`` bytes into its body."""
        self._add(_Fault("reset", times, match, method, skip, at=at))

    def stall(self, seconds: float, at: int | float | None = None, *, times: int | None = 1,
              match: str | None = None, method: str | None = None, skip: int = 0) -> None:
        """Forward, then hold the answer ``seconds`` before its first byte (``at=None``) or ``at`` bytes into its body."""
        self._add(_Fault("stall", times, match, method, skip, at=at, seconds=seconds))

    def drop(self, *, times: int | None = 1, match: str | None = None, method: str | None = None,
             skip: int = 0) -> None:
        """Close the connection instead of answering (nothing is forwarded upstream)."""
        self._add(_Fault("drop", times, match, method, skip))

    def respond(self, status: int, *, headers: dict[str, str] | None = None, body: bytes = b"",
                times: int | None = 1, match: str | None = None, method: str | None = None,
                skip: int = 0) -> None:
        """Answer the next ``times`` matching requests with this canned response (not forwarded)."""
        self._add(_Fault("respond", times, match, method, skip, status=status,
                         headers=tuple((headers or {}).items()), body=body))

    def status(self, status: int, *, retry_after: float | None = None, times: int | None = 1,
               match: str | None = None, method: str | None = None, skip: int = 0) -> None:
        """Answer with ``status`` and a JSON detail (a gateway error, or 429/503 with ``Retry-After``)."""
        extra = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
        self._add(_status_fault(status, extra, times=times, match=match, method=method, skip=skip))

    def hook(self, fn: Callable[[str, str], None], *, times: int | None = 1, match: str | None = None,
             method: str | None = None, skip: int = 0) -> None:
        """Call ``fn(method, target)`` when a matching request arrives, then forward it."""
        self._add(_Fault("hook", times, match, method, skip, hook=fn))

    def chaos(self, *, seed: int, rate: float, kinds: Sequence[str] = CHAOS_KINDS, stall: float = 2.0,
              times: int | None = None, match: str | None = None, method: str | None = None,
              skip: int = 0) -> None:
        """Apply a random fault from ``kinds`` (see ``CHAOS_KINDS``) to a fraction ``rate`` of matching requests.

        Draws come from ``random.Random(seed)`` in the order requests arrive;
        ``stall`` is the hold of the stall kinds; ``times`` caps the number of
        matching requests considered (not the faults).
        """
        unknown = set(kinds) - set(CHAOS_KINDS)
        if unknown:
            raise ValueError(f"unknown chaos kinds {sorted(unknown)}; choose from {CHAOS_KINDS}")
        self._add(_Fault("chaos", times, match, method, skip, rng=random.Random(seed), rate=rate,
                         kinds=tuple(kinds), seconds=stall))

    def latency(self, seconds: float) -> None:
        """Delay every request ``seconds`` before forwarding it and its answer ``seconds`` before sending it."""
        if not 0 <= seconds <= 10:
            raise ValueError(f"latency must be between 0 and 10 seconds, not {seconds!r}")
        self.latency_seconds = float(seconds)

    def clear(self) -> None:
        """Forget pending faults and recorded requests."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.responses.clear()
            self.applied.clear()
            self.faults_applied = 0
            self.peak_in_flight = self.in_flight

    def targets(self) -> list[str]:
        with self._lock:
            return [target for _, target, _ in self.requests]

    def close(self) -> None:
        self._closed = True
        self._stop.set()
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
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                    if fault.kind == "chaos":
                        fault = fault.draw()
                        if fault is None:
                            return None
                    self.faults_applied += 1
                    self.applied.append((fault.kind if fault.kind != "respond" else str(fault.status),
                                         method, target))
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
        # Three stages per connection, as on a real link with HTTP/1.1 pipelining: requests are read
        # (and time-stamped) as they arrive, answered one at a time in order, and each answer is sent
        # ``latency`` after it is ready, so requests queued on one connection overlap their waits.
        state = {"upstream": http.client.HTTPConnection(*self._upstream, timeout=60), "graceful": True,
                 "outbox": _Outbox(client, self._stop)}
        reader = client.makefile("rb")
        arrivals: queue.SimpleQueue = queue.SimpleQueue()
        reading = threading.Thread(target=self._read_loop, args=(reader, arrivals), name="fault-proxy-reader",
                                   daemon=True)
        reading.start()
        try:
            while True:
                request, arrived = arrivals.get()
                if request is None:
                    return
                try:
                    if not self._answer(client, state, request, arrived):
                        return
                finally:
                    with self._lock:
                        self.in_flight -= 1
        except OSError:
            return
        finally:
            state["outbox"].close()
            state["upstream"].close()
            if not state["graceful"]:
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:  # FIN (or, for a RST, only stop reading), which also ends the reader thread's wait
                client.shutdown(socket.SHUT_RDWR if state["graceful"] else socket.SHUT_RD)
            except OSError:
                pass
            reading.join(timeout=5)
            reader.close()
            client.close()
            while True:  # requests read but never answered are no longer in flight
                try:
                    request, _ = arrivals.get_nowait()
                except queue.Empty:
                    break
                if request is not None:
                    with self._lock:
                        self.in_flight -= 1
            with self._lock:
                self._sockets.discard(client)

    def _read_loop(self, reader, arrivals: queue.SimpleQueue) -> None:
        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    break
                with self._lock:
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                arrivals.put((request, time.monotonic()))
        except (OSError, ValueError):
            pass  # the connection closed
        arrivals.put((None, time.monotonic()))

    def _delay(self, until: float) -> bool:
        """Wait (the link's latency) until ``until``; False when the proxy closes meanwhile."""
        remaining = until - time.monotonic()
        return remaining <= 0 or not self._stop.wait(remaining)

    def _answer(self, client: socket.socket, state: dict, request, arrived: float) -> bool:
        """Answer one request; False to close the connection (``state["graceful"]`` False: with a RST)."""
        method, target, headers, body = request
        latency = self.latency_seconds
        with self._lock:
            self.requests.append((method, target, dict(headers)))
        if latency and not self._delay(arrived + latency):
            return False
        fault = self._take_fault(method, target)
        kind = fault.kind if fault is not None else None
        if kind == "drop":
            return False
        if kind == "respond":
            extra = {k.lower() for k, _ in fault.headers}
            head = [f"HTTP/1.1 {fault.status} {http.client.responses.get(fault.status, 'Error')}"]
            head += [f"{k}: {v}" for k, v in fault.headers]
            if "content-length" not in extra:
                head.append(f"content-length: {len(fault.body)}")
            state["outbox"].send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + fault.body,
                                 time.monotonic() + latency)
            return True
        if kind == "hook":
            fault.hook(method, target)
        forward = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
        upstream = state["upstream"]
        kept_alive = upstream.sock is not None
        try:
            response, payload = _forward(upstream, method, target, forward, body)
        except (OSError, http.client.HTTPException):
            if not kept_alive:
                return False  # upstream gone (e.g. the server was killed): the client sees the connection close
            # The server closes idle keep-alive connections: one fresh connection, as a gateway would.
            upstream.close()
            upstream = state["upstream"] = http.client.HTTPConnection(*self._upstream, timeout=60)
            try:
                response, payload = _forward(upstream, method, target, forward, body)
            except (OSError, http.client.HTTPException):
                return False  # upstream gone (e.g. the server was killed): the client sees the connection close
        with self._lock:
            self.responses.append((method, target, response.status))
        head = [f"HTTP/1.1 {response.status} {response.reason}"]
        head += [f"{k}: {v}" for k, v in response.getheaders()
                 if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
        head.append(f"content-length: {len(payload)}")  # the full size, even when cutting
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if kind is None:
            state["outbox"].send(data + payload, time.monotonic() + latency)
            return True
        # A fault acts on the connection itself: the answers before it go out first.
        if not state["outbox"].drain() or (latency and not self._delay(time.monotonic() + latency)):
            return False
        if kind == "cut":
            client.sendall(data + payload[: fault.offset(len(payload))])
            return False  # close: the client sees a body shorter than announced
        if kind == "reset":
            if fault.at is not None:
                client.sendall(data + payload[: fault.offset(len(payload))])
            state["graceful"] = False
            return False
        if kind == "stall":
            sent = 0 if fault.at is None else fault.offset(len(payload))
            if fault.at is not None:
                client.sendall(data + payload[:sent])
            if self._stop.wait(fault.seconds):
                return False
            client.sendall((data if fault.at is None else b"") + payload[sent:])
            return True
        client.sendall(data + payload)
        return True


class _Outbox:
    """Sends a connection's answers in order, each at its time (the link's latency), from a thread of its own."""

    def __init__(self, client: socket.socket, stop: threading.Event) -> None:
        self._client, self._stop = client, stop
        self._queue: queue.Queue = queue.Queue()
        self._broken = False
        self._thread = threading.Thread(target=self._run, name="fault-proxy-sender", daemon=True)
        self._thread.start()

    def send(self, data: bytes, at: float) -> None:
        self._queue.put((data, at))

    def drain(self) -> bool:
        """Wait until everything queued is sent; False if the connection broke."""
        self._queue.join()
        return not self._broken

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                data, at = item
                remaining = at - time.monotonic()
                if self._broken or (remaining > 0 and self._stop.wait(remaining)):
                    self._broken = True
                    continue
                self._client.sendall(data)
            except OSError:
                self._broken = True
            finally:
                self._queue.task_done()


def _forward(upstream: http.client.HTTPConnection, method: str, target: str, headers, body: bytes):
    """Send one request upstream; ``(response, whole body)``."""
    upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for k, v in headers:
        upstream.putheader(k, v)
    upstream.putheader("content-length", str(len(body)))
    upstream.endheaders(body)
    response = upstream.getresponse()
    return response, response.read()


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


def main(argv=None) -> None:
    """Run one proxy in its own process (benchmarks): ``python tests/_proxy.py UPSTREAM_PORT [--latency S]``.

    Prints its port on the first line of stdout, then answers commands read
    from stdin, one a line: ``stats`` (a JSON line: requests by method,
    ``peak_in_flight``), ``clear``, ``latency S``. Ends at end of stdin.
    """
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added each way")
    args = parser.parse_args(argv)
    with FaultProxy("127.0.0.1", args.upstream_port) as proxy:
        proxy.latency(args.latency)
        print(proxy.port, flush=True)
        for line in sys.stdin:
            command, *rest = line.split()
            if command == "stats":
                with proxy._lock:
                    methods: dict[str, int] = {}
                    for method, _, _ in proxy.requests:
                        methods[method] = methods.get(method, 0) + 1
                    stats = {"requests": len(proxy.requests), "methods": methods,
                             "peak_in_flight": proxy.peak_in_flight}
                print(json.dumps(stats), flush=True)
            elif command == "clear":
                proxy.clear()
                print("{}", flush=True)
            elif command == "latency":
                proxy.latency(float(rest[0]))
                print("{}", flush=True)


if __name__ == "__main__":
    main()
