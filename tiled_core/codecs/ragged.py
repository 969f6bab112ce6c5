"""Ragged arrays: canonical packing, row partitions, and the zip the server exchanges.

A ragged array is stored in one canonical awkward layout: every variable
dimension a ``ListOffsetArray`` with 64-bit offsets starting at 0, fixed
dimensions followed by variable ones a ``RegularArray``, trailing fixed
dimensions the ``inner_shape`` of the ``NumpyArray`` leaf, no unreferenced
data. :func:`pack_ragged` brings any input to that layout (the server
compares forms exactly and stores whatever buffers it is given).

On the wire (``application/zip``) the array is one stored zip entry per
buffer (named as ``awkward.to_buffers`` names them), plus ``length`` (8
bytes, unsigned big-endian) and ``form`` (the form's JSON text, itself
JSON-encoded). Scalars travel as JSON. Decoders refuse anything malformed
with :class:`~tiled_core.transport.MalformedResponse`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from ..structures import BuiltinDtype, RaggedStructure
from ..structures._ragged import RAGGED_PRIMITIVES, row_chunks
from ..transport import MalformedResponse
from .awkward import ZIP, array_from_buffers, decode_buffers_zip, encode_buffers_zip

__all__ = [
    "ZIP", "JSON", "PackedRagged", "pack_ragged", "encode_ragged_zip", "decode_ragged_zip", "decode_ragged_json",
    "partition_rows", "MAX_DEPTH",
]

JSON = "application/json"
OFFSET_BYTES = 8
MAX_DEPTH = 32  # dimensions a decoded form may have (real ragged arrays have a handful)
MAX_LENGTH = 2**48  # rows a decoded array may claim
_OFFSET_TYPES = {"i32", "u32", "i64"}


@dataclasses.dataclass(frozen=True)
class PackedRagged:
    """A ragged array in canonical form: its awkward layout, form, buffers, shape, size and dtype."""

    layout: Any  # awkward.contents.Content
    form: dict
    length: int
    buffers: dict[str, np.ndarray]
    shape: tuple[int | None, ...]
    size: int
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buffers.values())

    def structure(self, rows: Sequence[int] | None = None, dims=None) -> RaggedStructure:
        """The RaggedStructure of this array stored in partitions of ``rows`` rows (default: one)."""
        rows = (self.length,) if rows is None else tuple(rows)
        return RaggedStructure(
            data_type=BuiltinDtype.from_numpy_dtype(self.dtype), shape=self.shape, size=self.size,
            chunks=row_chunks(self.shape, rows), dims=None if dims is None else tuple(dims),
        )

    def rows(self, start: int, stop: int) -> "PackedRagged":
        """Rows ``start:stop``, packed again (only their data)."""
        import awkward as ak

        return _packed(ak.to_layout(ak.Array(self.layout)[start:stop]))

    def to_ragged(self):
        import ragged

        return ragged.array(self.layout)


# -- packing -------------------------------------------------------------------------------------
def _as_awkward(array):
    """Any ragged-compatible input -> a high-level awkward array (via ``ragged.array``, as users make them)."""
    import awkward as ak
    import ragged

    if isinstance(array, ragged.array):
        return array._impl if isinstance(array._impl, ak.Array) else None
    given = type(array).__name__
    if not (isinstance(array, (np.ndarray, ak.Array)) or hasattr(array, "__dlpack__") or hasattr(array, "tolist")
            or (isinstance(array, Iterable) and not isinstance(array, (str, bytes, dict)))):
        raise TypeError(f"a ragged array is made from nested sequences of numbers, not {given}")
    try:
        if isinstance(array, np.ndarray) and array.dtype == object:
            array = ragged.array([np.asarray(row).tolist() for row in array])
        elif isinstance(array, (np.ndarray, ak.Array)) or hasattr(array, "__dlpack__"):
            array = ragged.array(array)
        elif hasattr(array, "tolist"):
            array = ragged.array(array.tolist())
        else:
            array = ragged.array(list(array))
    except (TypeError, ValueError) as exc:  # records, missing values, mixed types
        raise ValueError(f"cannot make a ragged array from this {given}: {exc}") from None
    return array._impl if isinstance(array._impl, ak.Array) else None


def _canonical(layout):
    """``layout`` rebuilt from ListOffsetArray(i64) / RegularArray / NumpyArray only (ValueError otherwise)."""
    import awkward as ak

    contents = ak.contents
    if layout.parameter("__array__") is not None:
        raise ValueError(f"a ragged array holds numbers, not {layout.parameter('__array__')} data")
    if isinstance(layout, contents.EmptyArray):
        return contents.NumpyArray(np.empty(0, dtype=np.float64))  # the untyped empty array: float64, as numpy
    if isinstance(layout, contents.NumpyArray):
        data = np.asarray(layout.data)
        if data.dtype.newbyteorder("=").name not in RAGGED_PRIMITIVES:
            raise ValueError(f"a ragged array holds booleans or numbers, not {data.dtype}")
        return contents.NumpyArray(np.ascontiguousarray(data.astype(data.dtype.newbyteorder("="), copy=False)))
    if isinstance(layout, (contents.ListArray, contents.ListOffsetArray)):
        lists = layout.to_ListOffsetArray64(True)
        offsets = np.asarray(lists.offsets.data)
        inner = _canonical(lists.content[: int(offsets[-1])] if len(offsets) else lists.content[:0])
        return contents.ListOffsetArray(ak.index.Index64(offsets.astype(np.int64, copy=False)), inner)
    if isinstance(layout, contents.RegularArray):
        inner = _canonical(layout.content[: layout.length * layout.size])
        if isinstance(inner, contents.NumpyArray):  # fixed all the way down: one n-d leaf
            data = np.asarray(inner.data)
            return contents.NumpyArray(data.reshape((layout.length, layout.size) + data.shape[1:]))
        return contents.RegularArray(inner, layout.size, zeros_length=layout.length)
    kind = type(layout).__name__
    hint = " (missing values)" if "Option" in kind or "Masked" in kind else ""
    raise ValueError(f"a ragged array is nested lists of numbers; {kind}{hint} cannot be stored as one")


def _shape(layout) -> tuple[tuple[int | None, ...], int, np.dtype]:
    """Shape, element count and dtype of a canonical layout."""
    import awkward as ak

    shape: list[int | None] = [layout.length]
    node = layout
    while not isinstance(node, ak.contents.NumpyArray):
        shape.append(node.size if isinstance(node, ak.contents.RegularArray) else None)
        node = node.content
    data = np.asarray(node.data)
    shape.extend(data.shape[1:])
    return tuple(shape), int(data.size), data.dtype


def _packed(layout) -> PackedRagged:
    import awkward as ak

    return _from_canonical(_canonical(ak.to_layout(ak.to_packed(layout))))


def _from_canonical(layout) -> PackedRagged:
    import awkward as ak

    form, length, buffers = ak.to_buffers(layout)
    shape, size, dtype = _shape(layout)
    buffers = {key: np.ascontiguousarray(value).reshape(-1) for key, value in buffers.items()}
    return PackedRagged(layout, form.to_dict(), int(length), buffers, shape, size, dtype)


def _conform(layout, shape: tuple[int | None, ...]):
    """``layout`` with each dimension fixed or variable as in ``shape`` (ValueError when it cannot be)."""
    import awkward as ak

    have = _shape(layout)[0]
    if len(have) != len(shape):
        raise ValueError(f"the data has {len(have)} dimensions {have}; the node has {len(shape)} {shape}")
    if have[1:] == tuple(shape)[1:]:
        return layout
    array = ak.Array(layout)
    for axis in range(len(shape) - 1, 0, -1):
        if shape[axis] is None and have[axis] is not None:
            array = ak.from_regular(array, axis=axis)
        elif shape[axis] is not None and have[axis] is None:
            try:
                array = ak.to_regular(array, axis=axis)
            except ValueError:
                raise ValueError(f"dimension {axis} of the data varies in length; the node's is fixed at "
                                 f"{shape[axis]}") from None
    result = _canonical(ak.to_layout(ak.to_packed(array)))
    got = _shape(result)[0]
    if any(s is not None and g != s for s, g in zip(shape[1:], got[1:])):
        raise ValueError(f"the data has shape {got}; the node's fixed dimensions are {shape}")
    return result


def pack_ragged(array, *, shape: tuple[int | None, ...] | None = None, dtype=None) -> PackedRagged:
    """Any ragged-compatible input -> :class:`PackedRagged` (canonical layout, its form and buffers).

    Accepted: ``ragged.array``, ``awkward.Array``, numpy arrays (object
    arrays of rows too), and nested sequences of numbers. ``shape`` (with
    None for variable dimensions) and ``dtype`` make the data fit a
    node: a regular dimension becomes variable where the node's is, a
    variable one of constant length becomes fixed; plain sequences take
    ``dtype``, typed data must already have it.

    Raises TypeError for inputs that are not nested numbers and ValueError
    for data that cannot be a ragged array (records, missing values,
    strings, 0-d scalars) or cannot fit ``shape``/``dtype``.
    """
    import awkward as ak
    import ragged

    if isinstance(array, PackedRagged):
        if (shape is None or tuple(shape)[1:] == array.shape[1:]) and (dtype is None or np.dtype(dtype) == array.dtype):
            return array
        array = ak.Array(array.layout)
    typed = isinstance(array, (ragged.array, ak.Array, np.ndarray)) or hasattr(array, "__dlpack__")
    high = _as_awkward(array)
    if high is None:
        raise ValueError("a ragged array needs at least one dimension; this is a scalar")
    canonical = _canonical(ak.to_layout(ak.to_packed(ak.to_layout(high))))
    have = _shape(canonical)[2]
    if have.kind == "c" and (dtype is None or np.dtype(dtype).kind == "c"):
        # tiled 0.2.20 stores ragged arrays in SQL tables, which have no complex type (the server answers 500)
        raise ValueError("complex ragged arrays cannot be stored by the server (its SQL storage has no complex type)")
    if dtype is not None and have != np.dtype(dtype):
        dtype = np.dtype(dtype)
        if typed and len(high):
            raise ValueError(f"the data has dtype {have}; the node's dtype is {dtype}")
        if not np.can_cast(have, dtype, casting="same_kind"):
            raise ValueError(f"values of dtype {have} cannot be stored as {dtype}")
        converted = ak.values_astype(ak.Array(canonical), dtype)
        if not np.can_cast(have, dtype, casting="safe") and not ak.all(converted == ak.Array(canonical)):
            raise ValueError(f"some values do not fit the node's dtype {dtype}")
        canonical = _canonical(ak.to_layout(converted))
    if shape is not None:
        canonical = _conform(canonical, tuple(shape))
    return _from_canonical(canonical)


# -- partitions ----------------------------------------------------------------------------------
def partition_rows(packed: PackedRagged, limit_bytes: int) -> tuple[int, ...]:
    """Row counts of consecutive partitions whose packed bytes stay within ``limit_bytes`` each.

    A partition's bytes are its leaf data plus ``(n + 1) * 8`` per level of
    offsets, as the server stores them; partitions are filled greedily
    (at most one below the limit per boundary). ValueError when a single
    row is larger than the limit.
    """
    import awkward as ak

    if not isinstance(limit_bytes, (int, np.integer)) or isinstance(limit_bytes, bool) or limit_bytes <= 0:
        raise ValueError(f"max_partition_bytes must be a positive integer, not {limit_bytes!r}")
    length = packed.length
    if length == 0 or packed.nbytes <= limit_bytes:
        return (length,)
    # cost(start, stop) = F[stop] - F[start] + fixed, with F cumulative over row boundaries.
    position = np.arange(length + 1, dtype=np.int64)
    cumulative = np.zeros(length + 1, dtype=np.int64)
    fixed = 0
    node = packed.layout
    while not isinstance(node, ak.contents.NumpyArray):
        if isinstance(node, ak.contents.RegularArray):
            position = position * node.size
        else:
            cumulative += OFFSET_BYTES * position
            fixed += OFFSET_BYTES
            position = np.asarray(node.offsets.data)[position]
        node = node.content
    data = np.asarray(node.data)
    cumulative += position * (data.dtype.itemsize * math.prod(data.shape[1:]))
    rows: list[int] = []
    start = 0
    while start < length:
        stop = int(np.searchsorted(cumulative, cumulative[start] + limit_bytes - fixed, side="right")) - 1
        stop = min(stop, length)
        if stop <= start:
            cost = int(cumulative[start + 1] - cumulative[start]) + fixed
            raise ValueError(f"row {start} alone takes {cost} bytes: cannot partition individual rows to fit "
                             f"within {limit_bytes} bytes")
        rows.append(stop - start)
        start = stop
    return tuple(rows)


# -- wire format ---------------------------------------------------------------------------------
def encode_ragged_zip(packed: PackedRagged) -> bytes:
    """:class:`PackedRagged` -> the zip the server's ragged routes accept."""
    import awkward as ak

    entries: dict[str, Any] = dict(packed.buffers)
    entries["length"] = int(packed.length).to_bytes(8, "big")
    entries["form"] = orjson.dumps(ak.forms.from_dict(packed.form).to_json())
    return encode_buffers_zip(entries)


def _check_form(form: Any, depth: int = 0) -> None:
    """Refuse forms that are not canonical ragged ones before awkward sees them."""
    if depth > MAX_DEPTH:
        raise MalformedResponse(f"ragged form is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(form, dict) or not isinstance(form.get("form_key", ""), (str, type(None))):
        raise MalformedResponse(f"ragged form node is not a form ({str(form)[:60]})")
    kind = form.get("class")
    if kind == "NumpyArray":
        inner = form.get("inner_shape", [])
        if form.get("primitive") not in RAGGED_PRIMITIVES:
            raise MalformedResponse(f"ragged form has element type {str(form.get('primitive'))[:40]!r}")
        if not (isinstance(inner, list) and len(inner) <= MAX_DEPTH
                and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 for n in inner)):
            raise MalformedResponse(f"ragged form has an invalid inner_shape {str(inner)[:60]}")
        return
    if kind == "ListOffsetArray":
        if form.get("offsets") not in _OFFSET_TYPES:
            raise MalformedResponse(f"ragged form has offsets of type {str(form.get('offsets'))[:20]!r}")
    elif kind == "RegularArray":
        size = form.get("size")
        if not (isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**31):
            raise MalformedResponse(f"ragged form has a RegularArray of size {str(size)[:20]}")
    else:
        raise MalformedResponse(f"ragged form has a {str(kind)[:40]!r} node")
    _check_form(form.get("content"), depth + 1)


def _read_form(raw: np.ndarray) -> dict:
    try:
        form = orjson.loads(raw.tobytes())
        if isinstance(form, str):  # the server JSON-encodes the form's JSON text
            form = orjson.loads(form)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"ragged payload's form is not JSON ({exc})") from None
    _check_form(form)
    return form


def decode_ragged_zip(body: bytes | memoryview, *, dtype=None, ndim: int | None = None):
    """Zip bytes from ``/ragged/full`` -> ``ragged.array`` (its form and length travel in the zip).

    ``dtype``/``ndim``, when given, are what the request asked for: a body
    that decodes to something else is MalformedResponse, as is every
    malformed, truncated or inconsistent body.
    """
    import awkward as ak
    import ragged

    header = decode_buffers_zip(body, {"form": np.uint8, "length": np.uint8})
    form = _read_form(header["form"])
    if header["length"].size != 8:
        raise MalformedResponse(f"ragged payload's length entry has {header['length'].size} bytes, not 8")
    length = int.from_bytes(header["length"].tobytes(), "big")
    if length > MAX_LENGTH:
        raise MalformedResponse(f"ragged payload claims {length} rows")
    try:
        expected = ak.forms.from_dict(form).expected_from_buffers()
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedResponse(f"ragged payload's form is invalid ({exc})") from None
    if set(expected) & {"form", "length"}:
        raise MalformedResponse("ragged payload's form names a buffer 'form' or 'length'")
    array = array_from_buffers(form, length, decode_buffers_zip(body, expected))
    result = ragged.array(array)
    if dtype is not None and result.dtype != np.dtype(dtype):
        raise MalformedResponse(f"ragged payload holds {result.dtype}, not the {np.dtype(dtype)} asked for")
    if ndim is not None and result.ndim != ndim:
        raise MalformedResponse(f"ragged payload has {result.ndim} dimensions, not the {ndim} asked for")
    return result


def decode_ragged_json(body: bytes | memoryview, dtype):
    """A JSON scalar (one element of a ragged array) -> 0-d ``ragged.array`` of ``dtype``."""
    import ragged

    try:
        value = orjson.loads(bytes(body))
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"ragged element is not JSON ({exc})") from None
    dtype = np.dtype(dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if not (isinstance(value, bool) and dtype.kind == "b"):
            raise MalformedResponse(f"ragged element is not a number: {str(value)[:60]}")
    try:
        with np.errstate(all="ignore"):
            scalar = np.asarray(value).astype(dtype) if dtype.kind != "c" else np.asarray(value, dtype=dtype)
    except (OverflowError, ValueError, TypeError) as exc:
        raise MalformedResponse(f"ragged element {str(value)[:40]} does not fit {dtype} ({exc})") from None
    if dtype.kind in "iub" and scalar != value:
        raise MalformedResponse(f"ragged element {str(value)[:40]} does not fit {dtype}")
    return ragged.array(scalar)
