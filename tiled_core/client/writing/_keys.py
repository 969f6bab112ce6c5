"""Node keys and paths, checked before any request.

The Tiled 0.2.20 server stores any string as a key, but some cannot be
addressed afterwards (checked against the live server and the reference
client): ``"/"`` splits the path, ``"."`` and ``".."`` are resolved away by
URL normalisation, ``""`` makes the server invent a key, and the reference
client sends keys unescaped in its URLs, so ``?``, ``#``, control characters
and ``%XX`` escapes reach the server as something else. A key also names a
directory in the server's file storage (URL-quoted), so past 255 bytes there
the server fails with a 500. Those are refused when creating a node.
(Leading or trailing whitespace would work, but is almost always a mistake,
so it is refused as well.)
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus

_FORBIDDEN = set("/?#")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
MAX_STORED_KEY = 255  # bytes of quote_plus(key): the file name limit of most filesystems


def validate_key(key: object) -> str:
    """A key the server can address; ValueError/TypeError otherwise."""
    if not isinstance(key, str):
        raise TypeError(f"keys are strings, not {type(key).__name__}")
    if not key.strip() or key in (".", ".."):
        raise ValueError(f"invalid key {key!r}: a key needs a visible name other than '.' or '..'")
    bad = sorted({ch for ch in key if ch in _FORBIDDEN or ord(ch) < 32 or ord(ch) == 127})
    if bad:
        raise ValueError(f"key {key!r} contains characters a Tiled URL cannot carry: {bad}")
    if _PERCENT_ESCAPE.search(key):
        raise ValueError(f"key {key!r} contains a %XX escape, which the server would decode into another key")
    if key != key.strip():
        raise ValueError(f"key {key!r} has leading or trailing whitespace")
    if len(quote_plus(key)) > MAX_STORED_KEY:
        raise ValueError(f"key {key[:20]!r}... is too long: the server stores it as a file name of "
                         f"{len(quote_plus(key))} bytes (URL-quoted); at most {MAX_STORED_KEY} fit")
    return key


def split_path(key: object) -> tuple[str, ...]:
    """``"a/b"`` or ``("a", "b")`` -> ``("a", "b")``; for lookups (KeyError for an empty path)."""
    if isinstance(key, tuple):
        parts = key
    elif isinstance(key, str):
        parts = tuple(key.strip("/").split("/"))
    else:
        raise TypeError(f"keys are strings, not {type(key).__name__}")
    if any(not isinstance(p, str) for p in parts):
        raise TypeError(f"keys are strings, not {[type(p).__name__ for p in parts if not isinstance(p, str)][0]}")
    if not parts or any(not p for p in parts):
        raise KeyError(key)
    if any(p in (".", "..") for p in parts):
        # URL normalisation would resolve them (c[".."] is the parent); no node can have such a key.
        raise KeyError(key)
    return parts
