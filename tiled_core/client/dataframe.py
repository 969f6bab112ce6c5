"""Table clients: in-memory (pandas) and lazy (dask)."""

from __future__ import annotations

import contextlib
import functools
import operator
import warnings
from collections.abc import Iterable, Iterator

from ..codecs.table import decode_schema, empty_frame, pyarrow_strings, to_pandas
from ..structures import TableStructure
from ..transport import ServerError
from ._dispatch import client_for_item, node_item
from .reading import _table_io
from .base import BaseClient

__all__ = ["DataFrameClient", "DaskDataFrameClient"]


class DataFrameClient(BaseClient):
    """Client-side wrapper around a dataframe-like that returns in-memory dataframes

    ``read()`` returns a pandas DataFrame with the index and dtypes as the
    server sends them, text columns as ``string[pyarrow]`` (as the reference
    client's read returns them). Only the asked-for columns cross the network;
    a multi-partition table is fetched as concurrent partition requests (one
    request once earlier reads showed it is small) and decoded from Arrow in
    one conversion. ``c["col"]`` is that column as an array client (as in
    the reference client); ``read(columns=["col"])["col"]`` gives it as a
    pandas Series, whatever its dtype.
    """

    def structure(self) -> TableStructure:
        return super().structure()

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self.structure().columns)

    @property
    def npartitions(self) -> int:
        return self.structure().npartitions

    def __iter__(self) -> Iterator[str]:
        # Column names, as the reference client; __len__ (a row count) is deliberately absent.
        yield from self.structure().columns

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path or '/'} {self.columns}>"

    def _ipython_key_completions_(self) -> list[str]:
        return self.columns

    # -- argument checks (before any request) ---------------------------------
    def _check_columns(self, columns) -> list[str] | None:
        if columns is None:
            return None
        if isinstance(columns, str) or not isinstance(columns, Iterable):
            raise TypeError(f"columns must be a list of column names, not {columns!r}")
        columns = list(columns)
        if not columns:
            raise ValueError("columns=[] selects nothing; pass None for every column")
        known = set(self.structure().columns)
        missing = [c for c in columns if c not in known]
        if missing:
            raise KeyError(f"no column(s) {missing} in {self.path or '/'}; it has {self.columns}")
        return columns

    def _check_partition(self, partition) -> int:
        try:
            index = operator.index(partition)
        except TypeError:
            raise TypeError(f"partition must be an integer, not {type(partition).__name__}") from None
        count = self.structure().npartitions
        if not 0 <= index < count:
            raise IndexError(f"partition {partition} out of range: {self.path or '/'} has {count} partition(s)")
        return index

    def _meta(self, columns: list[str] | None = None):
        """A zero-row DataFrame with this table's columns and dtypes."""
        import pandas as pd
        import pyarrow as pa

        schema = decode_schema(self.structure().arrow_schema)
        meta = empty_frame(schema)
        # Text columns as the partitions give them (string[pyarrow]), decided by the schema:
        # an empty column's values cannot tell text from, say, lists.
        text = {f.name: pd.StringDtype("pyarrow") for f in schema
                if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)) and f.name in meta.columns}
        if text:
            meta = meta.astype(text)
        return meta[columns] if columns is not None else meta

    # -- reads ---------------------------------------------------------------
    def _read_pandas(self, columns=None):
        columns = self._check_columns(columns)
        structure = self.structure()
        if structure.npartitions == 0:
            return self._meta(columns)
        table = _table_io.read_table(
            self._context.session, self._path, structure.npartitions, columns, structure.columns,
            data_sources=self._item["attributes"].get("data_sources"), url_limit=self.URL_CHARACTER_LIMIT,
        )
        return pyarrow_strings(to_pandas(table))

    def _read_partition_pandas(self, partition, columns=None):
        partition = self._check_partition(partition)
        columns = self._check_columns(columns)
        # Text as string[pyarrow], as read() gives it, with pandas 2 (object) as with pandas 3 (str).
        return pyarrow_strings(to_pandas(_table_io.fetch(self._context.session, self._path, partition=partition,
                                                         columns=columns, url_limit=self.URL_CHARACTER_LIMIT)))

    def read(self, columns=None):
        """Access the entire DataFrame. Optionally select a subset of the columns."""
        return self._read_pandas(columns)

    def read_partition(self, partition, columns=None):
        """Access one partition of the DataFrame. Optionally select a subset of the columns."""
        return self._read_partition_pandas(partition, columns)

    def __getitem__(self, column):
        """One column as an array client, as the reference client gives it (``c["x"].read()``, ``c["x"][:10]``).

        The server serves each column as an array node; no data travels until
        it is read. KeyError for a column the table lacks (before any
        request). Columns numpy cannot hold (categorical, nullable integers)
        the server cannot serve as arrays: that is a ValueError saying to use
        ``read(columns=[name])[name]``, which gives any column as a pandas Series.
        """
        if not isinstance(column, str):
            raise TypeError(f"a column name is a string, not {type(column).__name__}; use read(columns=[...])")
        if column not in self.structure().columns:
            raise KeyError(f"no column {column!r} in {self.path or '/'}; it has {self.columns}")
        path = "metadata/" + "/".join((*self._path, column))
        try:
            document = self._context.session.get_document(path, [("omit_links", "true")])
        except ServerError:
            raise ValueError(f"the server cannot serve the column {column!r} of {self.path or '/'} as an array "
                             f"(categorical or nullable columns); read it as read(columns=[{column!r}])[{column!r}]"
                             ) from None
        return client_for_item(self._context, self._structure_clients, node_item(document, path))

    # -- export ------------------------------------------------------------
    def export(self, filepath, columns=None, *, format=None) -> None:
        """Download data in some format and write to a file (or a writable binary buffer).

        ``format`` is a media type or an extension (``"csv"``, ``"parquet"``,
        ``"arrow"``, ...); by default it is taken from ``filepath``'s extension.
        ``columns`` selects a subset of the columns.
        """
        columns = self._check_columns(columns)
        params = [("column", c) for c in columns or ()]
        self._export(filepath, format=format, route="table/full", params=params)

    # -- writes --------------------------------------------------------------
    def _check_frame(self, dataframe):
        import pandas as pd

        if type(dataframe).__module__.startswith("dask"):
            dataframe = dataframe.compute()
        if isinstance(dataframe, pd.DataFrame):
            names = list(dataframe.columns)
            if names != list(self.structure().columns):
                raise ValueError(f"the DataFrame's columns {names} are not this table's {self.columns}")
        return dataframe

    def write(self, dataframe) -> None:
        """Replace the table's data (a table of one partition; see write_partition)."""
        count = self.structure().npartitions
        if count != 1:
            raise ValueError(f"{self.path or '/'} has {count} partitions; write each with write_partition")
        _table_io.put(self._context.session, self._path, self._check_frame(dataframe))

    def write_partition(self, partition, dataframe) -> None:
        """Replace one partition's rows."""
        partition, dataframe = _partition_first(partition, dataframe, "write_partition")
        partition = self._check_partition(partition)
        _table_io.put(self._context.session, self._path, self._check_frame(dataframe), partition=partition)

    def append_partition(self, partition, dataframe) -> None:
        """Append rows to one partition of an appendable (SQL-backed) table.

        Tables written with ``write_dataframe`` are stored as Parquet, which the
        server cannot append to; create one with ``create_appendable_table``.
        Not retried after the request was sent: a lost reply must not append twice.
        """
        partition, dataframe = _partition_first(partition, dataframe, "append_partition")
        partition = self._check_partition(partition)
        _table_io.put(self._context.session, self._path, self._check_frame(dataframe), partition=partition, append=True)


def _partition_first(partition, dataframe, name: str):
    """Accept the older ``(dataframe, partition)`` order too, as the reference client does."""
    if not isinstance(partition, int) and isinstance(dataframe, int):
        warnings.warn(f"The order of arguments has changed: use {name}(partition, dataframe).",
                      DeprecationWarning, stacklevel=3)
        return dataframe, partition
    return partition, dataframe


def _read_partition_task(handle, path, columns, serial, partition):
    """A Dask task: read one partition on whichever thread or worker runs it.

    ``serial`` (tables not stored as Parquet): one such read at a time in this
    process, because the server's SQL adapter fails under concurrent reads.
    """
    from ..distributed._limits import SQL_TABLES, request_slot

    # The per-process slot keeps a big cluster from flooding the server (see tiled_core.distributed).
    with SQL_TABLES if serial else contextlib.nullcontext(), request_slot(handle.base_url):
        session = handle.get()
        with session.fetch_gate.fetch():  # the session's bound (max_connections), and progress
            table = _table_io.fetch(session, path, partition=partition, columns=columns)
    return pyarrow_strings(to_pandas(table))


class DaskDataFrameClient(DataFrameClient):
    """Client-side wrapper around an dataframe-like that returns dask dataframes

    The graph holds one task per partition; each task carries a small picklable
    reference to the connection (never the API key) and reads its own partition.
    """

    def _task(self, columns: list[str] | None):
        structure = self.structure()
        serial = structure.npartitions > 1 and not _table_io.concurrent_reads_safe(
            _table_io.storage(self._context.session, self._path, structure.npartitions, self._item["attributes"].get("data_sources"))
        )
        return functools.partial(_read_partition_task, self._context.session_handle, self._path, columns, serial)

    def read(self, columns=None):
        """Access the entire DataFrame, as a dask DataFrame of the table's partitions."""
        import dask.dataframe as dd

        columns = self._check_columns(columns)
        count = self.structure().npartitions
        if count == 0:
            return dd.from_pandas(self._meta(columns), npartitions=1)
        return dd.from_map(
            self._task(columns), range(count), meta=self._meta(columns), divisions=[None] * (count + 1),
            label="tiled-core-read-table",
        )

    def read_partition(self, partition, columns=None):
        """Access one partition in a partitioned (dask) dataframe."""
        import dask.dataframe as dd

        partition = self._check_partition(partition)
        columns = self._check_columns(columns)
        # from_map, as read(): the same dtypes as the whole table. (The reference client's
        # from_delayed checks the partition against a meta whose text dtype may differ from
        # what the server sends, and then fails.)
        return dd.from_map(self._task(columns), [partition], meta=self._meta(columns), divisions=(None, None),
                           label="tiled-core-read-partition")

    def compute(self):
        """Alias to ``client.read().compute()``, with a progress bar in interactive sessions."""
        with self._context.tracking_progress(self.structure().npartitions):
            return self.read().compute()
