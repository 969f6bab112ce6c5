"""Watching the traffic: ``record_history()`` and the ``tiled_core.client`` debug log.

One place sees every exchange: ``observe(client)`` adds httpx event hooks to a
session's httpx client (so scripted requests on ``Context.http_client`` are
seen too). The hooks run after authentication is applied and before each
attempt is sent, so a retried request shows up once per attempt. The raw-socket
bulk read path reports its exchanges through ``note_direct`` (their responses
without bodies). A ``304 Not Modified`` answered from the response cache is
recorded as the stored response (a ``CachedResponse``, as the reference client
shows it); responses the cache gives without asking the server (within its
``max_age``) are not exchanges and are not seen.

Log lines never show a credential: the ``Authorization`` value is replaced by
its scheme and ``[redacted]``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple
from urllib.parse import unquote

import httpx

__all__ = ["History", "record_history", "observe", "note_direct", "served_from_cache", "logger", "show_logs",
           "hide_logs"]

logger = logging.getLogger("tiled_core.client")
_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S"))

_lock = threading.Lock()
_recording: list["History"] = []  # innermost last; every active recorder gets each exchange


class History(NamedTuple):
    """What ``record_history()`` collected: ``requests`` and ``responses`` (httpx objects), in order."""

    requests: list
    responses: list


@contextlib.contextmanager
def record_history() -> Iterator[History]:
    """Collect the requests sent and responses received (in any thread) while the block runs.

    >>> with record_history() as history:
    ...     client["x"].read()
    >>> history.requests, history.responses

    Recorders may nest; each sees everything sent while it is active.
    """
    history = History([], [])
    with _lock:
        _recording.append(history)
    try:
        yield history
    finally:
        with _lock:
            _recording.remove(history)


def _size(headers: httpx.Headers) -> str:
    length = headers.get("content-length")
    return f"({length} B) " if length is not None else ""


def _redacted_headers(headers: httpx.Headers) -> str:
    shown = []
    for name, value in headers.items():
        if name.lower() in ("authorization", "proxy-authorization", "cookie"):
            value = f"{value.partition(' ')[0]} [redacted]" if " " in value else "[redacted]"
        shown.append(f"'{name}:{value}'")
    return " ".join(shown)


def _on_request(request: httpx.Request) -> None:
    with _lock:
        for history in _recording:
            history.requests.append(request)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("-> %s%s '%s' %s", _size(request.headers), request.method,
                     unquote(str(request.url)), _redacted_headers(request.headers))


def _on_response(response: httpx.Response) -> None:
    with _lock:
        for history in _recording:
            history.responses.append(response)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("<- %s%s %s", _size(response.headers), response.status_code,
                     " ".join(f"{k}:{v}" for k, v in response.headers.items() if k.lower() != "set-cookie"))


def watching() -> bool:
    """Whether anything would see an exchange now (a recorder, or the debug log)."""
    return bool(_recording) or logger.isEnabledFor(logging.DEBUG)


def note_direct(method: str, url: str, headers: dict, send: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
    """Run ``send`` (an exchange that bypasses httpx: the bulk read path) where the hooks see it.

    ``send`` returns ``(status, response headers)``; the body (already written
    where it belongs) is not part of what is recorded.
    """
    if not watching():
        return send()
    request = httpx.Request(method, url, headers=headers)
    _on_request(request)
    status, response_headers = send()
    _on_response(httpx.Response(status, headers=list(response_headers.items()), request=request))
    return status, response_headers


def note_exchange(method: str, url: str, headers: dict, status: int | None, response_headers) -> None:
    """An exchange that bypassed httpx (a pipelined request), where the hooks see it; status None: unanswered."""
    if not watching():
        return
    request = httpx.Request(method, url, headers=headers)
    _on_request(request)
    if status is not None:
        _on_response(httpx.Response(status, headers=list(response_headers.items()), request=request))


def _url_of(response: httpx.Response) -> str | None:
    request = getattr(response, "_request", None)
    return None if request is None else str(request.url)


def served_from_cache(url: str, make: Callable[[], httpx.Response]) -> None:
    """The ``304`` just recorded for ``url`` was answered from the cache: recorders get ``make()`` in its place.

    ``make`` runs only while something records.
    """
    if not _recording:
        return
    cached = make()
    with _lock:
        for history in _recording:
            responses = history.responses
            for i in range(len(responses) - 1, -1, -1):
                if responses[i].status_code == 304 and _url_of(responses[i]) == url:
                    responses[i] = cached
                    break


def observe(client: httpx.Client) -> None:
    """Let ``record_history()`` and the debug log see this client's exchanges (idempotent)."""
    hooks = client.event_hooks
    if _on_request not in hooks["request"]:
        hooks["request"].append(_on_request)
    if _on_response not in hooks["response"]:
        hooks["response"].append(_on_response)
    client.event_hooks = hooks


def show_logs() -> None:
    """Log every request and response (method, URL, headers with credentials redacted) to stderr."""
    logger.setLevel(logging.DEBUG)
    if _handler not in logger.handlers:
        logger.addHandler(_handler)


def hide_logs() -> None:
    """Undo ``show_logs()``."""
    logger.setLevel(logging.WARNING)
    if _handler in logger.handlers:
        logger.removeHandler(_handler)
