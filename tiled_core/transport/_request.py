"""Building requests: checked headers and TLS settings, request bodies, Accept-Encoding choices."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import Any

import httpx

from ._bulk import BulkReader, bulk_supported
from ._config import Limits, Timeouts

__all__ = ["body_factory", "check_headers", "check_verify", "is_loopback", "data_headers", "open_pools"]

_SEND_PIECE = 1 << 20  # h11 copies each piece it frames: small pieces keep that copy small


def is_loopback(base_url: str) -> bool:
    """Whether the server is on this machine's loopback interface."""
    host = httpx.URL(base_url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def body_factory(content, headers: dict[str, str]) -> Callable[[], Any]:
    """A callable giving a fresh request body per attempt (an iterator cannot be sent twice).

    A ``bytes`` body goes as is. Any other buffer (memoryview, bytearray, numpy
    array) is sent as an iterator of 1 MiB slices with an explicit
    ``Content-Length``: httpx would otherwise need a ``bytes`` copy of the whole
    buffer, and h11 copies what it frames anyway.
    """
    if content is None or isinstance(content, bytes):
        return lambda: content
    view = memoryview(content)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    if not view.nbytes:
        return lambda: b""
    headers["content-length"] = str(view.nbytes)
    return lambda: (view[start:start + _SEND_PIECE] for start in range(0, view.nbytes, _SEND_PIECE))


def check_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """Extra headers, checked before any request (values are not echoed: they may be credentials)."""
    checked = dict(headers or {})
    for name, value in checked.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"headers map names to values, both strings; got {type(name).__name__} -> "
                            f"{type(value).__name__} for {name!r}")
        if not name or not all(33 <= ord(ch) < 127 and ch not in '()<>@,;:\\"/[]?={}' for ch in name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if not all(32 <= ord(ch) < 127 or ch == "\t" for ch in value):
            raise ValueError(f"the value of header {name!r} must be printable ASCII (no line breaks)")
    return checked


def check_verify(verify):
    """A CA bundle path that does not exist is named now (httpx would say only 'No such file')."""
    if isinstance(verify, (str, os.PathLike)) and not os.path.exists(verify):
        raise FileNotFoundError(f"verify={os.fspath(verify)!r}: no such CA bundle file or directory")
    return verify


def data_headers(accept: str, compression: str, loopback: bool) -> dict[str, str]:
    """``Accept`` and ``Accept-Encoding`` for a data request under a session's ``compression`` setting."""
    headers = {"accept": accept}
    if compression == "auto":
        if accept == "application/octet-stream" or loopback:
            headers["accept-encoding"] = "identity"
    elif compression == "none":
        headers["accept-encoding"] = "identity"
    else:
        headers["accept-encoding"] = compression
    return headers


def open_pools(base_url: str, timeouts: Timeouts, limits: Limits, *, verify, trust_env: bool,
               headers: dict[str, str]) -> tuple[httpx.Client, BulkReader | None]:
    """The httpx pool, and the direct read path's pool when the server's URL allows one.

    The direct path's sockets count against ``max_connections`` too: half for it, the rest for httpx.
    """
    direct = bulk_supported(base_url, trust_env) and limits.max_connections > 1
    direct_share = limits.max_connections // 2 if direct else 0
    http = httpx.Client(
        timeout=timeouts.to_httpx(),
        limits=limits.to_httpx(reserved=direct_share),
        verify=verify,
        trust_env=trust_env,
        headers=headers,
        follow_redirects=True,
    )
    bulk = (BulkReader(base_url, verify=verify, timeouts=timeouts,
                       max_idle=min(limits.concurrency, direct_share), max_open=direct_share)
            if direct else None)
    return http, bulk
