"""A numpy-style selection of a ragged array, as the server's ``?slice=`` takes it.

Integers and slices on every dimension. What the client knows is checked
here, before any request: the types, integers out of range on dimensions of
known length, negative steps. Positive steps are applied locally to the
range the server sends. Whether an index fits a dimension of variable length
depends on the data, so the server decides that (a 422 naming the slice).
"""

from __future__ import annotations

import builtins
import dataclasses
import operator

__all__ = ["RaggedSelection", "select"]


@dataclasses.dataclass(frozen=True)
class RaggedSelection:
    """``param``: the server's ``slice`` value (None: everything); ``local``: what to apply after;
    ``scalar``: one element; ``ndim``: dimensions of the result; ``rows``: the axis-0 range (start, stop)
    when axis 0 is sliced (None for an integer)."""

    param: str | None
    local: tuple | None
    scalar: bool
    ndim: int
    rows: tuple[int, int] | None
    components: tuple = ()

    def with_rows(self, start: int, stop: int) -> "RaggedSelection":
        """The same selection restricted to rows ``start:stop`` of axis 0 (for split reads)."""
        components = (builtins.slice(start, stop),) + self.components[1:]
        return dataclasses.replace(self, param=_param(components), rows=(start, stop), components=components)


def _index(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None


def _param(components) -> str:
    parts = []
    for c in components:
        if isinstance(c, int):
            parts.append(str(c))
        else:
            parts.append(("" if c.start is None else str(c.start)) + ":" + ("" if c.stop is None else str(c.stop)))
    return ",".join(parts)


def select(selection, shape: tuple[int | None, ...]) -> RaggedSelection:
    """Normalize ``selection`` for an array of ``shape`` (None for variable dimensions).

    Raises TypeError (not integers/slices), IndexError (an integer outside a
    dimension of known length, two Ellipses) or ValueError (a negative step).
    """
    ndim = len(shape)
    if selection is None or selection is Ellipsis:
        return RaggedSelection(None, None, ndim == 0, ndim, (0, shape[0]) if ndim else None)
    items = selection if isinstance(selection, tuple) else (selection,)
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if Ellipsis in [i for i in items if i is Ellipsis]:
        at = next(n for n, i in enumerate(items) if i is Ellipsis)
        fill = max(ndim - (len(items) - 1), 0)
        items = items[:at] + (builtins.slice(None),) * fill + items[at + 1:]
    components: list = []
    local: list = []
    stepped = False
    for axis, item in enumerate(items):
        length = shape[axis] if axis < ndim else None
        if isinstance(item, builtins.slice):
            start, stop = _index(item.start, "a slice start"), _index(item.stop, "a slice stop")
            step = _index(item.step, "a slice step")
            if step is not None and step < 0:
                raise ValueError("ragged arrays cannot be read with a negative step; read the range and reverse it")
            if step == 0:
                raise ValueError("slice step cannot be zero")
            if length is not None:
                start, stop, _ = builtins.slice(start, stop).indices(length)
                stop = max(start, stop)
            components.append(builtins.slice(start, stop))
            local.append(builtins.slice(None, None, step if step and step > 1 else None))
            stepped = stepped or bool(step and step > 1)
        else:
            if item is None or isinstance(item, (str, bytes, float)) or hasattr(item, "__len__"):
                raise TypeError(f"ragged arrays are indexed by integers and slices, not {type(item).__name__}")
            index = _index(item, "an index")
            if length is not None:
                if not -length <= index < length:
                    raise IndexError(f"index {index} is out of bounds for axis {axis} with size {length}")
                index %= length
            components.append(index)
    ints = sum(1 for c in components if isinstance(c, int))
    first = components[0] if components else builtins.slice(0, shape[0])
    rows = None if isinstance(first, int) else (first.start or 0, shape[0] if first.stop is None else first.stop)
    return RaggedSelection(
        param=_param(components),
        local=tuple(local) if stepped else None,
        scalar=ints == ndim and len(components) == ndim,
        ndim=max(ndim - ints, 0),
        rows=rows,
        components=tuple(components),
    )
