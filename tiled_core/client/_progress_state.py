"""Progress bars for reads of many chunks, and the retry indicator.

Shown only to a person: a bar needs ``show_progress`` on *and* an interactive
session (a REPL, IPython or Jupyter); scripts, pipelines and Dask workers
never draw one. The retry indicator (one "Retrying…" line on plain stderr, a
spinner on a terminal or in Jupyter) appears while requests are being retried,
from the main thread only, as with the reference client.

Rich draws the terminal bar and spinner, ipywidgets the Jupyter ones; without
them the bar is skipped and the indicator is a plain line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["ProgressState", "StandaloneRetryIndicator", "is_interactive", "is_jupyter", "show_progress_default",
           "track"]

_RETRYING = "Retrying…"


def _ipython():
    """The running IPython shell, if any (an IPython session has imported IPython: no import here)."""
    module = sys.modules.get("IPython")
    get_ipython = getattr(module, "get_ipython", None)
    return get_ipython() if get_ipython is not None else None


def is_interactive() -> bool:
    """True in an interactive Python session (REPL, IPython, Jupyter); False in scripts and workers."""
    if _ipython() is not None:
        return True
    return hasattr(sys, "ps1")


def is_jupyter() -> bool:
    """True inside a Jupyter kernel."""
    shell = _ipython()
    return shell is not None and "ZMQInteractiveShell" in type(shell).__name__


def show_progress_default(value: Any = None) -> bool:
    """``value`` if given, else ``TILED_SHOW_PROGRESS`` (``0``, ``false``, ``no`` turn bars off; default on)."""
    if value is not None:
        return bool(value)
    import os

    return os.environ.get("TILED_SHOW_PROGRESS", "1").strip().lower() not in ("0", "false", "no")


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class ProgressState:
    """The bar of one tracked read: fetches ``advance()`` it; retries show a spinner under it.

    Built by ``Context.tracking_progress``; ``advance`` may be called from any thread.
    """

    __slots__ = ("_progress", "_task_id", "_spinner", "_live", "_retrying")

    def __init__(self, progress: Any, task_id: Any, spinner: Any) -> None:
        self._progress = progress
        self._task_id = task_id
        self._spinner = spinner
        self._live = None
        self._retrying = False

    def advance(self) -> None:
        """One more fetch done."""
        self._progress.advance(self._task_id)

    def show_retrying(self) -> None:
        """Show the retry spinner below the bar (no-op if it is shown)."""
        if self._retrying:
            return
        self._retrying = True
        if self._live is not None:
            from rich.console import Group

            self._live.update(Group(self._progress, self._spinner))

    def hide_retrying(self) -> None:
        """Remove the retry spinner (no-op if it is not shown)."""
        if not self._retrying:
            return
        self._retrying = False
        if self._live is not None:
            self._live.update(self._progress)

    def _top_up(self, total: int) -> None:
        """Complete the bar (workers in other processes cannot advance it)."""
        done = self._progress.tasks[self._task_id].completed
        if done < total:
            self._progress.advance(self._task_id, total - done)


class _WidgetProgressState:
    """ProgressState for Jupyter: an ipywidgets bar and a label with the count and time left."""

    __slots__ = ("_bar", "_label", "_total", "_done", "_start", "_retrying", "_lock")

    def __init__(self, bar: Any, label: Any, total: int) -> None:
        self._bar, self._label, self._total = bar, label, total
        self._done = 0
        self._start: float | None = None
        self._retrying = False
        self._lock = threading.Lock()

    def _text(self) -> str:
        eta = "-:--:--"
        if self._done and self._start is not None:
            left = (self._total - self._done) * (time.monotonic() - self._start) / self._done
            hours, rest = divmod(int(left), 3600)
            eta = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        suffix = f" {_RETRYING}" if self._retrying else ""
        return f"<span style='font-size:var(--jp-widgets-font-size)'>{self._done}/{self._total} {eta}{suffix}</span>"

    def advance(self) -> None:
        with self._lock:
            if self._start is None:
                self._start = time.monotonic()
            self._done += 1
            self._bar.value = self._done
            self._label.value = self._text()

    def show_retrying(self) -> None:
        self._retrying = True
        self._label.value = self._text()

    def hide_retrying(self) -> None:
        self._retrying = False
        self._label.value = self._text()

    def _top_up(self, total: int) -> None:
        while self._done < total:
            self.advance()


class StandaloneRetryIndicator:
    """Says that requests are being retried when no progress bar is shown.

    On a terminal a spinner runs from the first ``show()`` until ``reset()``;
    in Jupyter a label is displayed; elsewhere (pipes, CI, logs) one plain
    "Retrying…" line goes to stderr. Only the main thread draws, so Dask
    worker threads never write to the terminal.
    """

    def __init__(self) -> None:
        self._showing = False
        self._live: Any = None

    @staticmethod
    def _stderr_is_tty() -> bool:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())

    def show(self) -> None:
        """Start the indicator (no-op if it is showing, or off the main thread)."""
        if not _on_main_thread() or self._showing:
            return
        self._showing = True
        if is_jupyter() and importlib.util.find_spec("ipywidgets") is not None:
            import ipywidgets
            from IPython.display import display

            self._live = ipywidgets.Label(value=f"⟳ {_RETRYING}")
            display(self._live)
        elif self._stderr_is_tty() and importlib.util.find_spec("rich") is not None:
            from rich.console import Console
            from rich.live import Live
            from rich.spinner import Spinner

            spinner = Spinner("dots", text=f"[yellow]{_RETRYING}[/yellow]")
            self._live = Live(spinner, console=Console(stderr=True, highlight=False), transient=True)
            self._live.start()
        else:
            sys.stderr.write(f"{_RETRYING}\n")
            sys.stderr.flush()

    def reset(self) -> None:
        """Stop the indicator (no-op if it is not showing, or off the main thread)."""
        if not _on_main_thread() or not self._showing:
            return
        self._showing = False
        live, self._live = self._live, None
        if live is None:
            return
        if hasattr(live, "stop"):
            live.stop()
        else:  # an ipywidgets label
            with contextlib.suppress(Exception):
                live.close()


@contextlib.contextmanager
def track(total: int, install) -> Iterator[Any]:
    """Draw a bar of ``total`` steps; ``install(state)`` / ``install(None)`` publish it to the fetches.

    Yields the state (a ProgressState, or the Jupyter equivalent). Callers
    decide whether a bar is wanted (see ``Context.tracking_progress``).
    """
    if is_jupyter() and importlib.util.find_spec("ipywidgets") is not None:
        context = _widget_bar(total)
    elif importlib.util.find_spec("rich") is not None:
        context = _terminal_bar(total)
    else:
        context = contextlib.nullcontext(None)
    with context as state:
        if state is None:
            yield None
            return
        install(state)
        try:
            yield state
            state._top_up(total)
        finally:
            install(None)


@contextlib.contextmanager
def _terminal_bar(total: int) -> Iterator[ProgressState]:
    from rich.console import Console
    from rich.errors import LiveError
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    from rich.spinner import Spinner

    # force_terminal: IPython's terminal replaces stderr with a stream that is not a TTY.
    console = Console(stderr=True, force_terminal=True)
    progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=console)
    task_id = progress.add_task("Fetching data…", total=total)
    state = ProgressState(progress, task_id, Spinner("dots", text=f"[yellow]{_RETRYING}[/yellow]"))
    live = Live(progress, transient=True, console=console)
    try:
        live.start()
    except LiveError:  # another live display (the caller's own) is showing: no bar of ours
        yield None
        return
    try:
        state._live = live
        yield state
    finally:
        live.stop()


@contextlib.contextmanager
def _widget_bar(total: int) -> Iterator[_WidgetProgressState]:
    import ipywidgets as widgets
    from IPython.display import display

    bar = widgets.IntProgress(value=0, min=0, max=total, description="Fetching:",
                              style={"description_width": "initial"},
                              layout=widgets.Layout(width="300px", height="16px", flex="0 0 auto"))
    label = widgets.HTML("", layout=widgets.Layout(width="180px"))
    box = widgets.HBox([bar, label], layout=widgets.Layout(align_items="center"))
    state = _WidgetProgressState(bar, label, total)
    label.value = state._text()
    display(box)
    try:
        yield state
    finally:
        box.close()


class ContextProgress:
    """What a ``Context`` offers for progress and retries (mixed into it; needs ``self._session``).

    ``show_progress`` (constructor argument, else ``TILED_SHOW_PROGRESS``)
    allows bars; ``tracking_progress(total)`` draws one around a read;
    ``signal_retry()`` / ``signal_retry_resolved()`` show and hide the retry
    indicator; ``throttle()`` is the slot a data fetch holds.
    """

    show_progress: bool = False
    _retry_indicator: StandaloneRetryIndicator | None = None

    @property
    def _concurrent_request_semaphore(self):
        """The bound on concurrent data fetches (``max_connections`` slots); may be replaced."""
        return self._session.fetch_gate.semaphore

    @_concurrent_request_semaphore.setter
    def _concurrent_request_semaphore(self, semaphore) -> None:
        self._session.fetch_gate.semaphore = semaphore

    def throttle(self):
        """The semaphore a data fetch holds (``with context.throttle(): ...``); at most ``max_connections`` at once."""
        return self._session.fetch_gate.semaphore

    @property
    def _progress_state(self):
        return self._session.fetch_gate.progress

    @_progress_state.setter
    def _progress_state(self, state) -> None:
        self._session.fetch_gate.progress = state

    @property
    def progress_state(self):
        """The bar being drawn (a ProgressState), or None."""
        return self._progress_state

    def _bars_possible(self) -> bool:
        """Whether ``tracking_progress`` could draw a bar now (callers skip counting fetches otherwise)."""
        from . import utils

        return (self.show_progress and self._progress_state is None and _on_main_thread()
                and utils.is_interactive())

    @contextlib.contextmanager
    def tracking_progress(self, total: int) -> Iterator[Any]:
        """Draw a progress bar of ``total`` fetches while the block runs; yields its state, or None.

        A bar is drawn only with ``show_progress`` on, ``total > 1``, an
        interactive session and on the main thread; an inner
        ``tracking_progress`` leaves the outer bar in charge. The fetches of
        this context's reads and Dask tasks advance it, from any thread.
        """
        # Bars are the main thread's: reads on other threads advance its bar, if any, but draw none.
        # (``utils.is_interactive`` is looked up at each call: it may be replaced.)
        if total <= 1 or not self._bars_possible():
            yield None
            return

        def install(state) -> None:
            self._progress_state = state

        with track(total, install) as state:
            yield state

    @property
    def retry_indicator(self) -> StandaloneRetryIndicator | None:
        """The retry indicator shown when no bar is, or None."""
        return self._retry_indicator

    def signal_retry(self) -> None:
        """A request is being retried: a spinner under the bar, else (main thread only) the standalone indicator."""
        state = self._progress_state
        if state is not None:
            state.show_retrying()
        elif _on_main_thread():
            if self._retry_indicator is None:
                self._retry_indicator = StandaloneRetryIndicator()
            self._retry_indicator.show()

    def signal_retry_resolved(self) -> None:
        """The retries are over: hide whichever indicator is shown (the standalone one from the main thread)."""
        state = self._progress_state
        if state is not None:
            state.hide_retrying()
        if self._retry_indicator is not None and _on_main_thread():
            indicator, self._retry_indicator = self._retry_indicator, None
            indicator.reset()
