"""The fetch gate: how many data fetches (array blocks, table partitions) one session runs at once.

Each Session has one. Dask tasks hold a slot of it around each fetch, so a
graph of many chunks computed on many threads sends at most
``max_connections`` fetches at a time, whatever the scheduler. A finished
fetch is reported to the gate's ``progress`` observer, if one is set (the
client layer sets it while a progress bar is shown); the transport knows
nothing of how progress is displayed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["FetchGate"]


class FetchGate:
    """Bounds the concurrent data fetches of one session and reports each one that completes.

    Attributes:
        semaphore: the bound (a ``threading.Semaphore`` of ``slots``); any
            object with ``acquire()`` and ``release()`` may replace it.
        progress: None, or an object whose ``advance()`` is called after each
            fetch that succeeded (from whichever thread made it).
    """

    __slots__ = ("semaphore", "progress", "slots")

    def __init__(self, slots: int) -> None:
        if not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be a positive integer, not {slots!r}")
        self.slots = slots
        self.semaphore: Any = threading.Semaphore(slots)
        self.progress: Any = None

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
