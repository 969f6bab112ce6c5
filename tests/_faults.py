"""Shared pieces of the fault matrix (tests/test_faults_*.py): fault kinds, a fast-failing client, a crash.

Each fault kind arms the proxy (tests/_proxy.py) for the requests whose
target contains ``match``; ``times=1`` is a transient fault (the retry must
recover), ``times=None`` a persistent one (a clear error must come, boundedly).
"""

from __future__ import annotations

import threading

import pytest

from tiled_core.client import from_uri
from tiled_core.transport import (
    ConnectionFailed,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    TruncatedResponse,
)

#: Per-phase client timeout (s) in stall cases: a stall outlasts it, so each stalled attempt costs this much.
TIMEOUT = 1.0
#: The timeout everywhere else: long enough that a busy machine never causes a spurious one.
PATIENT_TIMEOUT = 15.0
#: How long the proxy holds a stalled answer (longer than TIMEOUT).
STALL = 3.0
#: Retries: enough for a transient fault (and a slow shared machine); a persistent one gives up fast.
TRANSIENT = RetryPolicy(attempts=4, deadline=6.0, backoff=0.05, max_backoff=0.2)
PERSISTENT = RetryPolicy(attempts=3, deadline=1.0, backoff=0.05, max_backoff=0.2)

_RESET = (ConnectionFailed, TruncatedResponse)  # an RST mid-body may surface as either

#: name -> (arm(proxy, times, match, method), the error a persistent fault must raise)
FAULTS = {
    "reset_before": (lambda p, **kw: p.reset(**kw), _RESET),
    "reset_mid": (lambda p, **kw: p.reset(0.5, **kw), _RESET),
    "stall_before": (lambda p, **kw: p.stall(STALL, **kw), RequestTimeout),
    "stall_mid": (lambda p, **kw: p.stall(STALL, 0.5, **kw), RequestTimeout),
    "cut": (lambda p, **kw: p.cut(0.5, **kw), TruncatedResponse),
    "drop": (lambda p, **kw: p.drop(**kw), ConnectionFailed),
    "429": (lambda p, **kw: p.status(429, retry_after=0.1, **kw), ServerError),
    "502": (lambda p, **kw: p.status(502, **kw), ServerError),
    "503": (lambda p, **kw: p.status(503, retry_after=0, **kw), ServerError),
    "504": (lambda p, **kw: p.status(504, **kw), ServerError),
}

#: The kinds that forward the request: the server acts on it, only its answer is damaged.
FORWARDED = frozenset({"reset_before", "reset_mid", "stall_before", "stall_mid", "cut"})


def arm(proxy, fault: str, *, times: int | None, match: str, method: str | None = None, skip: int = 0) -> None:
    """Arm ``fault`` (a FAULTS key) on the requests matching ``match`` (and ``method``)."""
    FAULTS[fault][0](proxy, times=times, match=match, method=method, skip=skip)


def expected_error(fault: str):
    return FAULTS[fault][1]


def check_status(fault: str, error: BaseException) -> None:
    """A status fault's error names the status the server (proxy) gave."""
    if fault.isdigit():
        assert error.status == int(fault)
        assert f"injected {fault}" in str(error)


def timeout_for(fault: str | None, short: float = TIMEOUT) -> float:
    """The client timeout for a case: ``short`` only where a stall must outlast it."""
    return short if fault and (fault.startswith("stall") or fault == "chaos") else PATIENT_TIMEOUT


def fast_client(uri: str, api_key: str, policy: RetryPolicy = TRANSIENT, timeout: float = PATIENT_TIMEOUT):
    """A tiled_core client with the given timeout and retry policy."""
    client = from_uri(uri, api_key=api_key, timeout=timeout)
    client.context.session.retry = policy
    return client


class Clients:
    """A module's clients through the proxy, one per timeout, kept open (connecting per test costs requests).

    ``node(key, timeout)`` gives a fresh node with the retry policy reset.
    """

    def __init__(self, uri: str, api_key: str) -> None:
        self._uri, self._api_key = uri, api_key
        self._clients: dict[float, object] = {}

    def node(self, key: str, timeout: float, policy: RetryPolicy = TRANSIENT):
        if timeout not in self._clients:
            self._clients[timeout] = fast_client(self._uri, self._api_key, policy, timeout)
        client = self._clients[timeout]
        client.context.session.retry = policy
        return client[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.context.close()


@pytest.fixture(scope="module")
def clients(proxy, tiled_server):
    """A module's ``Clients`` through the ``proxy`` fixture (import this fixture into the test module)."""
    pool = Clients(proxy.uri, tiled_server.api_key)
    yield pool
    pool.close()


def gave_up_after(error: BaseException) -> int | None:
    """The attempt count the retry loop noted on ``error`` (None: it was not retried)."""
    for note in getattr(error, "__notes__", []):
        if note.startswith("gave up after "):
            return int(note.split()[3])
    return None


class Crash:
    """Kill a LocalTiledServer when a matching request arrives at the proxy; restart it in the background.

    ``down`` is set once the server is dead (the request is then forwarded to
    nothing: its connection closes); ``up`` once it answers again. With
    ``restart=False`` it stays down until ``restart_now()``.
    """

    def __init__(self, server, proxy, *, match: str, method: str | None = None, skip: int = 0,
                 restart: bool = True) -> None:
        self.server = server
        self.down = threading.Event()
        self.up = threading.Event()
        self._restart = restart
        self._thread: threading.Thread | None = None
        proxy.hook(self._kill, match=match, method=method, skip=skip)

    def _kill(self, method: str, target: str) -> None:
        self.server.kill()
        self.down.set()
        if self._restart:
            self.restart_now()

    def restart_now(self) -> None:
        def run():
            self.server.restart()
            self.up.set()

        self._thread = threading.Thread(target=run, name="restart-server", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 120) -> None:
        """Until the server is back (raises if it did not come back)."""
        assert self.up.wait(timeout), "the server did not restart"
        self._thread.join(timeout)
