"""Views of secrets the user asked for (tokens, new API keys) whose reprs never show them."""

from __future__ import annotations

import collections.abc
import re
from typing import Any

__all__ = ["TokensView", "APIKeyInfo", "parse_duration"]


class TokensView(collections.abc.Mapping):
    """``access_token`` and ``refresh_token`` of the current login; printing it shows ``***``."""

    __slots__ = ("_data",)

    def __init__(self, tokens: Any = None) -> None:
        self._data = {} if tokens is None else {
            "access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
        }

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return "TokensView({" + ", ".join(f"{k!r}: '***'" for k in self._data) + "})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("TokensView holds secrets and is not picklable")


class APIKeyInfo(dict):
    """The server's description of an API key, a plain dict whose repr masks ``secret``."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "secret" else v) for k, v in self.items()}
        return f"APIKeyInfo({shown!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("APIKeyInfo may hold a secret and is not picklable; copy what you need")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def parse_duration(value: int | float | str | None) -> int | None:
    """Seconds from ``90``, ``"30s"``, ``"5m"``, ``"1h"``, ``"3d"`` or ``"1y"`` (None passes through)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("expires_in must be seconds or a string like '3d'")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"expires_in must be positive, not {value!r}")
        return int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([smhdy])\s*", value)
        if match and int(match.group(1)) > 0:
            return int(match.group(1)) * _UNITS[match.group(2)]
        raise ValueError(f"cannot read {value!r} as a duration: use e.g. '30s', '5m', '1h', '3d', '1y'")
    raise TypeError(f"expires_in must be seconds or a string like '3d', not {type(value).__name__}")
