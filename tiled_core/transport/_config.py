"""Connection settings as small immutable values."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping

import httpx

__all__ = ["Timeouts", "Limits", "RetryPolicy"]

DEFAULT_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds allowed per phase of a request (``None``: no limit)."""

    connect: float | None = 10.0
    read: float | None = DEFAULT_TIMEOUT
    write: float | None = DEFAULT_TIMEOUT
    pool: float | None = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        # Zero would make sockets non-blocking (an instant, misleading "connection broke"); NaN and
        # infinity fail deep inside httpx or the OS.
        for phase in ("connect", "read", "write", "pool"):
            value = getattr(self, phase)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"timeout {phase!r} must be a number of seconds or None, not {type(value).__name__}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"timeout {phase!r} must be a positive, finite number of seconds "
                                 f"(None for no limit), not {value!r}")

    @classmethod
    def coerce(cls, value: "Timeouts | float | Mapping | httpx.Timeout | None") -> "Timeouts":
        """Accept a Timeouts, one number for every phase, a mapping of phases, or an httpx.Timeout."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, httpx.Timeout):
            return cls(value.connect, value.read, value.write, value.pool)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"timeout must be a positive, finite number of seconds, not {value!r}")
            return cls(float(value), float(value), float(value), float(value))
        if isinstance(value, Mapping):
            phases = dict(value)
            if "connection" in phases:  # the reference profile schema's spelling
                phases.setdefault("connect", phases.pop("connection"))
            unknown = set(phases) - {"connect", "read", "write", "pool"}
            if unknown:
                raise ValueError(f"unknown timeout phase(s) {sorted(unknown)}; use connect, read, write, pool")
            return dataclasses.replace(cls(), **phases)
        raise TypeError(f"timeout must be a number, a mapping or Timeouts, not {type(value).__name__}")

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Connection pool size and how many requests one bulk operation runs at once.

    ``max_connections`` bounds every socket a session opens to its server: with
    the direct path for large downloads, half of them are that path's, the
    rest httpx's.
    """

    max_connections: int = 16
    max_keepalive_connections: int = 16
    concurrency: int = 4

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_keepalive_connections", "concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")

    def to_httpx(self, reserved: int = 0) -> httpx.Limits:
        """httpx's pool: ``max_connections`` less the ``reserved`` ones another path may hold."""
        pool = self.max_connections - reserved
        return httpx.Limits(max_connections=pool, max_keepalive_connections=min(self.max_keepalive_connections, pool))


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry transient failures.

    Only idempotent requests are retried (and any request refused with 429,
    which the server did not act on, or that could not connect), and only on
    connection errors, timeouts, truncated bodies, 429 (waiting for
    ``Retry-After``) and 502/503/504.
    Backoff doubles from ``backoff`` up to ``max_backoff``; no retry starts
    after ``deadline`` seconds from the first attempt. ``attempts`` bounds the
    tries, except refused connections to a server that answered the session
    before (it is restarting): those are bounded by ``deadline`` alone, unless
    ``attempts`` is 1 (retrying off).
    """

    attempts: int = 6
    deadline: float = 45.0
    backoff: float = 0.1
    max_backoff: float = 5.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        """Defaults, overridden by ``TILED_RETRY_ATTEMPTS`` / ``TILED_RETRY_TIMEOUT`` (read now, not at import)."""
        return cls(
            attempts=int(_env_float("TILED_RETRY_ATTEMPTS", cls.attempts)),
            deadline=_env_float("TILED_RETRY_TIMEOUT", cls.deadline),
        )

    def delay(self, attempt: int) -> float:
        """Backoff before retry number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
