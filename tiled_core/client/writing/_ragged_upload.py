"""Ragged array uploads: the data source of a new node, and its partitions sent one by one."""

from __future__ import annotations

import itertools

__all__ = ["RAGGED_SQL", "PARTITION_BYTES", "ragged_data_source", "upload_ragged"]

RAGGED_SQL = "application/x-ragged+sql"  # the server's SQL-backed ragged storage
PARTITION_BYTES = 100_000_000  # per partition (one request each), as the reference client


def ragged_data_source(array, *, dims=None, max_partition_bytes: int | None = None):
    """``(packed array, rows per partition, data source)`` for a new ragged node; errors before any request."""
    from ...codecs.ragged import pack_ragged, partition_rows

    packed = pack_ragged(array)
    rows = partition_rows(packed, PARTITION_BYTES if max_partition_bytes is None else max_partition_bytes)
    structure = packed.structure(rows, dims=dims)
    source = {"structure_family": "ragged", "structure": structure.to_json(), "mimetype": RAGGED_SQL,
              "parameters": {}, "properties": {}, "assets": [], "management": "writable", "id": None}
    return packed, rows, source


def upload_ragged(client, packed, rows: tuple[int, ...]) -> None:
    """Send ``packed`` to the new node ``client`` partition by partition, in order.

    One at a time: the server keeps ragged arrays in SQL storage, which
    tiled 0.2.20 serves one request at a time (concurrent ones fail).
    """
    if len(rows) == 1:
        client.write(packed)
        return
    edges = list(itertools.accumulate((0, *rows)))
    for block, (start, stop) in enumerate(zip(edges[:-1], edges[1:])):
        client.write_block(packed.rows(start, stop), block=block)
