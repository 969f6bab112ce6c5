"""Preparing tables for upload: the structure and data source document, partition-by-partition PUTs."""

from __future__ import annotations

from ...codecs.table import encode_schema, to_arrow
from ...structures import TableStructure
from ..reading import _table_io

APPENDABLE_MIMETYPE = "application/x-tiled-sql-table"


def _is_dask(data) -> bool:
    return type(data).__module__.startswith("dask")


def _column_names(names) -> tuple[str, ...]:
    names = tuple(names)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"column names must be strings, not {bad!r} (e.g. df.columns = df.columns.astype(str))")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"duplicate column names {duplicated}")
    return names


def data_source(structure: TableStructure, *, mimetype: str | None = None, parameters: dict | None = None) -> dict:
    return {
        "structure_family": "table",
        "structure": structure.to_json(),
        "mimetype": mimetype,
        "parameters": dict(parameters or {}),
        "properties": {},
        "assets": [],
        "management": "writable",
        "id": None,
    }


def _refuse_multiindex(frame) -> None:
    import pandas as pd

    if isinstance(getattr(frame, "index", None), pd.MultiIndex):
        raise ValueError(f"a row MultiIndex ({list(frame.index.names)}) is not stored so that it reads back "
                         "(the server refuses every read of such a table); call .reset_index() first, which "
                         "keeps its levels as columns")


def table_data_source(data):
    """Normalise ``data`` and describe it as a writable table data source.

    pandas DataFrames, dicts of columns and ``pyarrow.Table``s become one
    Arrow table (converted once: the same table gives the schema and the
    upload); a dask DataFrame keeps its partitions and is not computed here.
    Bad column names raise before any request.
    """
    if _is_dask(data):
        if not hasattr(data, "npartitions") or not hasattr(data, "_meta"):
            raise TypeError(f"cannot write a {type(data).__name__}; pass a DataFrame")
        columns = _column_names(data.columns)
        _refuse_multiindex(data._meta)
        schema = to_arrow(data._meta, preserve_index=None).schema
        npartitions = data.npartitions
        prepared = data
    else:
        import pandas as pd

        _refuse_multiindex(data)
        prepared = to_arrow(data, preserve_index=None)  # a RangeIndex stays metadata; other indexes become columns
        columns = _column_names(data.columns if isinstance(data, pd.DataFrame) else prepared.column_names)
        schema = prepared.schema
        npartitions = 1
    structure = TableStructure(arrow_schema=encode_schema(schema), npartitions=npartitions, columns=columns)
    return prepared, data_source(structure)


def upload_table(client, prepared) -> None:
    """Send the data of a (new) table node: one PUT, or one per dask partition (bounded, in parallel).

    Each dask partition is computed on its own, so at most ``concurrency``
    partitions are in memory at once, never the whole frame.
    """
    session = client.context.session
    if not _is_dask(prepared):
        _table_io.put(session, client.path_parts, prepared)
        return
    parts = prepared.to_delayed()

    def send(index: int) -> None:
        frame = parts[index].compute(scheduler="sync")
        _table_io.put(session, client.path_parts, to_arrow(frame, preserve_index=None), partition=index)

    session.run_concurrently(send, range(len(parts)))


def appendable_data_source(schema, npartitions: int, table_name: str | None) -> dict:
    """A data source for a table stored in the server's SQL storage, which accepts appended rows."""
    import pyarrow as pa

    if not isinstance(schema, pa.Schema):
        raise TypeError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
    structure = TableStructure(
        arrow_schema=encode_schema(schema), npartitions=int(npartitions), columns=_column_names(schema.names)
    )
    parameters = {"table_name": table_name} if table_name is not None else {}
    return data_source(structure, mimetype=APPENDABLE_MIMETYPE, parameters=parameters)
