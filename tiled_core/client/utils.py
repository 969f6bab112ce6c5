"""Helpers for scripts that send their own requests (on ``Context.http_client``).

- ``handle_error(response)``: the response back if it succeeded, else the
  error tiled_core raises for that status (``ClientError`` and its kin for 4xx,
  ``ServerError`` for 5xx; all are ``httpx.HTTPStatusError`` too).
- ``retry_context(context=None, on=should_retry)``: a loop of attempts that
  retries transient failures with backoff, within ``TILED_RETRY_ATTEMPTS`` and
  ``TILED_RETRY_TIMEOUT`` (what tiled_core's own requests do in the transport)::

      for attempt in retry_context():
          with attempt:
              handle_error(context.http_client.get(url))

- ``should_retry`` / ``should_retry_if_unprocessed``: which errors are worth
  another try (for any request / for one that must not be applied twice).
- ``MSGPACK_MIME_TYPE``, ``DEFAULT_TIMEOUT_PARAMS``, ``slices_to_dask_chunks``.
- ``get_asset_filepaths(node)``: local paths of the files backing a node.
- ``is_interactive()``, ``is_jupyter()``, ``ProgressState``,
  ``StandaloneRetryIndicator``: progress bars and the retry indicator (see
  ``Context.tracking_progress`` and ``Context.signal_retry``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from ..transport import ClientError, ServerError, Timeouts, TransportError
from ..transport._config import RetryPolicy
from ..transport._decode import MSGPACK, error_detail
from ..transport._errors import error_for_status
from ._progress_state import ProgressState, StandaloneRetryIndicator, is_interactive, is_jupyter

__all__ = [
    "ClientError", "ServerError", "MSGPACK_MIME_TYPE", "DEFAULT_TIMEOUT_PARAMS", "handle_error",
    "should_retry", "should_retry_if_unprocessed", "retry_context", "slices_to_dask_chunks", "get_asset_filepaths",
    "is_interactive", "is_jupyter", "ProgressState", "StandaloneRetryIndicator",
]

MSGPACK_MIME_TYPE = MSGPACK
# tiled_core's default timeouts (seconds per phase), as a mapping for httpx.Timeout(**...).
DEFAULT_TIMEOUT_PARAMS = {phase: getattr(Timeouts(), phase) for phase in ("connect", "read", "write", "pool")}

_logger = logging.getLogger("tiled_core.client")


def handle_error(response: httpx.Response) -> httpx.Response:
    """Return ``response`` if its status is not an error; otherwise raise.

    Raises KeyError for 410 (a broken link), a plain ``httpx.HTTPStatusError``
    for 429 (so a retry loop can honour ``Retry-After``), and else the
    tiled_core error for the status (``ClientError`` subclasses for 4xx,
    ``ServerError`` for 5xx), carrying the server's detail and request id.
    """
    if not isinstance(response, httpx.Response):
        raise TypeError(f"handle_error takes an httpx.Response, not {type(response).__name__}")
    if not response.is_error:
        return response
    response.read()
    url = str(response.request.url) if response._request is not None else "(unknown URL)"
    if response.status_code == 410:
        raise KeyError(f"Unable to open object: likely a broken link. {response.reason_phrase}")
    if response.status_code == 429:
        raise httpx.HTTPStatusError(f"429 Too Many Requests from {url}", request=response.request,
                                    response=response)
    raise error_for_status(
        response.status_code,
        error_detail(response.content, response.headers.get("content-type", "")),
        url=url,
        request_id=response.headers.get("x-tiled-request-id"),
        response=response,
    )


def _retry_after(response: httpx.Response) -> float | bool:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else True
    except ValueError:
        return True  # an HTTP date: our own backoff


def should_retry(exception: BaseException) -> bool | float:
    """Whether another attempt may succeed: 429 (its ``Retry-After`` seconds when given), 5xx,
    and failures to connect or to get a whole response; not bad URLs or malformed requests."""
    if isinstance(exception, httpx.HTTPStatusError):
        if exception.response.status_code == 429:
            return _retry_after(exception.response)
        return exception.response.status_code >= 500
    if isinstance(exception, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return False
    return isinstance(exception, (httpx.HTTPError, TransportError))


_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def should_retry_if_unprocessed(exception: BaseException) -> bool | float:
    """Like ``should_retry``, but only when the server cannot have acted on the request:
    it never reached it (could not connect, no free connection) or refused it with 429."""
    if isinstance(exception, httpx.HTTPStatusError):
        return _retry_after(exception.response) if exception.response.status_code == 429 else False
    return isinstance(exception, _NEVER_SENT)


class _Attempt:
    """One try: a context manager that swallows an error worth retrying (the loop then waits and goes on)."""

    __slots__ = ("num", "_decide", "outcome", "wait")

    def __init__(self, num: int, decide: Callable[[BaseException, int], float | None]) -> None:
        self.num = num
        self._decide = decide
        self.outcome = "pending"
        self.wait = 0.0

    def __enter__(self) -> "_Attempt":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.outcome = "done"
            return False
        wait = self._decide(exc, self.num)
        if wait is None:
            self.outcome = "raised"
            return False
        _logger.debug("Attempt %d failed with %r", self.num, exc)
        self.outcome, self.wait = "retry", wait
        return True

    def __repr__(self) -> str:
        return f"<attempt {self.num}: {self.outcome}>"


def retry_context(context: Any = None, *, on: Callable[[BaseException], bool | float] | None = None) -> Iterator[_Attempt]:
    """Attempts to run a block in until it succeeds, fails for good, or the retry budget is spent.

    Arguments:
        context: a Context whose ``signal_retry()``/``signal_retry_resolved()``
            are called around retries (optional; without one the loop shows a
            ``StandaloneRetryIndicator`` of its own while it retries).
        on: which errors to retry (default ``should_retry``); it may return
            seconds to wait instead of True.

    The budget is ``TILED_RETRY_ATTEMPTS`` attempts within ``TILED_RETRY_TIMEOUT``
    seconds (read when the loop starts); waits double from 0.1 s, with jitter.
    Each attempt has ``.num`` (from 1). Retries are logged at DEBUG on the
    ``tiled_core.client`` logger (see ``show_logs``).
    """
    predicate = on if on is not None else should_retry
    policy = RetryPolicy.from_env()
    start = time.monotonic()

    def decide(error: BaseException, num: int) -> float | None:
        if not isinstance(error, Exception):
            return None  # KeyboardInterrupt and friends end the loop
        verdict = predicate(error)
        if verdict is False or verdict is None or num >= policy.attempts:
            return None
        wait = float(verdict) if not isinstance(verdict, bool) else policy.delay(num) * random.uniform(0.5, 1.0)
        if time.monotonic() - start + wait > policy.deadline:
            return None
        return wait

    # Without a context (or with one that has no indicator) the loop shows its own indicator.
    signals = context if callable(getattr(context, "signal_retry", None)) else None
    standalone = StandaloneRetryIndicator() if signals is None else None
    retried = False
    try:
        num = 0
        while True:
            num += 1
            attempt = _Attempt(num, decide)
            yield attempt
            if attempt.outcome != "retry":
                return
            retried = True
            _logger.debug("Retrying (attempt %d) in %.2fs", num + 1, attempt.wait)
            if signals is not None:
                signals.signal_retry()
            else:
                standalone.show()
            time.sleep(attempt.wait)
    finally:
        if standalone is not None:
            standalone.reset()
        elif retried and callable(getattr(signals, "signal_retry_resolved", None)):
            signals.signal_retry_resolved()


def slices_to_dask_chunks(slice_dict: Mapping[tuple, Any], shape) -> tuple[tuple[int, ...], ...]:
    """Dask-style ``chunks`` from ``{block index tuple: selection}``.

    Each selection must offer ``shape_after_slice(shape)`` (the shape it
    selects); the size of block ``i`` along an axis is taken from any entry
    with index ``i`` there.
    """
    if not slice_dict:
        raise ValueError("slice_dict is empty: no blocks to take chunk sizes from")
    ndim = len(next(iter(slice_dict)))
    sizes: list[dict[int, int]] = [{} for _ in range(ndim)]
    for index, selection in slice_dict.items():
        selected = selection.shape_after_slice(shape)
        for axis in range(ndim):
            sizes[axis][index[axis]] = selected[axis]
    return tuple(tuple(size for _, size in sorted(axis.items())) for axis in sizes)


def get_asset_filepaths(node) -> list[Path]:
    """The local paths of the files (or directories) backing ``node``'s data sources.

    One request unless ``node`` already carries its data sources. Raises
    ValueError for an asset that is not a ``file://`` URI.
    """
    from .registering._uris import path_from_uri

    return [path_from_uri(asset.data_uri) for source in node.data_sources() or [] for asset in source.assets]
