"""Read-only views of nested metadata, so a client's local copy cannot drift from the server's."""

from __future__ import annotations

import collections.abc
import copy
from typing import Any


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return DictView(value)
    if isinstance(value, list):
        return ListView(value)
    return value


class DictView(collections.abc.Mapping):
    """A read-only mapping over a (nested) dict; use ``metadata_copy()`` to edit."""

    __slots__ = ("_data",)

    def __init__(self, data: dict) -> None:
        self._data = data

    def __getitem__(self, key):
        return freeze(self._data[key])

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"DictView({self._data!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, DictView):
            other = other._data
        return self._data == other

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self))

    def to_dict(self) -> dict:
        return copy.deepcopy(self._data)


class ListView(collections.abc.Sequence):
    """A read-only sequence over a (nested) list."""

    __slots__ = ("_data",)

    def __init__(self, data: list) -> None:
        self._data = data

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ListView(self._data[index])
        return freeze(self._data[index])

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ListView({self._data!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, ListView):
            other = other._data
        return self._data == other
