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

from ..codecs.array import OCTET_STREAM, byte_view
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
    ``region`` (start, stop per axis) is the block's place in the array.
    """

    index: Any = None
    nbytes: int | None = None
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    region: tuple[tuple[int, int], ...] | None = None


def _path(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


def _block_param(index: tuple[int, ...]) -> tuple[str, str]:
    return ("block", ",".join(map(str, index)))


# -- arrays ----------------------------------------------------------------------
def _array_units(source: dict, dest: dict) -> Iterator[Unit]:
    from ..structures import ArrayStructure

    structure = ArrayStructure.from_json(dest)
    dtype = structure.dtype
    if 0 in structure.shape:
        return  # the server made the (empty) storage on create
    starts = [list(itertools.accumulate((0,) + c[:-1])) for c in structure.chunks]
    for index in itertools.product(*(range(len(c)) for c in structure.chunks)):
        shape = tuple(structure.chunks[a][i] for a, i in enumerate(index))
        region = tuple((starts[a][i], starts[a][i] + shape[a]) for a, i in enumerate(index))
        yield Unit(index, math.prod(shape) * dtype.itemsize, shape, dtype, region)


def _array_transfer(source: Session, source_path: tuple[str, ...], dest: Session, dest_path: tuple[str, ...],
                    unit: Unit) -> int:
    # The source's block is read by region from /array/full, which sends the declared dtype;
    # /array/block sends the storage's byte order (big-endian arrays would arrive byte-swapped).
    out = np.empty(unit.shape, dtype=unit.dtype)
    param = ",".join(f"{start}:{stop}" for start, stop in unit.region)
    source.read_into(f"array/full/{_path(source_path)}", [("slice", param)], accept=OCTET_STREAM, out=byte_view(out))
    dest.send("PUT", f"array/block/{_path(dest_path)}", params=[_block_param(unit.index)],
              content=byte_view(out), content_type=OCTET_STREAM)
    return out.nbytes


# -- families whose bytes pass through as the server encodes them -------------------
def _blocks(source: dict, dest: dict) -> Iterator[Unit]:
    for index in itertools.product(*(range(len(c)) for c in dest["chunks"])):
        yield Unit(index)


def _partitions(source: dict, dest: dict) -> Iterator[Unit]:
    for partition in range(int(dest.get("npartitions", 1))):
        yield Unit(partition)


def _whole(source: dict, dest: dict) -> Iterator[Unit]:
    yield Unit(None)


def _ragged_units(source: dict, dest: dict) -> Iterator[Unit]:
    chunks = dest.get("chunks") or [None]
    sizes = chunks[0] if chunks[0] else [dest["shape"][0]]
    for index, (start, stop) in enumerate(itertools.pairwise(itertools.accumulate([0, *sizes]))):
        yield Unit(index, region=((start, stop),))


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

    units: Callable[[dict, dict], Iterator[Unit]]
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
