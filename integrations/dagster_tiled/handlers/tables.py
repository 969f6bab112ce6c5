"""pandas and dask DataFrames <-> table nodes."""

from __future__ import annotations

from typing import Any

from ._base import Handler

__all__ = ["PandasHandler", "DaskDataFrameHandler"]


def _column_schema(frame):
    """The standard ``dagster/column_schema`` value: column names and dtypes."""
    from dagster import TableColumn, TableSchema

    return TableSchema(columns=[TableColumn(name=str(name), type=str(dtype)) for name, dtype in frame.dtypes.items()])


class PandasHandler(Handler):
    """``pandas.DataFrame`` <-> a table node, read whole into memory."""

    type_paths = ("pandas:DataFrame",)
    family = "table"

    def write(self, parent, key, obj, metadata):
        return parent.write_table(obj, key=key, metadata=metadata, on_conflict="replace")

    def describe(self, obj, node) -> dict[str, Any]:
        return {
            "dagster/row_count": len(obj),
            "dagster/column_schema": _column_schema(obj),
            # In-memory size of what was sent (object columns measured deeply).
            "bytes written": int(obj.memory_usage(deep=True, index=True).sum()),
        }

    def concat(self, values, keys):
        import pandas as pd

        return pd.concat(values)


class DaskDataFrameHandler(PandasHandler):
    """``dask.dataframe.DataFrame`` <-> a table node, one Tiled partition per dask partition; read lazily.

    Its row count and size are not reported: knowing them would compute the
    frame a second time.
    """

    type_paths = ("dask.dataframe:DataFrame",)
    lazy = True

    def describe(self, obj, node) -> dict[str, Any]:
        return {"dagster/column_schema": _column_schema(obj), "partitions": int(obj.npartitions)}

    def concat(self, values, keys):
        import dask.dataframe as dd

        return dd.concat(values)
