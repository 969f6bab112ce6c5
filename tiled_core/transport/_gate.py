"""The fetch gate: how many data fetches (array blocks, table partitions) one session runs at once,
and who is told about fetches and retries.

Each Session has one. Dask tasks hold a slot of it around each fetch, so a
graph of many chunks computed on many threads sends at most
``max_connections`` fetches at a time, whatever the scheduler. A finished
fetch is reported to the gate's ``progress`` observer, if one is set (the
client layer sets it while a progress bar is shown), and the session's retry
loop reports retries to a watcher (the Context, which shows its retry
indicator). The transport knows nothing of how either is displayed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["FetchGate"]

_logger = logging.getLogger("tiled_core.transport")


class FetchGate:
    """Bounds the concurrent data fetches of one session and reports each one that completes.

    Attributes:
        semaphore: the bound (a ``threading.Semaphore`` of ``slots``); any
            object with ``acquire()`` and ``release()`` may replace it.
        progress: None, or an object whose ``advance()`` is called after each
            fetch that succeeded (from whichever thread made it).
    """

    __slots__ = ("semaphore", "progress", "slots", "_watcher")

    def __init__(self, slots: int) -> None:
        if not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be a positive integer, not {slots!r}")
        self.slots = slots
        self.semaphore: Any = threading.Semaphore(slots)
        self.progress: Any = None
        self._watcher: weakref.ref | None = None

    def watch_retries(self, watcher: Any) -> None:
        """Tell ``watcher`` (held weakly) of retries: its ``signal_retry()`` before each wait,
        ``signal_retry_resolved()`` when a request that was retried ends, either way."""
        self._watcher = weakref.ref(watcher) if watcher is not None else None

    def _tell(self, method: str) -> None:
        watcher = self._watcher() if self._watcher is not None else None
        if watcher is None:
            return
        try:
            getattr(watcher, method)()
        except Exception:  # showing an indicator must never break a request
            _logger.debug("retry watcher %s failed", method, exc_info=True)

    def retrying(self) -> None:
        """A request failed and will be tried again."""
        self._tell("signal_retry")

    def resolved(self) -> None:
        """A request that was retried has ended (succeeded or failed for good)."""
        self._tell("signal_retry_resolved")

    @contextlib.contextmanager
    def fetch(self) -> Iterator[None]:
        """Hold one slot for the length of a fetch; on success, advance the progress observer."""
        semaphore = self.semaphore  # the one acquired is the one released, even if it is replaced meanwhile
        semaphore.acquire()
        try:
            yield
        finally:
            semaphore.release()
        observer = self.progress
        if observer is not None:
            observer.advance()

    def __repr__(self) -> str:
        return f"<FetchGate {self.slots} slots>"
