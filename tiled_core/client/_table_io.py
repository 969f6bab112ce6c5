"""Table reads and writes over a Session: request plans, partition fetches, uploads. No client objects."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from urllib.parse import quote

from ..codecs.table import ARROW_FILE, decode_arrow, encode_arrow
from ..transport import ClientError, Session
from ._array_io import SINGLE_REQUEST_BYTES

URL_CHARACTER_LIMIT = 2000  # past this, a column list goes in a POST body (as the reference client does)
_COLUMN_PARAM_CHARS = len("&column=")

# Bytes per column seen in earlier reads of a table, per session: the structure has no row
# count, so this is how a later read knows a table is small enough for one /table/full request.
_SEEN: "weakref.WeakKeyDictionary[Session, dict]" = weakref.WeakKeyDictionary()
_SEEN_LOCK = threading.Lock()


def _route(action: str, path: tuple[str, ...]) -> str:
    return f"{action}/{'/'.join(path)}"


def fetch(session: Session, path: tuple[str, ...], *, partition: int | None = None,
          columns: Sequence[str] | None = None) -> "pyarrow.Table":
    """One request for the whole table or one partition, optionally only some columns."""
    route = _route("table/full" if partition is None else "table/partition", path)
    params = [] if partition is None else [("partition", str(partition))]
    columns = list(columns) if columns is not None else None
    if columns:
        length = len(session.url(route)) + sum(_COLUMN_PARAM_CHARS + len(quote(c, safe="")) for c in columns)
        if length > URL_CHARACTER_LIMIT:
            return decode_arrow(session.get_bytes(route, params, accept=ARROW_FILE, json=columns))
        params += [("column", c) for c in columns]
    return decode_arrow(session.get_bytes(route, params, accept=ARROW_FILE))


def _too_large(error: ClientError) -> bool:
    return error.status == 400 and "exceed" in str(error.detail)


def _remember(session: Session, key: tuple, table: "pyarrow.Table") -> None:
    sizes = {name: table.column(name).nbytes for name in table.column_names}
    with _SEEN_LOCK:
        _SEEN.setdefault(session, {}).setdefault(key, {}).update(sizes)


def _estimate(session: Session, key: tuple, columns: Sequence[str] | None, all_columns: Sequence[str]) -> int | None:
    """Bytes the read will return, from earlier reads; None when some asked-for column was never seen."""
    with _SEEN_LOCK:
        sizes = dict(_SEEN.get(session, {}).get(key, {}))
    regular = set(all_columns)
    index = [n for name, n in sizes.items() if name not in regular]  # the index travels with every read
    wanted = [sizes.get(c) for c in (all_columns if columns is None else columns)]
    if not sizes or any(n is None for n in wanted):
        return None
    return sum(index) + sum(wanted)


def concat(tables: list["pyarrow.Table"]) -> "pyarrow.Table":
    """Partitions -> one table, without copying the columns (chunks are kept side by side)."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    # Permissive: an all-null partition arrives typed `null` where the others are typed.
    return pa.concat_tables(tables, promote_options="permissive")


def read_table(session: Session, path: tuple[str, ...], npartitions: int, columns: Sequence[str] | None,
               all_columns: Sequence[str]) -> "pyarrow.Table":
    """The whole table (or some columns) as one Arrow table.

    One /table/full request when the table has one partition or earlier reads
    showed it is small; otherwise the partitions are fetched concurrently
    (bounded) and joined, which also keeps each response far from the
    server's 300 MB response limit.
    """
    identity = (path, npartitions)
    estimate = _estimate(session, identity, columns, all_columns)
    if npartitions <= 1 or (estimate is not None and estimate <= SINGLE_REQUEST_BYTES):
        try:
            table = fetch(session, path, columns=columns)
        except ClientError as error:
            if npartitions <= 1 or not _too_large(error):
                raise
        else:
            _remember(session, identity, table)
            return table
    tables = session.run_concurrently(
        lambda i: fetch(session, path, partition=i, columns=columns), range(npartitions)
    )
    table = concat(tables)
    _remember(session, identity, table)
    return table


def put(session: Session, path: tuple[str, ...], data, *, partition: int | None = None, append: bool = False) -> None:
    """Upload a DataFrame (or Arrow table / dict) as the whole table, one partition, or rows to append."""
    route = _route("table/full" if partition is None else "table/partition", path)
    params = [] if partition is None else [("partition", str(partition))]
    session.send("PATCH" if append else "PUT", route, params=params, content=encode_arrow(data),
                 content_type=ARROW_FILE)
