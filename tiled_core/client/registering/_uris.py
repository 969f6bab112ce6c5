"""File paths and ``file://`` URIs, and what a URI points at."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse, urlunparse

__all__ = ["ensure_uri", "path_from_uri", "stat_uri"]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


def ensure_uri(uri_or_path: str | os.PathLike) -> str:
    """A ``file://localhost/...`` URI for a path (made absolute); a URI is returned as is.

    Raises TypeError for anything that is neither a string nor a path.
    """
    if not isinstance(uri_or_path, (str, os.PathLike)):
        raise TypeError(f"expected a file path or URI, not {type(uri_or_path).__name__}")
    text = os.fspath(uri_or_path)
    if not _SCHEME.match(text):
        return urlunparse(("file", "localhost", str(Path(text).absolute()), "", "", None))
    parsed = urlparse(text)
    if parsed.netloc == "":
        return urlunparse(parsed._replace(netloc="localhost"))
    return text


def path_from_uri(uri: str) -> Path:
    """The local path of a ``file://`` URI (ValueError for other schemes)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"only file:// URIs point at local files, not {uri!r}")
    return Path(unquote(parsed.path))


def stat_uri(uri: str) -> tuple[bool, int | None]:
    """``(is_directory, size)`` of a ``file://`` URI; ``(False, None)`` when it cannot be inspected."""
    try:
        path = path_from_uri(uri)
        if path.is_dir():
            return True, None
        return False, path.stat().st_size
    except (OSError, ValueError):
        return False, None
