"""Copy progress: a snapshot type, an optional terminal bar, and the final summary.

Progress is a callback passed down (never UI inside the transport): the copy
engine calls ``reporter.update(snapshot)``; a terminal bar (tqdm, if
installed) is just one such callback.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

from ..transport import Conflict

__all__ = ["CopyConflict", "CopyError", "CopyProgress", "CopySummary", "make_reporter"]


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class CopyProgress:
    """Where a copy stands. ``*_found`` grow as the source tree is walked."""

    nodes_done: int
    nodes_found: int
    bytes_done: int
    bytes_found: int
    skipped: int
    failed: int
    seconds: float
    path: str = ""


@dataclasses.dataclass
class CopySummary:
    """What a copy did: nodes copied (created or completed), bytes moved, time, nodes skipped and failed.

    ``errors`` lists ``(path, message)`` for the failed nodes.
    """

    nodes: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped: int = 0
    failed: int = 0
    errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def __str__(self) -> str:
        rate = f", {_size(self.bytes / self.seconds)}/s" if self.seconds > 0 and self.bytes else ""
        text = (f"copied {self.nodes} nodes, {_size(self.bytes)} in {self.seconds:.1f} s{rate}; "
                f"skipped {self.skipped}; failed {self.failed}")
        for path, message in self.errors[:5]:
            text += f"\n  failed: /{path}: {message}"
        if len(self.errors) > 5:
            text += f"\n  ... and {len(self.errors) - 5} more"
        return text


class CopyError(RuntimeError):
    """A copy stopped because some nodes failed. ``summary`` says what was done; rerun to finish.

    The first node's error is the ``__cause__``.
    """

    def __init__(self, message: str, summary: CopySummary) -> None:
        RuntimeError.__init__(self, message)
        self.summary = summary


class CopyConflict(CopyError, Conflict):
    """A copy with ``on_conflict="error"`` stopped at a key that exists at the destination.

    Both a :class:`CopyError` (with ``summary``) and the server's 409
    :class:`~tiled_core.transport.Conflict` (a ``ClientError`` with ``status``,
    ``response``), which is what the reference client's ``copy`` raises there.
    """

    def __init__(self, message: str, summary: CopySummary, conflict: Conflict) -> None:
        Conflict.__init__(self, conflict.status, conflict.detail, url=conflict.url, request_id=conflict.request_id)
        CopyError.__init__(self, message, summary)


class _Bar:
    """A tqdm bar over bytes, without a percentage: the total grows as the tree is walked.

    A percentage of a growing total goes backwards; instead the bar shows the
    bytes copied and the rate, with nodes done out of nodes found so far.
    """

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc="copy", file=sys.stderr,
                         dynamic_ncols=True, leave=True)
        self._last = 0.0

    def __call__(self, progress: CopyProgress, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.2:
            return
        self._last = now
        self._bar.n = progress.bytes_done
        self._bar.set_postfix_str(
            f"{progress.nodes_done}/{progress.nodes_found} nodes, {progress.skipped} skipped, {progress.failed} failed",
            refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class _Reporter:
    def __init__(self, callback: Callable[[CopyProgress], None] | None, bar: _Bar | None) -> None:
        self._callback = callback
        self._bar = bar

    def update(self, progress: CopyProgress, final: bool = False) -> None:
        if self._bar is not None:
            self._bar(progress, final)
        if self._callback is not None:
            self._callback(progress)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _tqdm_available() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def make_reporter(progress) -> _Reporter:
    """``progress``: None (a bar when stderr is a terminal and tqdm is installed), True/False, or a callable."""
    if callable(progress) and not isinstance(progress, bool):
        return _Reporter(progress, None)
    if progress is None:
        progress = sys.stderr is not None and sys.stderr.isatty() and _tqdm_available()
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be None, a bool or a callable, not {type(progress).__name__}")
    if progress and not _tqdm_available():
        raise ValueError("progress=True needs the tqdm package; install it or pass a callable")
    return _Reporter(None, _Bar() if progress else None)
