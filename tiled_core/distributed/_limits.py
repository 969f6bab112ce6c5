"""How many requests one worker process sends to one server at once, whatever its thread count.

A big cluster multiplies threads; without a per-process bound every thread of
every worker could hit the server at the same time. Each process allows
``TILED_CORE_WORKER_CONCURRENCY`` (default 4) requests per server; change it on
running workers with ``dask_client.run(set_worker_concurrency, n)``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

__all__ = ["CONCURRENCY_ENV", "request_slot", "set_worker_concurrency", "slot_stats", "worker_concurrency"]

CONCURRENCY_ENV = "TILED_CORE_WORKER_CONCURRENCY"
DEFAULT_CONCURRENCY = 4

_LOCK = threading.Lock()
_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_OVERRIDE: int | None = None
_IN_USE: dict[str, int] = {}
_PEAK: dict[str, int] = {}


def worker_concurrency() -> int:
    """This process's bound: set_worker_concurrency(), else the environment, else 4."""
    if _OVERRIDE is not None:
        return _OVERRIDE
    raw = os.environ.get(CONCURRENCY_ENV)
    if raw is None:
        return DEFAULT_CONCURRENCY
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{CONCURRENCY_ENV}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{CONCURRENCY_ENV} must be at least 1, not {value}")
    return value


def set_worker_concurrency(n: int) -> int:
    """Bound this process to ``n`` concurrent requests per server (new slots only); returns ``n``."""
    global _OVERRIDE
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"concurrency must be a positive integer, not {n!r}")
    with _LOCK:
        _OVERRIDE = n
        _SLOTS.clear()  # requests holding an old slot finish under the old bound
        _PEAK.clear()
    return n


#: One request to SQL-backed (appendable) tables at a time in this process, whatever the server:
#: tiled 0.2.20's SQL adapter shares one database connection between requests, and concurrent ones
#: fail (500, "no transaction is active") or crash the server process.
SQL_TABLES = threading.Lock()


@contextlib.contextmanager
def request_slot(base_url: str) -> Iterator[None]:
    """Hold one of this process's request slots for ``base_url``."""
    with _LOCK:
        slot = _SLOTS.get(base_url)
        if slot is None:
            slot = _SLOTS[base_url] = threading.BoundedSemaphore(worker_concurrency())
    with slot:
        with _LOCK:
            _IN_USE[base_url] = _IN_USE.get(base_url, 0) + 1
            _PEAK[base_url] = max(_PEAK.get(base_url, 0), _IN_USE[base_url])
        try:
            yield
        finally:
            with _LOCK:
                _IN_USE[base_url] -= 1


def slot_stats(reset: bool = False) -> dict[str, dict[str, int]]:
    """Per server: this process's bound, requests in flight now, and the most ever in flight at once."""
    with _LOCK:
        stats = {url: {"limit": worker_concurrency(), "in_use": _IN_USE.get(url, 0), "peak": peak}
                 for url, peak in _PEAK.items()}
        if reset:
            _PEAK.clear()
    return stats
