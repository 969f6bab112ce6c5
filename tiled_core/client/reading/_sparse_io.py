"""Sparse (COO) reads and writes over a Session: whole, sliced, by block. No client objects."""

from __future__ import annotations

import numpy as np

from ...codecs.sparse import ARROW_FILE, coo_from_parts, decode_coo_arrow, encode_coo_arrow
from ...transport import ClientError, Session
from ._array_io import _route, _split_axis
from ._limits import too_large
from ._slicing import Selection


def read_selection(session: Session, path: tuple[str, ...], selection: Selection, *, whole: bool = False):
    """``selection`` (ascending, no flips) of the sparse array at ``path``, as a COO.

    When the server refuses a response as too large, the selection is halved
    along its outermost axis and the halves are read concurrently.
    """
    params = [] if whole else [("slice", selection.to_param())]
    try:
        body = session.get_bytes(_route("array/full", path), params, accept=ARROW_FILE)
    except ClientError as error:
        axis = _split_axis(selection.shape)
        if not too_large(error) or axis is None:
            raise
        middle = selection.shape[axis] // 2
        halves = [selection.with_output_axis(axis, 0, middle),
                  selection.with_output_axis(axis, middle, selection.shape[axis])]
        parts = session.run_concurrently(lambda half: read_selection(session, path, half), halves)
        return concatenate(parts, axis, selection.shape)
    return decode_coo_arrow(body, selection.shape)


def concatenate(parts, axis: int, shape: tuple[int, ...]):
    """Join COO parts along ``axis`` (plain numpy: sparse's own version compiles with numba first)."""
    coords, start = [], 0
    for part in parts:
        shifted = part.coords.copy()
        shifted[axis] += start
        coords.append(shifted)
        start += part.shape[axis]
    return coo_from_parts(np.concatenate(coords, axis=1), np.concatenate([p.data for p in parts]), shape)


def flip(coo, axes: tuple[int, ...]):
    """Reverse ``coo`` along ``axes`` (the server is only ever asked for ascending ranges)."""
    if not axes:
        return coo
    coords = coo.coords.copy()
    for axis in axes:
        coords[axis] = coo.shape[axis] - 1 - coords[axis]
    return coo_from_parts(coords, coo.data, coo.shape)


def as_box(selection: Selection) -> Selection:
    """An all-integer selection as a 1x..x1 box (the server answers 500 when no dimension is left)."""
    return Selection(tuple(range(i, i + 1) if isinstance(i, int) else i for i in selection.entries), ())


def element(coo):
    """The single element of a 1x..x1 COO, as a numpy scalar (its fill value when not stored)."""
    return coo.data[0] if coo.nnz else coo.fill_value


def read_block(session: Session, path: tuple[str, ...], block: tuple[int, ...], shape: tuple[int, ...],
               slice_param: str | None = None):
    """One block (coordinates local to it), optionally sliced within it; ``shape`` is the result's."""
    params = [("block", ",".join(map(str, block)))]
    if slice_param:
        params.append(("slice", slice_param))
    body = session.get_bytes(_route("array/block", path), params, accept=ARROW_FILE)
    return decode_coo_arrow(body, shape)


def put(session: Session, path: tuple[str, ...], coords, data, *, block: tuple[int, ...] | None = None) -> None:
    """Upload COO coordinates and values, to the whole array or to one block."""
    body = encode_coo_arrow(coords, data)
    if block is None:
        session.send("PUT", _route("array/full", path), content=body, content_type=ARROW_FILE)
    else:
        session.send("PUT", _route("array/block", path), params=[("block", ",".join(map(str, block)))],
                     content=body, content_type=ARROW_FILE)
