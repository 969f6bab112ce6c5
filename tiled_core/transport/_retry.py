"""The retry loop and how it classifies failures (the one place tiled_core retries)."""

from __future__ import annotations

import random
import re
import ssl
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from ._config import RetryPolicy
from ._errors import (
    ConnectionFailed,
    MalformedResponse,
    RequestTimeout,
    ServerError,
    TransportError,
    TruncatedResponse,
)

__all__ = ["IDEMPOTENT", "RetryableStatus", "broken_connection", "undecodable", "refused", "retry_after",
           "run_with_retries"]

T = TypeVar("T")
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class RetryableStatus(Exception):
    """Raised inside an attempt for a status the policy retries (the loop unwraps ``error``)."""

    def __init__(self, error: ServerError, retry_after: float | None) -> None:
        self.error = error
        self.retry_after = retry_after


_INCOMPLETE_BODY = re.compile(r"received (\d+) bytes, expected (\d+)")
_DISCONNECTED = ("disconnected", "closed connection", "incomplete")


def broken_connection(method: str, url: str, exc: Exception) -> TransportError | MalformedResponse:
    """A dropped connection; TruncatedResponse when httpx saw a body shorter than its Content-Length.

    A reply that breaks HTTP itself (not a dropped connection) is MalformedResponse: whatever
    answers there is not an HTTP server, and asking again would not change that.
    """
    match = _INCOMPLETE_BODY.search(str(exc))
    if match:
        return TruncatedResponse(url, int(match.group(2)), int(match.group(1)))
    if isinstance(exc, httpx.RemoteProtocolError) and not any(w in str(exc).lower() for w in _DISCONNECTED):
        return MalformedResponse(f"{url} answered {method} with something that is not valid HTTP ({exc}): "
                                 "is a Tiled server listening there?")
    return ConnectionFailed(f"connection broke during {method} {url}: {exc}")


def undecodable(url: str, exc: Exception) -> MalformedResponse:
    return MalformedResponse(f"{url}: the body does not decode as its Content-Encoding says ({exc})")


def _tls_failure(exc: BaseException) -> bool:
    """Whether a connection failed in the TLS handshake (certificate, or plain HTTP on the other end)."""
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_after(response_headers) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or an HTTP date."""
    value = response_headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def refused(exc: BaseException) -> bool:
    """Whether a failure was a refused connection (nothing listening: a server down or restarting)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConnectionRefusedError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _classify(method: str, url: str, exc: BaseException, idempotent: bool):
    """``(error to raise, wait or None, whether to retry)`` for a failed attempt; raises what is final."""
    if isinstance(exc, RetryableStatus):
        # A 429 is a refusal before any work (rate limiting): safe to resend any method.
        return exc.error, exc.retry_after, idempotent or exc.error.status == 429
    if isinstance(exc, httpx.ConnectError):
        if _tls_failure(exc):  # the same next time: not retried
            raise ConnectionFailed(
                f"TLS handshake with {url} failed ({exc}): is it a plain http:// server, or does "
                "verify= need the server's CA bundle?") from None
        # Nothing reached the server: safe to retry any method.
        return ConnectionFailed(f"cannot connect to {url}: {exc}"), None, True
    if isinstance(exc, httpx.TimeoutException):
        # A connect or pool timeout means it was never sent (no connection, or none free in
        # time): safe to retry any method. A read or write timeout may follow the server acting.
        error = RequestTimeout(f"timed out on {method} {url} ({type(exc).__name__})")
        return error, None, idempotent or isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
    if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
        error = broken_connection(method, url, exc)
        return error, None, idempotent and not isinstance(error, MalformedResponse)
    if isinstance(exc, (TruncatedResponse, ConnectionFailed, RequestTimeout)):  # from the bulk path
        return exc, None, idempotent
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        raise ValueError(f"cannot request {url}: {exc}") from None
    if isinstance(exc, httpx.TooManyRedirects):
        raise MalformedResponse(f"{method} {url}: too many redirects (a redirect loop?); "
                                "is the URI that of a Tiled server's API?") from None
    if isinstance(exc, httpx.DecodingError):
        raise undecodable(url, exc) from None
    raise exc


_HANDLED = (RetryableStatus, httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError,
            httpx.RemoteProtocolError, TruncatedResponse, ConnectionFailed, RequestTimeout,
            httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.TooManyRedirects, httpx.DecodingError)


def run_with_retries(policy: RetryPolicy, method: str, url: str, attempt: Callable[[], T], *,
                     idempotent: bool | None = None, on_attempt: Callable[[], None] | None = None,
                     restarting: Callable[[], bool] = lambda: False, signals=None) -> T:
    """Call ``attempt`` until it succeeds, a failure is final, or ``policy`` runs out.

    Arguments:
        idempotent: whether the request may be resent after it may have reached
            the server (default: from ``method``).
        on_attempt: called before each try (counting).
        restarting: whether a refused connection now means the server is
            restarting (it answered this session before). Such refusals are
            bounded by ``policy.deadline`` only, not by ``policy.attempts``
            (unless ``attempts`` is 1: retrying off), so a request in flight
            outlives a restart; a server that never answered (a wrong port)
            still fails after ``attempts``.
        signals: told of retries (``retrying()`` before each wait, ``resolved()``
            once a request that was retried ends), e.g. the session's FetchGate.

    The error that ends the loop after retrying carries a note saying how many attempts it made.
    """
    retried = False

    def before_wait() -> None:
        nonlocal retried
        retried = True
        signals.retrying()

    try:
        return _run(policy, method, url, attempt, idempotent, on_attempt, restarting,
                    before_wait if signals is not None else None)
    finally:
        if retried:
            signals.resolved()


def _run(policy, method, url, attempt, idempotent, on_attempt, restarting, before_wait):
    idempotent = method in IDEMPOTENT if idempotent is None else idempotent
    start = time.monotonic()
    tries = 0
    counted = 0  # the tries that count against policy.attempts
    while True:
        tries += 1
        if on_attempt is not None:
            on_attempt()
        try:
            return attempt()
        except _HANDLED as exc:
            error, wait, retry = _classify(method, url, exc, idempotent)
            waiting_for_restart = retry and policy.attempts > 1 and refused(exc) and restarting()
        if not waiting_for_restart:
            counted += 1
        delay = policy.delay(tries) if wait is None else wait
        delay *= 1.0 if wait is not None else random.uniform(0.5, 1.0)
        elapsed = time.monotonic() - start
        if not retry or counted >= policy.attempts or elapsed + delay > policy.deadline:
            if retry:  # say why it stopped, even when the deadline left no room for a second try
                error.add_note(f"gave up after {tries} attempt{'s' if tries > 1 else ''} in {elapsed:.1f}s "
                               f"(retry limits: {policy.attempts} attempts, {policy.deadline:g}s)")
            raise error
        if before_wait is not None:
            before_wait()
        time.sleep(delay)
