"""Key, value and item views of a container with random access.

A view knows nothing about HTTP: it is given a ``length()`` callable and an
``iterate(start, stop, direction, page_size)`` generator (``stop=None``: to
the end; ``direction=-1``: counted from the end), and builds indexing,
slicing and ``first/last/head/tail`` on them.
"""

from __future__ import annotations

import collections.abc
import itertools
import operator
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["KeysView", "ValuesView", "ItemsView", "IterViewBase"]

T = TypeVar("T")
Iterate = Callable[[int, "int | None", int, "int | None"], Iterator]


class IterViewBase(Generic[T]):
    def __init__(self, length: Callable[[], int], iterate: Iterate, page_size: int | None = None) -> None:
        self._length = length
        self._iterate = iterate
        self._page_size = page_size

    def __len__(self) -> int:
        return self._length()

    def __iter__(self) -> Iterator[T]:
        return self._iterate(0, None, 1, self._page_size)

    def __repr__(self) -> str:
        # No request here: a repr must be cheap and side-effect free.
        return f"<{type(self).__name__}>"

    def page_size(self, n: int | None) -> "IterViewBase[T]":
        """A view of the same entries fetched ``n`` at a time."""
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError("page size must be a positive integer")
        return type(self)(self._length, self._iterate, n)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._slice(index)
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"view indices must be integers or slices, not {type(index).__name__}") from None
        if index >= 0:
            found = list(itertools.islice(self._iterate(index, index + 1, 1, 1), 1))
        else:
            found = list(itertools.islice(self._iterate(-index - 1, -index, -1, 1), 1))
        if not found:
            raise IndexError(f"index {index} out of range")
        return found[0]

    def _slice(self, index: slice) -> list[T]:
        # Python's list semantics, asking for the length only when a bound counts from the
        # other end than the walk (e.g. ``[2:-1]``, ``[3::-1]``).
        step = 1 if index.step is None else operator.index(index.step)
        if step == 0:
            raise ValueError("slice step cannot be zero")
        start = None if index.start is None else operator.index(index.start)
        stop = None if index.stop is None else operator.index(index.stop)
        if step > 0:
            entries = self._forward(start, stop)
        else:
            entries = self._backward(start, stop)
        return entries[::abs(step)] if abs(step) != 1 else entries

    def _walk(self, start: int, stop: int | None, direction: int) -> list[T]:
        if stop is not None and stop <= start:
            return []
        # A bounded walk asks for pages of just the entries it needs (or the view's page size).
        size = self._page_size if stop is None else min(stop - start, self._page_size or stop - start)
        return list(self._iterate(start, stop, direction, size))

    def _forward(self, start: int | None, stop: int | None) -> list[T]:
        start = start or 0
        if start >= 0 and (stop is None or stop >= 0):
            return self._walk(start, stop, 1)
        if start < 0 and stop is None:
            # The last -start entries, walked from the end, then put in order.
            return self._walk(0, -start, -1)[::-1]
        begin, end, _ = slice(start, stop).indices(len(self))
        return self._walk(begin, end, 1)

    def _backward(self, start: int | None, stop: int | None) -> list[T]:
        # Offsets counted from the end: the last entry is 0; ``stop=None`` walks to the first.
        length = None

        def from_end(position: int) -> int:
            nonlocal length
            if position < 0:
                return -position - 1
            if length is None:
                length = len(self)
            return max(length - 1 - position, -1)

        begin = 0 if start is None else from_end(start)
        end = None if stop is None else from_end(stop)
        if begin < 0:  # a non-negative start beyond the end is clamped to the last entry
            begin = 0
        return self._walk(begin, end, -1)

    def first(self) -> T:
        """The first entry (IndexError when empty)."""
        return self[0]

    def last(self) -> T:
        """The last entry (IndexError when empty)."""
        return self[-1]

    def head(self, n: int = 5) -> list[T]:
        """The first ``n`` entries."""
        return self[:n]

    def tail(self, n: int = 5) -> list[T]:
        """The last ``n`` entries, in order."""
        if n <= 0:
            return []
        return self[-n:]


class KeysView(IterViewBase[str], collections.abc.KeysView):
    def __init__(self, length, iterate, page_size=None, contains: Callable[[str], bool] | None = None) -> None:
        super().__init__(length, iterate, page_size)
        self._contains = contains

    def __contains__(self, key) -> bool:
        if self._contains is not None:
            return self._contains(key)
        return any(k == key for k in self)

    def page_size(self, n):
        view = super().page_size(n)
        view._contains = self._contains
        return view


class ValuesView(IterViewBase, collections.abc.ValuesView):
    pass


class ItemsView(IterViewBase[tuple], collections.abc.ItemsView):
    pass
