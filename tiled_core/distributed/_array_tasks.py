"""Dask graphs for array reads: one small, picklable request description per task.

Each task carries an :class:`ArrayRead` (session handle, route, parameters,
shape, dtype) and nothing else: no client object, no data, no secret. A worker
turns the handle into its process's one Session (one connection pool, reused
by every task it runs) and waits for a per-process request slot, so a large
cluster cannot flood the server.

Small chunks are fetched in groups: neighbouring chunks (whole slabs along
the outermost chunked axis when they fit, else runs along it) are read with
one ``/array/full?slice=`` request of up to ``GROUP_BYTES``, and the group is
then split into the server's chunks by ``getitem`` tasks (views, no copies).
An array of up to ``ONE_REQUEST_BYTES`` is one request. The collection keeps
the server's chunking, as the reference client's does, while the server sees
a few large requests instead of many small ones (each costs a tiled 0.2.20
server ~25-35 ms of CPU whatever its size, plus ~5 ms per MiB).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
from typing import Any

import numpy as np

from ..codecs.array import OCTET_STREAM, byte_view, expected_shape_param
from ._handles import SessionHandle
from ._limits import request_slot

__all__ = ["ArrayRead", "GROUP_BYTES", "array_graph", "plan_groups", "run_read"]

MiB = 1 << 20
GROUP_BYTES = 32 * MiB  # big enough to amortise a request, small enough to keep workers busy
MIN_TASKS = 8  # do not group an array into fewer requests than this...
ONE_REQUEST_BYTES = 16 * MiB  # ...unless it is this small: then one request is cheapest


@dataclasses.dataclass(frozen=True)
class ArrayRead:
    """One GET of raw array bytes, described by value."""

    handle: SessionHandle
    route: str
    params: tuple[tuple[str, str], ...]
    shape: tuple[int, ...]
    dtype: np.dtype
    flip: tuple[int, ...] = ()

    def __repr__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params)
        return f"ArrayRead({self.route}?{query} shape={self.shape} {self.dtype})"


def run_read(request: ArrayRead) -> np.ndarray:
    """A Dask task: perform ``request`` in whichever process runs it."""
    out = np.empty(request.shape, dtype=request.dtype)
    if out.size:
        with request_slot(request.handle.base_url):
            session = request.handle.get()
            params = [*request.params, expected_shape_param(request.shape)]
            with session.fetch_gate.fetch():  # the session's bound (max_connections), and progress
                session.read_into(request.route, params, accept=OCTET_STREAM, out=byte_view(out))
    return np.flip(out, request.flip) if request.flip else out


def _starts(chunks: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    return [list(itertools.accumulate((0,) + c[:-1])) for c in chunks]


def plan_groups(chunks: tuple[tuple[int, ...], ...], itemsize: int, *, target: int = GROUP_BYTES,
                wanted: tuple[set[int], ...] | None = None) -> tuple[int | None, list[list[tuple[int, ...]]]]:
    """Block indices in groups read by one request each: ``(axis, groups)``.

    ``axis`` is the outermost axis with several chunks. Each group is a box of
    neighbouring blocks (listed in C order, first and last at its corners)
    whose bytes add up to at most ``target``, lowered to a ``MIN_TASKS``-th of
    the array but not below ``ONE_REQUEST_BYTES``. Whole slabs
    (every block sharing an index along ``axis``) are grouped when one fits,
    so an array of up to ``ONE_REQUEST_BYTES`` is one request; otherwise
    blocks are grouped along ``axis`` only, and blocks of ``target / 2`` or
    more stay alone. With ``wanted`` (block indices per axis that a selection
    touches) only wanted blocks are grouped, so a small selection never pulls
    in its neighbours' bytes.
    """
    indices = list(itertools.product(*(range(len(c)) for c in chunks)))
    axis = next((a for a, c in enumerate(chunks) if len(c) > 1), None)
    if axis is None:
        return None, [[index] for index in indices]
    total = math.prod(sum(c) for c in chunks) * itemsize
    # A request costs the server a fixed ~25 ms of CPU: small arrays are cheapest read whole.
    limit = min(target, max(total // MIN_TASKS, ONE_REQUEST_BYTES))

    def is_wanted(index) -> bool:
        return wanted is None or all(index[a] in wanted[a] for a in range(len(chunks)))

    slab_bytes = total // max(sum(chunks[axis]), 1)  # per unit of length along axis
    inner_wanted = wanted is None or all(len(wanted[a]) == len(chunks[a]) for a in range(len(chunks)) if a != axis)
    if inner_wanted and max(chunks[axis]) * slab_bytes <= limit:
        return axis, _slab_groups(chunks, axis, slab_bytes, limit, lambda i: wanted is None or i in wanted[axis])
    groups: list[list[tuple[int, ...]]] = []
    others = [range(len(c)) for a, c in enumerate(chunks) if a != axis]
    for rest in itertools.product(*others):
        current: list[tuple[int, ...]] = []
        size = 0
        for i in range(len(chunks[axis])):
            index = rest[:axis] + (i,) + rest[axis:]
            nbytes = math.prod(chunks[a][index[a]] for a in range(len(chunks))) * itemsize
            if not is_wanted(index):
                if current:
                    groups.append(current)
                    current, size = [], 0
                groups.append([index])
                continue
            if current and (size + nbytes > limit or nbytes * 2 >= target):
                groups.append(current)
                current, size = [], 0
            current.append(index)
            size += nbytes
        if current:
            groups.append(current)
    return axis, groups


def _slab_groups(chunks, axis: int, slab_bytes: int, limit: int,
                 wanted_along) -> list[list[tuple[int, ...]]]:
    """Runs of neighbouring wanted slabs along ``axis``, up to ``limit`` bytes a run; unwanted blocks alone."""
    inner = [range(len(c)) for a, c in enumerate(chunks) if a != axis]

    def blocks(first: int, last: int) -> list[tuple[int, ...]]:
        return [rest[:axis] + (i,) + rest[axis:] for i in range(first, last + 1) for rest in itertools.product(*inner)]

    groups: list[list[tuple[int, ...]]] = []
    run, size = None, 0
    for i, length in enumerate(chunks[axis]):
        if not wanted_along(i):
            if run is not None:
                groups.append(blocks(*run))
                run = None
            groups.extend([block] for block in blocks(i, i))
            continue
        nbytes = length * slab_bytes
        if run is not None and size + nbytes <= limit:
            run, size = (run[0], i), size + nbytes
        else:
            if run is not None:
                groups.append(blocks(*run))
            run, size = (i, i), nbytes
    if run is not None:
        groups.append(blocks(*run))
    return groups


def _slice_param(region) -> str:
    return ",".join(f"{start}:{stop}" for start, stop in region)


def _full_route(path: tuple[str, ...]) -> str:
    return "array/full/" + "/".join(path)


def array_graph(name: str, handle: SessionHandle, path: tuple[str, ...], chunks, dtype: np.dtype,
                wanted: tuple[set[int], ...] | None = None) -> dict[Any, Any]:
    """The graph of a dask array named ``name`` with the server's ``chunks``, reading groups of small chunks.

    ``wanted``: see :func:`plan_groups` (the blocks a selection will keep).
    """
    dtype = np.dtype(dtype)
    starts = _starts(chunks)
    axis, groups = plan_groups(chunks, dtype.itemsize, wanted=wanted)
    graph: dict[Any, Any] = {}
    for number, group in enumerate(groups):
        first, last = group[0], group[-1]
        region = []
        for a in range(len(chunks)):
            start = starts[a][first[a]]
            stop = starts[a][last[a]] + chunks[a][last[a]]
            region.append((start, stop))
        shape = tuple(stop - start for start, stop in region)
        # Always the full route with a slice: /array/block sends the storage's byte order, not the
        # declared dtype's (a big-endian array comes back byte-swapped), while /array/full casts.
        request = ArrayRead(handle, _full_route(path), (("slice", _slice_param(region)),), shape, dtype)
        if len(group) == 1:
            graph[(name, *first)] = (run_read, request)
            continue
        group_key = (f"{name}-group", number)
        graph[group_key] = (run_read, request)
        for index in group:
            begins = [starts[a][index[a]] - region[a][0] for a in range(len(chunks))]
            local = tuple(slice(b, b + chunks[a][index[a]]) for a, b in enumerate(begins))
            graph[(name, *index)] = (operator.getitem, group_key, local)
    return graph
