"""The server's about document: a dict whose keys can also be read as attributes."""

from __future__ import annotations

from typing import Any

__all__ = ["About"]


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, About):
        return About(value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


class About(dict):
    """A JSON object read as a dict (``info["authentication"]``) or by attribute
    (``info.authentication.providers[0].links.auth_endpoint``), as the reference
    client's ``About`` model is. Nested objects are ``About`` too; a missing
    attribute raises AttributeError, a missing key KeyError.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            wrapped = _wrap(value)
            if wrapped is not value:
                dict.__setitem__(self, key, wrapped)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the server's about document has no {name!r}") from None

    def __dir__(self):
        return [*super().__dir__(), *(key for key in self if isinstance(key, str) and key.isidentifier())]
