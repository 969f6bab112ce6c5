"""Credentials that stay in this process while what uses them is pickled: a random token names them.

A pickled ``Context`` (and every client, which pickles its context) carries a
``LocalCredential``: a random token and nothing derived from the secret. The
token maps, in a table of this process only, to the live credential (an API
key's ``ApiKeyAuth``, a login's token store, a custom ``httpx.Auth``, or
credential headers). Unpickled in this process, or in a child forked after the
pickle was made, the token resolves and the copy authenticates as the original
did; anywhere else it resolves to nothing and the copy has no credentials.

The table holds each entry weakly: an entry lives as long as some context
(the original or an unpickled copy) holds it.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
import weakref
from typing import Any

__all__ = ["HeldCredential", "LocalCredential", "hold"]


class HeldCredential:
    """One live credential: ``auth`` (an ``httpx.Auth`` or a token store) and/or credential ``headers``.

    Its repr never shows either.
    """

    __slots__ = ("auth", "headers", "__weakref__")

    def __init__(self, auth: Any, headers: dict[str, str]) -> None:
        self.auth = auth
        self.headers = dict(headers)

    def same_as(self, auth: Any, headers: dict[str, str]) -> bool:
        """Whether this holds exactly ``auth`` (the same object) and ``headers``."""
        return self.auth is auth and self.headers == headers

    def __reduce__(self):
        raise TypeError("a held credential stays in its process; pickle its LocalCredential instead")

    def __repr__(self) -> str:
        return "<HeldCredential>"


_HELD: "weakref.WeakValueDictionary[str, HeldCredential]" = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class LocalCredential:
    """A random token naming a credential held by one process (see the module); pickles as the token only."""

    token: str

    def resolve(self) -> HeldCredential | None:
        """The held credential, in the process that holds it (or a fork of it); None elsewhere."""
        with _LOCK:
            return _HELD.get(self.token)

    def __repr__(self) -> str:
        return f"LocalCredential({self.token[:8]}...)"


def hold(auth: Any, headers: dict[str, str]) -> tuple[LocalCredential, HeldCredential]:
    """File a credential under a new random token; the caller keeps the ``HeldCredential`` alive."""
    held = HeldCredential(auth, headers)
    token = uuid.uuid4().hex
    with _LOCK:
        _HELD[token] = held
    return LocalCredential(token), held
