"""Dask tasks for ragged array reads: one picklable request description per stored partition.

A :class:`RaggedRead` names a session handle, the ``/ragged/full`` route and
a ``slice`` value; no client, no data, no secret. The server keeps ragged
arrays in SQL storage, which tiled 0.2.20 serves one request at a time per
connection, so each worker process sends these reads one at a time
(``SQL_TABLES``), inside its usual request slot.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._handles import SessionHandle
from ._limits import SQL_TABLES, request_slot

__all__ = ["RaggedRead", "partition_reads", "run_ragged_read", "finish_ragged"]


@dataclasses.dataclass(frozen=True)
class RaggedRead:
    """One GET of ragged data, described by value (``param`` None: the whole array)."""

    handle: SessionHandle
    route: str
    param: str | None
    dtype: np.dtype
    ndim: int
    scalar: bool = False

    def __repr__(self) -> str:
        return f"RaggedRead({self.route}?slice={self.param or ''} {self.dtype})"


def partition_reads(handle: SessionHandle, route: str, selection, chunks0, dtype) -> list[RaggedRead]:
    """The reads for ``selection`` (a ``RaggedSelection``): one per stored partition its rows touch."""
    def read(sel) -> RaggedRead:
        return RaggedRead(handle, route, sel.param, np.dtype(dtype), sel.ndim, sel.scalar)

    if selection.rows is None or selection.scalar:
        return [read(selection)]
    start, stop = selection.rows
    pieces, edge = [], 0
    for count in chunks0:
        low, edge = edge, edge + count
        a, b = max(low, start), min(edge, stop)
        if a < b:
            pieces.append((a, b))
    if len(pieces) < 2:
        return [read(selection)]
    return [read(selection.with_rows(a, b)) for a, b in pieces]


def run_ragged_read(request: RaggedRead):
    """A Dask task: perform ``request`` in whichever process runs it; returns a ``ragged.array``."""
    from ..codecs.ragged import JSON, ZIP, decode_ragged_json, decode_ragged_zip

    params = [] if request.param is None else [("slice", request.param)]
    with request_slot(request.handle.base_url), SQL_TABLES:
        session = request.handle.get()
        body = session.get_bytes(request.route, params, accept=JSON if request.scalar else ZIP)
    if request.scalar:
        return decode_ragged_json(body, request.dtype)
    return decode_ragged_zip(body, dtype=request.dtype, ndim=request.ndim)


def finish_ragged(parts: list, local, single: bool):
    """A Dask task: join the partitions' rows (``single``: there is one result, no join) and apply ``local``."""
    import awkward as ak
    import ragged

    result = parts[0] if single or len(parts) == 1 else ragged.array(ak.concatenate([p._impl for p in parts], axis=0))
    if local is not None:
        result = ragged.array(result._impl[local])
    return result
