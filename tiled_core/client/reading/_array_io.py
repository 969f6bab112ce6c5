"""Array reads and writes over a Session: plans, block requests, uploads. No client objects."""

from __future__ import annotations

import itertools
import math

import numpy as np

from ...codecs.array import OCTET_STREAM, byte_view, encode_octet_stream, expected_shape_param, patch_params
from ...transport import Session
from ._slicing import Selection

MiB = 1 << 20
SINGLE_REQUEST_BYTES = 16 * MiB  # below this, one request: splitting costs more round trips than it saves
MAX_PART_BYTES = 100 * MiB  # well under the server's 300 MB response limit
UPLOAD_CHUNK_BYTES = 100_000_000  # the reference client's chunk limit, so zarr chunks stay moderate


def _route(action: str, path: tuple[str, ...]) -> str:
    return f"{action}/{'/'.join(path)}"


def read_block_into(session: Session, path: tuple[str, ...], block: tuple[int, ...], out: np.ndarray,
                    slice_param: str | None = None) -> np.ndarray:
    """Read one block (optionally sliced within it) into ``out``."""
    params = [("block", ",".join(str(i) for i in block)), expected_shape_param(out.shape)]
    if slice_param:
        params.append(("slice", slice_param))
    if out.size:
        session.read_into(_route("array/block", path), params, accept=OCTET_STREAM, out=byte_view(out))
    return out


def _split_axis(shape: tuple[int, ...]) -> int | None:
    """The outermost output axis longer than 1: cutting there keeps each part contiguous."""
    for axis, n in enumerate(shape):
        if n > 1:
            return axis
    return None


def _cut_points(selection: Selection, axis: int, parts: int, chunks: tuple[tuple[int, ...], ...]) -> list[int]:
    length = selection.shape[axis]
    ideal = [round(i * length / parts) for i in range(1, parts)]
    source_axis = [i for i, e in enumerate(selection.entries) if isinstance(e, range)][axis]
    r = selection.entries[source_axis]
    boundaries = [b for b in itertools.accumulate(chunks[source_axis]) if r.start < b < r.stop]
    if r.step == 1 and boundaries:
        # Snap to chunk edges: the server reads whole chunks, so a cut mid-chunk reads it twice.
        positions = [b - r.start for b in boundaries]
        ideal = [min(positions, key=lambda p: abs(p - cut)) for cut in ideal]
    return sorted(set(c for c in ideal if 0 < c < length))


def _fit(selection: Selection, region: list, max_items: int, first_axis: int = 0):
    """Cut ``selection`` into parts of at most ``max_items`` elements: whole runs along the
    outermost axis that can hold a run, one slab at a time along the axes before it."""
    if selection.size <= max_items:
        yield selection, region
        return
    shape = selection.shape
    axis = next((a for a in range(first_axis, len(shape)) if shape[a] > 1), None)
    if axis is None:  # a single element over the limit: nothing left to cut
        yield selection, region
        return
    inner = math.prod(shape[axis + 1:])
    step = max_items // inner if inner else shape[axis]
    for start in range(0, shape[axis], max(step, 1)):
        stop = min(shape[axis], start + max(step, 1))
        base = region[axis].start or 0  # ``region`` is in the whole output's coordinates
        sub_region = list(region)
        sub_region[axis] = slice(base + start, base + stop)
        yield from _fit(selection.with_output_axis(axis, start, stop), sub_region, max_items, axis + 1)


def plan_parts(selection: Selection, itemsize: int, chunks, concurrency: int,
               limit: int = MAX_PART_BYTES) -> list[tuple[Selection, tuple | None]]:
    """Split a read into ``(sub-selection, output region)`` parts fetched concurrently.

    Below ``SINGLE_REQUEST_BYTES`` and under ``limit`` (the response size the client
    accepts, ``ArrayClient.RESPONSE_BYTESIZE_LIMIT``): one request. Larger reads are
    cut along their outermost long axis into about ``concurrency`` parts (at chunk
    edges where possible), and any part still over ``limit`` is cut again.
    """
    nbytes = selection.size * itemsize
    axis = _split_axis(selection.shape)
    if axis is None or (nbytes <= SINGLE_REQUEST_BYTES and nbytes < limit):
        return [(selection, None)]
    coarse: list[tuple[Selection, list]] = [(selection, [slice(None)] * len(selection.shape))]
    if nbytes > SINGLE_REQUEST_BYTES:
        parts = min(concurrency, math.ceil(nbytes / SINGLE_REQUEST_BYTES))
        cuts = [0, *_cut_points(selection, axis, parts, chunks), selection.shape[axis]]
        coarse = []
        for start, stop in zip(cuts, cuts[1:]):
            region = [slice(None)] * len(selection.shape)
            region[axis] = slice(start, stop)
            coarse.append((selection.with_output_axis(axis, start, stop), region))
    max_items = max(1, limit // itemsize)
    return [(sub, tuple(region)) for part, outer in coarse for sub, region in _fit(part, outer, max_items)]


def read_selection_into(session: Session, path: tuple[str, ...], selection: Selection, out: np.ndarray,
                        chunks, *, whole: bool, limit: int = MAX_PART_BYTES) -> None:
    """Fill ``out`` with ``selection`` of the array at ``path``, concurrently when it is large
    (no response over ``limit`` bytes)."""
    route = _route("array/full", path)
    parts = plan_parts(selection, out.dtype.itemsize, chunks, session.limits.concurrency, limit)

    def fetch(part):
        sub, region = part
        target = out if region is None else out[region]
        params = [expected_shape_param(target.shape)]
        if not (whole and region is None):
            params.append(("slice", sub.to_param()))
        with session.fetch_gate.fetch():  # at most max_connections at once; advances a progress bar
            session.read_into(route, params, accept=OCTET_STREAM, out=byte_view(target))

    session.run_concurrently(fetch, parts)


def regular_chunks(shape: tuple[int, ...], itemsize: int, limit: int = UPLOAD_CHUNK_BYTES) -> tuple[tuple[int, ...], ...]:
    """Regular chunks (equal but the last) of at most ``limit`` bytes, cutting outer axes first."""
    chunk = list(shape)
    for axis in range(len(shape)):
        inner = math.prod(chunk[axis + 1:]) * itemsize
        if inner * chunk[axis] <= limit or chunk[axis] == 0:
            break
        chunk[axis] = max(1, limit // max(inner, 1))
        if inner <= limit:
            break
        chunk[axis] = 1
    return tuple(_axis_chunks(n, c) for n, c in zip(shape, chunk))


def _axis_chunks(n: int, c: int) -> tuple[int, ...]:
    if n == 0:
        return (0,)
    c = max(1, min(c, n))
    full, rest = divmod(n, c)
    return (c,) * full + ((rest,) if rest else ())


def block_slices(chunks: tuple[tuple[int, ...], ...]):
    """Yield ``(block index, tuple of slices)`` for every block."""
    starts = [list(itertools.accumulate((0,) + c[:-1])) for c in chunks]
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        yield index, tuple(slice(starts[a][i], starts[a][i] + chunks[a][i]) for a, i in enumerate(index))


def _persist(persist: bool) -> list[tuple[str, str]]:
    return [] if persist else [("persist", "false")]


def put_full(session: Session, path: tuple[str, ...], array: np.ndarray, dtype: np.dtype, *, persist: bool = True) -> None:
    session.send(
        "PUT", _route("array/full", path), params=_persist(persist),
        content=encode_octet_stream(array, dtype), content_type=OCTET_STREAM,
    )


def put_block(session: Session, path: tuple[str, ...], block: tuple[int, ...], array: np.ndarray, dtype: np.dtype,
              *, persist: bool = True) -> None:
    session.send(
        "PUT", _route("array/block", path), params=[("block", ",".join(map(str, block))), *_persist(persist)],
        content=encode_octet_stream(array, dtype), content_type=OCTET_STREAM,
    )


def patch_full(session: Session, path: tuple[str, ...], array: np.ndarray, dtype: np.dtype, offset: tuple[int, ...],
               *, extend: bool, persist: bool = True) -> dict:
    """Write ``array`` at ``offset`` (growing the array if ``extend``); return the server's new structure."""
    params = [*patch_params(offset, array.shape, extend=extend), *_persist(persist)]
    return session.send(
        "PATCH", _route("array/full", path), params=params,
        content=encode_octet_stream(array, dtype), content_type=OCTET_STREAM,
    )
