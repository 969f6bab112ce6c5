"""Moving one node's data from one server to another, unit by unit: a small table per family.

A *unit* is one GET on the source and one write on the destination of the
same bytes: an array, sparse or ragged block, a table partition, or a whole
awkward node. Bytes are passed through as the servers encode them (raw
array bytes, Arrow IPC files, zips), never decoded (appends to SQL tables
drop the pandas index column with pyarrow), so no pandas, awkward or sparse
is needed here. Array blocks are read straight into one buffer and
sent from it, so a unit costs about one block of memory.

Everything here works over Sessions and picklable values: a
:class:`TransferBatch` runs unchanged in a driver thread or on a Dask worker.
Families are added by adding a :class:`FamilyTransfer` to ``TRANSFERS``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..codecs.array import OCTET_STREAM, byte_view, patch_changes_shape, patch_params
from ..transport import Session
from ._handles import SessionHandle
from ._limits import SQL_TABLES, request_slot

__all__ = ["FamilyTransfer", "TRANSFERS", "TransferBatch", "Unit", "move", "run_batch", "transfer_for"]

ARROW_FILE = "application/vnd.apache.arrow.file"
ZIP = "application/zip"
SQL_TABLE = "application/x-tiled-sql-table"


@dataclasses.dataclass(frozen=True)
class Unit:
    """One request's worth of a node's data.

    ``index``: block index (arrays, sparse), partition number (tables) or None
    (whole node). ``nbytes``: its size when known in advance (arrays), for the
    memory budget. For arrays, ``shape``/``dtype`` size the buffer and
    ``region`` (start, stop per axis) is its place in the array; an array
    unit may cover ``count`` neighbouring chunks (``index`` is the first).
    """

    index: Any = None
    nbytes: int | None = None
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    region: tuple[tuple[int, int], ...] | None = None
    count: int = 1  # chunks (blocks, partitions) this unit covers: checkpoints count these


def _path(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


def _block_param(index: tuple[int, ...]) -> tuple[str, str]:
    return ("block", ",".join(map(str, index)))


# -- arrays ----------------------------------------------------------------------
GROUP_BYTES = 32 << 20  # neighbouring array chunks up to this size move in one request each way


def _array_units(source: dict, dest: dict, start: int = 0, group_bytes: int = GROUP_BYTES) -> Iterator[Unit]:
    """The array's chunks in order, neighbours grouped into regions of up to ``group_bytes``.

    A server spends ~25 ms of CPU per request whatever its size, so many
    small chunks cost more in requests than in bytes. Chunks are grouped along
    the outermost axis whose one-chunk slab (every later axis whole) fits in
    ``group_bytes``; a group is then a rectangular region covering a run of
    consecutive chunks in C order, which keeps checkpoints (counted in chunks)
    meaningful whatever the grouping. Units before chunk ``start`` are left
    out; a group it falls inside is sent chunk by chunk from there.
    Arrays with a partial last chunk on some axis move chunk by chunk.
    """
    from ..structures import ArrayStructure

    structure = ArrayStructure.from_json(dest)
    if 0 in structure.shape:
        return  # the server made the (empty) storage on create
    chunks, shape, itemsize = structure.chunks, structure.shape, structure.dtype.itemsize
    starts = [tuple(itertools.accumulate((0,) + c[:-1])) for c in chunks]
    ndim = len(shape)
    axis = None
    # Regions are PATCHed: only into arrays that a PATCH leaves their shape (no partial last chunk).
    if not patch_changes_shape(chunks):
        axis = next((a for a in range(ndim)
                     if itemsize * max(chunks[a]) * math.prod(max(c) for c in chunks[:a]) * math.prod(shape[a + 1:])
                     <= group_bytes), None)
    if axis is None:  # chunk by chunk
        for index in itertools.islice(itertools.product(*(range(len(c)) for c in chunks)), start, None):
            yield _array_region(structure, starts, index, ())
        return
    ordinal = 0
    inner_count = math.prod(len(c) for c in chunks[axis + 1:])  # chunks of the later axes, all in each group
    for outer in itertools.product(*(range(len(c)) for c in chunks[:axis])):
        slab = itemsize * math.prod(chunks[a][i] for a, i in enumerate(outer)) * math.prod(shape[axis + 1:])
        for group in _runs(chunks[axis], slab, group_bytes):
            count = len(group) * inner_count
            if ordinal >= start:
                yield _array_region(structure, starts, outer, group, count)
            elif ordinal + count > start:  # resuming inside this group: its remaining chunks one by one
                for index in itertools.islice(_chunk_indices(chunks, outer, group), start - ordinal, None):
                    yield _array_region(structure, starts, index, ())
            ordinal += count


def _runs(sizes: tuple[int, ...], bytes_per_item: int, limit: int) -> Iterator[range]:
    """Consecutive indices of ``sizes`` grouped while a group's ``size * bytes_per_item`` stays within ``limit``."""
    first, total = 0, 0
    for i, size in enumerate(sizes):
        if i > first and total + size * bytes_per_item > limit:
            yield range(first, i)
            first, total = i, 0
        total += size * bytes_per_item
    yield range(first, len(sizes))


def _chunk_indices(chunks, outer: tuple[int, ...], group: range) -> Iterator[tuple[int, ...]]:
    rest = (range(len(c)) for c in chunks[len(outer) + 1:])
    return (outer + index for index in itertools.product(group, *rest))


def _array_region(structure, starts, outer: tuple[int, ...], group, count: int = 1) -> Unit:
    """The unit of chunk ``outer`` (``group`` empty), or of chunks ``group`` along the next axis, later axes whole."""
    region = [(starts[a][i], starts[a][i] + structure.chunks[a][i]) for a, i in enumerate(outer)]
    if group:
        axis = len(outer)
        region.append((starts[axis][group[0]], starts[axis][group[-1]] + structure.chunks[axis][group[-1]]))
        region.extend((0, size) for size in structure.shape[axis + 1:])
    shape = tuple(stop - begin for begin, stop in region)
    index = outer + (group[0],) + (0,) * (len(structure.shape) - len(outer) - 1) if group else outer
    return Unit(index, math.prod(shape) * structure.dtype.itemsize, shape, structure.dtype, tuple(region), count)


def _array_transfer(source: Session, source_path: tuple[str, ...], dest: Session, dest_path: tuple[str, ...],
                    unit: Unit) -> int:
    # The source's region is read from /array/full, which sends the declared dtype;
    # /array/block sends the storage's byte order (big-endian arrays would arrive byte-swapped).
    out = np.empty(unit.shape, dtype=unit.dtype)
    param = ",".join(f"{begin}:{stop}" for begin, stop in unit.region)
    source.read_into(f"array/full/{_path(source_path)}", [("slice", param)], accept=OCTET_STREAM, out=byte_view(out))
    if unit.count == 1:
        dest.send("PUT", f"array/block/{_path(dest_path)}", params=[_block_param(unit.index)],
                  content=byte_view(out), content_type=OCTET_STREAM)
    else:  # several chunks: written in place by region (never past the shape, so a resend is harmless)
        params = patch_params(tuple(begin for begin, _ in unit.region), out.shape, extend=False)
        dest.send("PATCH", f"array/full/{_path(dest_path)}", params=params, content=byte_view(out),
                  content_type=OCTET_STREAM, idempotent=True)
    return out.nbytes


# -- families whose bytes pass through as the server encodes them -------------------
def _blocks(source: dict, dest: dict, start: int = 0, group_bytes: int = 0) -> Iterator[Unit]:
    for index in itertools.islice(itertools.product(*(range(len(c)) for c in dest["chunks"])), start, None):
        yield Unit(index)


def _partitions(source: dict, dest: dict, start: int = 0, group_bytes: int = 0) -> Iterator[Unit]:
    for partition in range(start, int(dest.get("npartitions", 1))):
        yield Unit(partition)


def _whole(source: dict, dest: dict, start: int = 0, group_bytes: int = 0) -> Iterator[Unit]:
    if start == 0:
        yield Unit(None)


def _ragged_units(source: dict, dest: dict, start: int = 0, group_bytes: int = 0) -> Iterator[Unit]:
    chunks = dest.get("chunks") or [None]
    sizes = chunks[0] if chunks[0] else [dest["shape"][0]]
    rows = itertools.pairwise(itertools.accumulate([0, *sizes]))
    for index, (begin, stop) in itertools.islice(enumerate(rows), start, None):
        yield Unit(index, region=((begin, stop),))


def _ragged_transfer(source: Session, source_path, dest: Session, dest_path, unit: Unit) -> int:
    # One zip per chunk (rows start:stop), written as that chunk: the destination keeps the chunking.
    ((start, stop),) = unit.region
    body = source.get_bytes(f"ragged/full/{_path(source_path)}", [("slice", f"{start}:{stop}")], accept=ZIP)
    dest.send("PUT", f"ragged/block/{_path(dest_path)}", params=[("block", str(unit.index))], content=body,
              content_type=ZIP, idempotent=False)  # an append: a resend could store the chunk twice
    return len(body)


def _passthrough(route: str, media_type: str, method: str, param: Callable[[Any], list]):
    def transfer(source: Session, source_path, dest: Session, dest_path, unit: Unit) -> int:
        params = param(unit.index)
        body = source.get_bytes(f"{route}/{_path(source_path)}", params, accept=media_type)
        dest.send(method, f"{route}/{_path(dest_path)}", params=params, content=body, content_type=media_type)
        return len(body)

    return transfer


def _sql_append(source: Session, source_path, dest: Session, dest_path, unit: Unit) -> int:
    """Rows of one partition appended to an SQL-backed table.

    The server serialises partitions from pandas, index included, but an
    append must carry exactly the table's columns: the index columns named in
    the pandas metadata are dropped before the rows are sent on.
    """
    import json

    import pyarrow as pa

    params = _partition_param(unit.index)
    with SQL_TABLES:
        body = source.get_bytes(f"table/partition/{_path(source_path)}", params, accept=ARROW_FILE)
    table = pa.ipc.open_file(pa.py_buffer(body)).read_all()
    pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    index = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
    table = table.drop_columns([c for c in index if c in table.column_names]).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    payload = sink.getvalue()
    with SQL_TABLES:
        dest.send("PATCH", f"table/partition/{_path(dest_path)}", params=params, content=memoryview(payload),
                  content_type=ARROW_FILE)
    return payload.size


def _no_params(index) -> list:
    return []


def _partition_param(index: int) -> list:
    return [("partition", str(index))]


def _block_params(index) -> list:
    return [_block_param(index)]


@dataclasses.dataclass(frozen=True)
class FamilyTransfer:
    """How one family's data is cut into units and moved.

    ``idempotent``: writing a unit twice leaves the same data (PUT), so an
    interrupted node can be completed in place; otherwise (appends) it is
    recreated from scratch on resume. ``exclusive``: SQL-backed storage
    (appendable tables, ragged arrays); a 0.2.20 server answers 500 to
    concurrent reads and appends on its SQL store (even of different
    nodes), so such units run one at a time in the whole copy, in order.
    """

    # (source structure, dest structure, from chunk k, most bytes a unit may group): the units in order
    units: Callable[[dict, dict, int, int], Iterator[Unit]]
    transfer: Callable[[Session, tuple, Session, tuple, Unit], int]
    idempotent: bool = True
    exclusive: bool = False


TRANSFERS: dict[str, FamilyTransfer] = {
    "array": FamilyTransfer(_array_units, _array_transfer),
    "sparse": FamilyTransfer(_blocks, _passthrough("array/block", ARROW_FILE, "PUT", _block_params)),
    "table": FamilyTransfer(_partitions, _passthrough("table/partition", ARROW_FILE, "PUT", _partition_param)),
    # Appendable (SQL) tables take rows by PATCH, which appends: not idempotent.
    "table:sql": FamilyTransfer(_partitions, _sql_append, idempotent=False, exclusive=True),
    "awkward": FamilyTransfer(_whole, _passthrough("awkward/full", ZIP, "PUT", _no_params)),
    # Ragged chunks are appended rows (a second write of a chunk is refused): not idempotent.
    "ragged": FamilyTransfer(_ragged_units, _ragged_transfer, idempotent=False, exclusive=True),
}


def transfer_for(family: str, mimetype: str | None) -> str | None:
    """The ``TRANSFERS`` key for a node of ``family`` stored as ``mimetype`` (None: not supported)."""
    if family == "table" and mimetype == SQL_TABLE:
        return "table:sql"
    return family if family in TRANSFERS else None


@dataclasses.dataclass(frozen=True)
class TransferBatch:
    """Units to move between two servers: ``(source path, dest path, TRANSFERS key, unit)`` each."""

    source: SessionHandle
    dest: SessionHandle
    items: tuple[tuple[tuple[str, ...], tuple[str, ...], str, Unit], ...]

    def __repr__(self) -> str:
        return f"TransferBatch({self.source.base_url} -> {self.dest.base_url}, {len(self.items)} units)"


def move(source: Session, dest: Session, items) -> list[int]:
    """Move each ``(source path, dest path, key, unit)``; returns the bytes moved per unit."""
    return [TRANSFERS[key].transfer(source, source_path, dest, dest_path, unit)
            for source_path, dest_path, key, unit in items]


def run_batch(batch: TransferBatch) -> list[int]:
    """A Dask task: move ``batch`` from whichever worker runs it.

    Each unit holds one of the worker process's request slots for the
    destination (see ``_limits``), so a big cluster cannot flood the servers.
    """
    source, dest = batch.source.get(), batch.dest.get()
    moved = []
    for item in batch.items:
        with request_slot(dest.base_url):
            moved.extend(move(source, dest, [item]))
    return moved
