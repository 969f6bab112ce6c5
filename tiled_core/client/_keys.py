"""Node keys and paths, checked before any request."""

from __future__ import annotations

_FORBIDDEN = set("/?#\\")


def validate_key(key: object) -> str:
    """A key the server can address; ValueError/TypeError otherwise."""
    if not isinstance(key, str):
        raise TypeError(f"keys are strings, not {type(key).__name__}")
    if not key or key in (".", ".."):
        raise ValueError(f"invalid key {key!r}")
    bad = sorted({ch for ch in key if ch in _FORBIDDEN or ord(ch) < 32 or ord(ch) == 127})
    if bad:
        raise ValueError(f"key {key!r} contains characters a Tiled URL cannot carry: {bad}")
    if key != key.strip():
        raise ValueError(f"key {key!r} has leading or trailing whitespace")
    return key


def split_path(key: object) -> tuple[str, ...]:
    """``"a/b"`` or ``("a", "b")`` -> ``("a", "b")``; for lookups (KeyError for an empty path)."""
    if isinstance(key, tuple):
        parts = key
    elif isinstance(key, str):
        parts = tuple(key.strip("/").split("/"))
    else:
        raise TypeError(f"keys are strings, not {type(key).__name__}")
    if not parts or any(not isinstance(p, str) or not p for p in parts):
        raise KeyError(key)
    return parts
