"""Turn numpy-style selections into the server's ``slice=`` syntax.

The server's slice parameter accepts ``start:stop:step`` and integers per
dimension but mishandles negative steps, so every selection is normalised to
ascending ranges; axes the caller asked to walk backwards are flipped locally.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any


@dataclasses.dataclass(frozen=True)
class Selection:
    """A normalised selection over an array of ``shape``.

    ``entries`` has one item per source dimension: an ``int`` (the dimension is
    dropped) or an ascending ``range``. ``flip`` lists the *output* axes to
    reverse after reading.
    """

    entries: tuple[int | range, ...]
    flip: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(e) for e in self.entries if isinstance(e, range))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def to_param(self) -> str:
        """The ``slice=`` value (empty: everything)."""
        parts = []
        for entry in self.entries:
            if isinstance(entry, int):
                parts.append(str(entry))
            elif entry.step == 1:
                parts.append(f"{entry.start}:{entry.stop}")
            else:
                parts.append(f"{entry.start}:{entry.stop}:{entry.step}")
        return ",".join(parts)

    def offset(self, starts) -> "Selection":
        """The same selection moved by ``starts`` per source axis (a block's selection -> the array's)."""
        entries = tuple(
            entry + start if isinstance(entry, int) else range(entry.start + start, entry.stop + start, entry.step)
            for entry, start in zip(self.entries, starts)
        )
        return Selection(entries, self.flip)

    def with_output_axis(self, output_axis: int, start: int, stop: int) -> "Selection":
        """The sub-selection covering output positions ``start:stop`` along ``output_axis``."""
        entries = list(self.entries)
        seen = -1
        for i, entry in enumerate(entries):
            if isinstance(entry, range):
                seen += 1
                if seen == output_axis:
                    entries[i] = entry[start:stop]
                    break
        return Selection(tuple(entries), self.flip)


def _index(value: Any, axis: int) -> int:
    # numpy reads a boolean index as a mask (x[True] adds an axis), not as 1: refuse it (numpy.bool_ is
    # refused by operator.index already).
    if isinstance(value, bool):
        raise TypeError(f"index for axis {axis} is a boolean; boolean masks are not supported, use integers or slices")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"index for axis {axis} must be an integer or a slice, not {type(value).__name__}") from None


def split_newaxis(selection: Any) -> tuple[Any, tuple | None]:
    """``(selection without numpy.newaxis entries, the index that puts those axes back)``.

    ``None`` inside a tuple is numpy's newaxis: ``arr[..., None]``. The second
    item is None when there is none; else it indexes the result of the
    stripped selection: ``None`` where a new axis goes, ``slice(None)`` (or the
    ``Ellipsis``) for each kept axis; integers took their axis away already.
    A bare ``None`` (``read(None)``) still means the whole array.
    """
    if not isinstance(selection, tuple) or not any(entry is None for entry in selection):
        return selection, None
    stripped = tuple(entry for entry in selection if entry is not None)
    expand = tuple(entry if entry is None or entry is Ellipsis else slice(None) for entry in selection
                   if entry is None or entry is Ellipsis or isinstance(entry, slice))
    return stripped, expand


def normalize(selection: Any, shape: tuple[int, ...]) -> Selection:
    """Validate ``selection`` (None, int, slice, Ellipsis or a tuple of them) against ``shape``.

    Raises IndexError for out-of-range integers or too many indices, TypeError
    for unsupported index types, ValueError for a zero step.
    """
    if selection is None:
        selection = ()
    elif not isinstance(selection, tuple):
        selection = (selection,)
    ellipses = [i for i, s in enumerate(selection) if s is Ellipsis]  # by identity: `in` would compare arrays
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if ellipses:
        at = ellipses[0]
        fill = len(shape) - (len(selection) - 1)
        selection = selection[:at] + (slice(None),) * max(fill, 0) + selection[at + 1 :]
    if len(selection) > len(shape):
        raise IndexError(f"too many indices: {len(selection)} for an array of {len(shape)} dimensions")
    selection = tuple(selection) + (slice(None),) * (len(shape) - len(selection))
    entries: list[int | range] = []
    flip: list[int] = []
    for axis, (item, size) in enumerate(zip(selection, shape)):
        if isinstance(item, slice):
            if item.step is not None and _index(item.step, axis) == 0:
                raise ValueError("slice step cannot be zero")
            r = range(size)[item]
            if r.step < 0:
                flip.append(sum(1 for e in entries if isinstance(e, range)))
                r = r[::-1] if len(r) else range(0, 0)
            # canonical: the tightest stop, so the server never sees one past the end
            r = range(r.start, r.start + (len(r) - 1) * r.step + 1, r.step) if len(r) else range(0, 0)
            entries.append(r)
        else:
            index = _index(item, axis)
            if not -size <= index < size:
                raise IndexError(f"index {index} is out of bounds for axis {axis} with size {size}")
            entries.append(index % size)
    return Selection(tuple(entries), tuple(flip))


def block_selection(block: tuple[int, ...], chunks: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    """Validate a block index against ``chunks``; return it as a tuple of ints."""
    if not isinstance(block, (tuple, list)):
        block = (block,)
    if len(block) != len(chunks):
        raise IndexError(f"block index {tuple(block)} needs {len(chunks)} entries")
    result = []
    for axis, (index, sizes) in enumerate(zip(block, chunks)):
        index = _index(index, axis)
        if not 0 <= index < len(sizes):
            raise IndexError(f"block index {index} out of range for axis {axis} with {len(sizes)} blocks")
        result.append(index)
    return tuple(result)
