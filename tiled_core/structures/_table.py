from __future__ import annotations

import dataclasses

ARROW_SCHEMA_PREFIX = "data:application/vnd.apache.arrow.file;base64,"


@dataclasses.dataclass(frozen=True)
class TableStructure:
    """A table: its Arrow schema, how many partitions (row blocks) it has, and its column names.

    ``arrow_schema`` is kept as the server sends it: a ``data:`` URI holding a
    base64 Arrow IPC schema message (``tiled_core.codecs.table.decode_schema``
    turns it into a ``pyarrow.Schema``). ``resizable`` is true for tables
    whose rows can be appended (SQL-backed).
    """

    arrow_schema: str
    npartitions: int
    columns: tuple[str, ...]
    resizable: bool | tuple[bool, ...] = False

    def __post_init__(self) -> None:
        if not isinstance(self.arrow_schema, str) or not self.arrow_schema.startswith(ARROW_SCHEMA_PREFIX):
            raise ValueError(f"arrow_schema must be a string starting with {ARROW_SCHEMA_PREFIX!r}")
        if isinstance(self.npartitions, bool) or not isinstance(self.npartitions, int) or self.npartitions < 0:
            raise ValueError(f"npartitions must be a non-negative integer, not {self.npartitions!r}")
        for column in self.columns:
            if not isinstance(column, str):
                raise TypeError(f"column names are strings, not {type(column).__name__} ({column!r})")
            if column.startswith("_"):
                raise ValueError(f"column name {column!r} starts with '_', which Tiled reserves")

    @classmethod
    def from_json(cls, data: dict) -> "TableStructure":
        resizable = data.get("resizable", False)
        return cls(
            arrow_schema=data["arrow_schema"],
            npartitions=int(data["npartitions"]),
            columns=tuple(data["columns"]),
            resizable=tuple(resizable) if isinstance(resizable, list) else bool(resizable),
        )

    @property
    def arrow_schema_decoded(self):
        """The ``pyarrow.Schema`` that ``arrow_schema`` carries (needs pyarrow)."""
        import base64

        import pyarrow

        return pyarrow.ipc.read_schema(pyarrow.py_buffer(base64.b64decode(self.arrow_schema[len(ARROW_SCHEMA_PREFIX):])))

    def to_json(self) -> dict:
        return {
            "arrow_schema": self.arrow_schema,
            "npartitions": self.npartitions,
            "columns": list(self.columns),
            "resizable": list(self.resizable) if isinstance(self.resizable, tuple) else self.resizable,
        }
