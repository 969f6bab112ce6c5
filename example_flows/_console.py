"""What the main job shows a person: quiet orchestrators, a line per stage, progress while it waits.

By default the orchestrators' own logs are kept at WARNING (Dagster's
in-process runs log every event at DEBUG, Dask and Prefect at INFO) and their
telemetry is off; ``--verbose`` leaves all of that as the libraries set it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings

#: Loggers turned down to WARNING unless --verbose.
NOISY_LOGGERS = ("prefect", "distributed", "dask", "dagster", "tornado", "httpx", "uvicorn", "docket", "alembic")

TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DAGSTER_DISABLE_TELEMETRY": "1"}


def configure(verbose: bool) -> None:
    """Call before Prefect or Dagster is imported: telemetry off; unless ``verbose``, their logs at WARNING."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    # Prefect's temporary API server gets 20 s to start by default: too little on a busy laptop.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if verbose:
        return
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    warnings.filterwarnings("ignore", module=r"dagster(\.|$)")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"distributed(\.|$)")
    quiet_loggers()


def quiet_loggers() -> None:
    """Set the orchestrators' loggers to WARNING (again: importing Prefect reconfigures logging)."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class Ticker:
    """``label ... 4 s`` redrawn on a terminal (stderr) while a slow step runs; one line otherwise.

    ``say(text)`` prints a line (stdout) without garbling the ticking one.
    """

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread: threading.Thread | None = None

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._started

    def _draw(self) -> None:
        self._stream.write(f"\r\033[K{self.label} ... {self.seconds:.0f} s")
        self._stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._draw()

    def say(self, text: str) -> None:
        with self._lock:
            if self._tty:
                self._stream.write("\r\033[K")
                self._stream.flush()
            print(text, flush=True)
            if self._tty:
                self._draw()

    def __enter__(self) -> "Ticker":
        self._started = time.perf_counter()
        if self._tty:
            self._draw()
            self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)
            self._thread.start()
        else:
            print(f"{self.label} ...", flush=True)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._tty:
                self._stream.write("\r\033[K")
                self._stream.flush()
            outcome = "failed" if exc[0] is not None else "done"
            print(f"{self.label}: {outcome} in {self.seconds:.1f} s", flush=True)

