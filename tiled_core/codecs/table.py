"""Tables as Arrow IPC: bytes <-> ``pyarrow.Table`` / ``pandas.DataFrame``, and the schema's data URI.

The server sends (and accepts) the Arrow IPC *file* format; the stream format
is read too. Decoding wraps the received bytes in a pyarrow buffer, so the
Arrow columns point into them without a copy; ``to_pandas`` then makes the one
conversion pandas needs. A truncated or garbled body raises
``MalformedResponse``, never a half-read table.
"""

from __future__ import annotations

import base64
from typing import Any

from ..structures._table import ARROW_SCHEMA_PREFIX
from ..transport import MalformedResponse

__all__ = [
    "ARROW_FILE", "ARROW_STREAM", "decode_arrow", "decode_dataframe", "decode_schema",
    "empty_frame", "encode_arrow", "encode_schema", "pyarrow_strings", "to_arrow", "to_pandas",
]

ARROW_FILE = "application/vnd.apache.arrow.file"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_FILE_MAGIC = b"ARROW1"


def decode_arrow(body: bytes | bytearray | memoryview) -> "pyarrow.Table":
    """Arrow IPC file or stream bytes -> ``pyarrow.Table`` (zero-copy over ``body``).

    Raises ``MalformedResponse`` for an empty, truncated or garbled body.
    """
    import pyarrow as pa

    buffer = pa.py_buffer(body)
    if buffer.size == 0:
        raise MalformedResponse("empty Arrow body")
    is_file = buffer.size >= 6 and buffer[:6].to_pybytes() == _FILE_MAGIC
    try:
        if is_file:
            # The file format ends with a footer and the magic again: a cut body fails here.
            table = pa.ipc.open_file(buffer).read_all()
        else:
            table = pa.ipc.open_stream(buffer).read_all()
        # Full validation (offsets, UTF-8, dictionary indices) costs ~1% of a loopback read
        # and keeps a garbled body from crashing the conversion to pandas.
        table.validate(full=True)
        table.schema.names  # decoded lazily by older pyarrow (16): a garbled name would fail later, anywhere
    # pyarrow raises OSError for a broken footer, UnicodeDecodeError for a garbled field name.
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        kind = "file" if is_file else "stream"
        raise MalformedResponse(f"undecodable Arrow IPC {kind} body of {buffer.size} bytes: {exc}") from None
    return table


def to_pandas(table: "pyarrow.Table") -> "pandas.DataFrame":
    """``pyarrow.Table`` -> DataFrame, restoring the index and dtypes from the pandas metadata.

    Columns are copied into pandas' own (writable) blocks, as the reference
    client does; zero-copy views into the body would be read-only, and pandas
    then refuses in-place assignment.
    """
    import pyarrow as pa

    try:
        return table.to_pandas()
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        # Garbled pandas metadata (bad JSON, unknown dtype names, missing keys) fails in here.
        raise MalformedResponse(f"the Arrow table cannot be converted to pandas: {exc}") from None


def pyarrow_strings(frame: "pandas.DataFrame") -> "pandas.DataFrame":
    """Text columns (and index) as ``string[pyarrow]``, as dask's from_map makes them.

    The reference client's ``read()`` goes through dask, which converts text
    columns that way; applied to a whole-table read, this gives the same
    dtypes. Only columns that hold text are touched (dask also stringifies
    other object columns, e.g. dates; those are left as they are).
    """
    import pandas as pd

    target = pd.StringDtype("pyarrow")

    def is_text(values) -> bool:
        dtype = values.dtype
        if isinstance(dtype, pd.StringDtype):
            return dtype != target
        return dtype == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")

    changes = {name: target for name, column in frame.items() if is_text(column)}
    if changes:
        frame = frame.astype(changes)
    if not isinstance(frame.index, pd.MultiIndex) and is_text(frame.index):
        frame.index = frame.index.astype(target)
    return frame


def decode_dataframe(body: bytes | bytearray | memoryview) -> "pandas.DataFrame":
    """Arrow IPC bytes -> ``pandas.DataFrame`` (index and dtypes as written)."""
    return to_pandas(decode_arrow(body))


def to_arrow(data: Any, *, preserve_index: bool | None = True) -> "pyarrow.Table":
    """A pandas DataFrame, a ``pyarrow.Table`` or a dict of columns -> ``pyarrow.Table``.

    ``preserve_index=True`` stores the index as a column (what the server
    expects in uploads), ``None`` keeps a RangeIndex as metadata only.
    """
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, dict):
        return pa.Table.from_pydict(data)
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        try:
            return pa.Table.from_pandas(data, preserve_index=preserve_index)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise TypeError(f"this DataFrame cannot be converted to Arrow: {exc}") from None
    raise TypeError(f"expected a pandas DataFrame, a pyarrow Table or a dict of columns, not {type(data).__name__}")


def encode_arrow(data: Any, *, preserve_index: bool | None = True) -> memoryview:
    """A DataFrame (index kept unless ``preserve_index=False``), ``pyarrow.Table`` or dict -> Arrow IPC file bytes."""
    import pyarrow as pa

    table = to_arrow(data, preserve_index=preserve_index)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return memoryview(sink.getvalue())


def encode_schema(schema: "pyarrow.Schema") -> str:
    """``pyarrow.Schema`` -> the ``data:`` URI a TableStructure carries."""
    return ARROW_SCHEMA_PREFIX + base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(uri: str) -> "pyarrow.Schema":
    """The ``data:`` URI of a TableStructure -> ``pyarrow.Schema``."""
    import pyarrow as pa

    if not isinstance(uri, str) or not uri.startswith(ARROW_SCHEMA_PREFIX):
        raise MalformedResponse(f"arrow_schema does not start with {ARROW_SCHEMA_PREFIX!r}")
    try:
        raw = base64.b64decode(uri[len(ARROW_SCHEMA_PREFIX):], validate=True)
        schema = pa.ipc.read_schema(pa.py_buffer(raw))
        schema.names  # decoded lazily: a garbled name would raise UnicodeDecodeError later, anywhere
        return schema
    except (ValueError, pa.ArrowInvalid, pa.ArrowIOError) as exc:  # ValueError includes UnicodeDecodeError
        raise MalformedResponse(f"undecodable arrow_schema: {exc}") from None


def empty_frame(schema: "pyarrow.Schema") -> "pandas.DataFrame":
    """A zero-row DataFrame with the schema's columns and dtypes (dask's ``meta``)."""
    return schema.empty_table().to_pandas()
