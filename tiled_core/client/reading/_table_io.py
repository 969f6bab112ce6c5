"""Table reads and writes over a Session: request plans, partition fetches, uploads. No client objects."""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Sequence
from urllib.parse import quote

from ...codecs.table import ARROW_FILE, decode_arrow, encode_arrow
from ...distributed._limits import SQL_TABLES
from ...transport import ClientError, Session

MiB = 1 << 20
# Below this, one /table/full request beats a request per partition: every table request costs
# the server a fixed ~0.1 s (a dask graph over the Parquet files, an ETag hash), far more than an
# array block does, and on a small server a single request of this size is as fast as several.
SINGLE_REQUEST_BYTES = 64 * MiB
URL_CHARACTER_LIMIT = 2000  # past this, a column list goes in a POST body (as the reference client does)
_COLUMN_PARAM_CHARS = len("&column=")

PARQUET = "application/x-parquet"

# What earlier reads taught about a table, per session: the structure has no row count,
# so this is how a later read knows the table is small enough for one /table/full request.
_SEEN: "weakref.WeakKeyDictionary[Session, dict[tuple, _Notes]]" = weakref.WeakKeyDictionary()
_SEEN_LOCK = threading.Lock()


@dataclasses.dataclass
class _Notes:
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)  # bytes per column, index included
    storage: str | None = None  # the data source's mimetype

    def estimate(self, columns: Sequence[str] | None, all_columns: Sequence[str]) -> int | None:
        """Bytes the read will return; None when some asked-for column was never seen."""
        regular = set(all_columns)
        index = [n for name, n in self.sizes.items() if name not in regular]  # travels with every read
        wanted = [self.sizes.get(c) for c in (all_columns if columns is None else columns)]
        if not self.sizes or any(n is None for n in wanted):
            return None
        return sum(index) + sum(wanted)


def _notes(session: Session, path: tuple[str, ...], npartitions: int) -> _Notes:
    with _SEEN_LOCK:
        return _SEEN.setdefault(session, {}).setdefault((path, npartitions), _Notes())


def _route(action: str, path: tuple[str, ...]) -> str:
    return f"{action}/{'/'.join(path)}"


def fetch(session: Session, path: tuple[str, ...], *, partition: int | None = None,
          columns: Sequence[str] | None = None, url_limit: int = URL_CHARACTER_LIMIT) -> "pyarrow.Table":
    """One request for the whole table or one partition, optionally only some columns
    (sent in a POST body instead when the URL would be longer than ``url_limit``)."""
    route = _route("table/full" if partition is None else "table/partition", path)
    params = [] if partition is None else [("partition", str(partition))]
    columns = list(columns) if columns is not None else None
    if columns:
        length = len(session.url(route)) + sum(_COLUMN_PARAM_CHARS + len(quote(c, safe="")) for c in columns)
        if length > url_limit:
            return decode_arrow(session.get_bytes(route, params, accept=ARROW_FILE, json=columns))
        params += [("column", c) for c in columns]
    return decode_arrow(session.get_bytes(route, params, accept=ARROW_FILE))


def _too_large(error: ClientError) -> bool:
    return error.status == 400 and "exceed" in str(error.detail)


def storage(session: Session, path: tuple[str, ...], npartitions: int, data_sources: list | None = None) -> str:
    """The table's storage mimetype (one metadata request per table and session, unless given)."""
    notes = _notes(session, path, npartitions)
    if notes.storage is None:
        if data_sources is None:
            params = [("include_data_sources", "true"), ("omit_links", "true")]
            data_sources = session.get_document(_route("metadata", path), params)["data"]["attributes"].get("data_sources")
        sources = data_sources or [{}]
        notes.storage = str(sources[0].get("mimetype") or "").split(";")[0] if len(sources) == 1 else ""
    return notes.storage


def concurrent_reads_safe(mimetype: str) -> bool:
    """Parquet tables can be read a partition per request in parallel. The SQL (appendable) adapter
    of tiled 0.2.20 fails (500) and can even crash the server under concurrent reads, so anything
    but Parquet is read one request at a time."""
    return mimetype == PARQUET


def concat(tables: list["pyarrow.Table"]) -> "pyarrow.Table":
    """Partitions -> one table, without copying the columns (chunks are kept side by side)."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    # Permissive: an all-null partition arrives typed `null` where the others are typed.
    return pa.concat_tables(tables, promote_options="permissive")


def read_table(session: Session, path: tuple[str, ...], npartitions: int, columns: Sequence[str] | None,
               all_columns: Sequence[str], data_sources: list | None = None,
               url_limit: int = URL_CHARACTER_LIMIT) -> "pyarrow.Table":
    """The whole table (or some columns) as one Arrow table, joined as the partitions come.

    One partition: one /table/full request. Parquet storage: the partitions
    are fetched concurrently (bounded), or in one /table/full request once an
    earlier read in this session showed the result is small (the server's
    per-request overhead dominates small reads). Other storage (SQL): one
    partition after another. Partitions, not /table/full, keep the index as
    each partition has it (the SQL adapter renumbers rows in /table/full),
    as the reference client returns it.
    """
    notes = _notes(session, path, npartitions)
    tables = None
    parallel = False
    if npartitions > 1:
        parallel = concurrent_reads_safe(storage(session, path, npartitions, data_sources))
    estimate = notes.estimate(columns, all_columns)
    if npartitions <= 1 or (parallel and estimate is not None and estimate <= SINGLE_REQUEST_BYTES):
        try:
            tables = [fetch(session, path, columns=columns, url_limit=url_limit)]
        except ClientError as error:
            if npartitions <= 1 or not _too_large(error):
                raise  # else the table grew since it was seen: fall back to partitions
    if tables is None:
        if parallel:
            tables = session.run_concurrently(lambda i: fetch(session, path, partition=i, columns=columns, url_limit=url_limit),
                                              range(npartitions))
        else:
            with SQL_TABLES:  # not even alongside another thread's SQL table read
                tables = [fetch(session, path, partition=i, columns=columns, url_limit=url_limit)
                          for i in range(npartitions)]
    table = concat(tables)
    with _SEEN_LOCK:
        notes.sizes.update((name, table.column(name).nbytes) for name in table.column_names)
    return table


def put(session: Session, path: tuple[str, ...], data, *, partition: int | None = None, append: bool = False) -> None:
    """Upload a DataFrame (or Arrow table / dict) as the whole table, one partition, or rows to append.

    Appended rows go without their index: SQL tables have none, and the
    server refuses a body with an index column (the reference client's
    ``append_partition`` of a DataFrame fails with a 500 for that reason).
    """
    route = _route("table/full" if partition is None else "table/partition", path)
    params = [] if partition is None else [("partition", str(partition))]
    body = encode_arrow(data, preserve_index=not append)
    session.send("PATCH" if append else "PUT", route, params=params, content=body, content_type=ARROW_FILE)
