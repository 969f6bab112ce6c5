"""Handling responses: error statuses to exceptions, streamed bodies checked against their size."""

from __future__ import annotations

from collections.abc import Collection, Iterator

import httpx

from ._decode import error_detail
from ._errors import MalformedResponse, TruncatedResponse, error_for_status
from ._retry import RetryableStatus, broken_connection, retry_after, undecodable

__all__ = ["check_response", "checked_chunks", "stream_into"]


def check_response(response: httpx.Response, url: str, *, auth_hint: str,
                   retry_statuses: Collection[int]) -> httpx.Response:
    """The response itself when its status is below 400; else raise the matching error.

    A status in ``retry_statuses`` is raised wrapped for the retry loop.
    """
    if response.status_code < 400:
        return response
    response.read()
    error = error_for_status(
        response.status_code,
        error_detail(response.content, response.headers.get("content-type", "")),
        url=url,
        request_id=response.headers.get("x-tiled-request-id"),
        auth_hint=auth_hint,
        response=response,
    )
    if response.status_code in retry_statuses:
        raise RetryableStatus(error, retry_after(response.headers))
    raise error


def stream_into(response: httpx.Response, url: str, out: memoryview) -> None:
    """Copy a (checked) streamed body into ``out``; it must fill ``out`` exactly."""
    received = 0
    total = len(out)
    for chunk in response.iter_bytes():
        end = received + len(chunk)
        if end > total:
            raise MalformedResponse(f"{url}: body is longer than the {total} bytes expected")
        out[received:end] = chunk
        received = end
    if received != total:
        raise TruncatedResponse(url, total, received)


def checked_chunks(response: httpx.Response, url: str) -> Iterator[bytes]:
    """The body's chunks, with a broken connection or bad encoding raised as tiled_core errors."""
    try:
        yield from response.iter_bytes()
    except (httpx.RemoteProtocolError, httpx.NetworkError) as exc:
        raise broken_connection("GET", url, exc) from None
    except httpx.DecodingError as exc:
        raise undecodable(url, exc) from None
