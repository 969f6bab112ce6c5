"""Connection settings as small immutable values."""

from __future__ import annotations

import dataclasses
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

    @classmethod
    def coerce(cls, value: "Timeouts | float | Mapping | httpx.Timeout | None") -> "Timeouts":
        """Accept a Timeouts, one number for every phase, a mapping of phases, or an httpx.Timeout."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, httpx.Timeout):
            return cls(value.connect, value.read, value.write, value.pool)
        if isinstance(value, (int, float)):
            if value <= 0:
                raise ValueError(f"timeout must be positive, not {value!r}")
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
    """Connection pool size and how many requests one bulk operation runs at once."""

    max_connections: int = 16
    max_keepalive_connections: int = 16
    concurrency: int = 4

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_keepalive_connections", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def to_httpx(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
        )


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
    after ``deadline`` seconds from the first attempt.
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
