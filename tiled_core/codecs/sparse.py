"""Sparse (COO) arrays as an Arrow IPC file with columns ``dim0 .. dimN-1, data``.

The server sends and accepts this table for the ``sparse`` family; coordinates
are global for ``/array/full`` and local to the block for ``/array/block``.
"""

from __future__ import annotations

import numpy as np

from ..transport import MalformedResponse
from .table import ARROW_FILE, decode_arrow, encode_arrow

__all__ = ["ARROW_FILE", "decode_coo_arrow", "encode_coo_arrow", "coo_from_parts", "check_coo_parts"]


def _columns(body) -> dict[str, np.ndarray]:
    table = decode_arrow(body)
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        # Nulls stand for nothing here, except in time columns: that is how Arrow sends NaT.
        if column.null_count and not _is_time(column.type):
            raise MalformedResponse(f"sparse payload column {name!r} has nulls")
        columns[name] = column.to_numpy()
    return columns


def _is_time(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_timestamp(arrow_type) or pa.types.is_duration(arrow_type) or pa.types.is_date32(arrow_type)


def decode_coo_arrow(body: bytes | memoryview, shape: tuple[int, ...]):
    """Arrow IPC bytes -> ``sparse.COO`` of ``shape`` (the shape after any slice).

    A body that is not an Arrow file, lacks a ``dimI``/``data`` column, or has
    coordinates outside ``shape`` raises MalformedResponse.
    """
    columns = _columns(body)
    ndim = len(shape)
    names = [f"dim{i}" for i in range(ndim)] + ["data"]
    missing = [n for n in names if n not in columns]
    if missing:
        raise MalformedResponse(f"sparse payload lacks columns {missing}; it has {list(columns)}")
    coords = np.stack([columns[f"dim{i}"] for i in range(ndim)]) if ndim else np.zeros((0, len(columns["data"])), np.intp)
    return coo_from_parts(coords, columns["data"], shape)


def coo_from_parts(coords: np.ndarray, data: np.ndarray, shape: tuple[int, ...]):
    """Build a COO, skipping sparse's sort when the coordinates are already in canonical order."""
    import sparse

    shape = tuple(int(s) for s in shape)
    if coords.ndim != 2 or coords.shape != (len(shape), len(data)):
        raise MalformedResponse(f"sparse payload: coordinates {coords.shape} do not fit {len(data)} values of shape {shape}")
    canonical = False
    if shape and len(data):
        if coords.dtype.kind not in "iu":
            raise MalformedResponse(f"sparse payload: coordinates have dtype {coords.dtype}, not an integer type")
        if (coords.min(axis=1) < 0).any() or (coords.max(axis=1) >= np.asarray(shape)).any():
            raise MalformedResponse(f"sparse payload has coordinates outside shape {shape}")
        try:
            linear = np.ravel_multi_index(coords, shape)
        except ValueError:  # more elements than an intp can count: let sparse sort it out
            linear = None
        # The server already returns sorted, duplicate-free coordinates: checking is
        # O(n), sorting again (what COO does by default) is O(n log n).
        canonical = linear is not None and bool(np.all(linear[1:] > linear[:-1]))
    elif not len(data):
        canonical = True
    return sparse.COO(coords, data, shape=shape, has_duplicates=not canonical, sorted=canonical)


def check_coo_parts(coords, data, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate COO ``coords`` (ndim x nnz integers) and ``data`` (nnz values) for upload.

    With ``shape``, the coordinates must have one row per dimension and lie inside it.
    Returns them in native byte order. Raises ValueError or TypeError.
    """
    coords = np.asarray(coords)
    data = np.asarray(data)
    if coords.ndim == 1 and shape is not None and len(shape) == 1:
        coords = coords[np.newaxis, :]
    if coords.ndim != 2:
        raise ValueError(f"coords must be a 2-D array (ndim x nnz), not {coords.ndim}-D")
    if coords.size and coords.dtype.kind not in "iu":
        raise TypeError(f"coords must be integers, not {coords.dtype}")
    if data.ndim != 1 or len(data) != coords.shape[1]:
        raise ValueError(f"data must be 1-D with one value per coordinate ({coords.shape[1]}), not shape {data.shape}")
    if not _arrow_can_hold(data.dtype):
        raise TypeError(f"sparse data of dtype {data.dtype} cannot be sent to a Tiled server (Arrow has no such type)")
    if shape is not None:
        if coords.shape[0] != len(shape):
            raise ValueError(f"coords has {coords.shape[0]} rows; the array has {len(shape)} dimensions")
        if coords.size and ((coords.min(axis=1) < 0).any() or (coords.max(axis=1) >= np.asarray(shape)).any()):
            raise ValueError(f"coords fall outside shape {tuple(shape)}")
    # Arrow takes native byte order only: swap here rather than fail once the node exists.
    coords, data = _native(coords), _native(data)
    if data.dtype == np.dtype("M8[D]") and data.size:  # Arrow's date32 would wrap these silently
        days = data.view("i8")[~np.isnat(data)]
        if days.size and (days.min() < -(2**31) or days.max() >= 2**31):
            raise ValueError("dates more than 5.8 million years from 1970 cannot be sent (Arrow's date32)")
    return coords, data


#: Time units Arrow has for numpy's datetime64 ("M") and timedelta64 ("m"); no multiples like [2s].
_ARROW_TIME_UNITS = {"M": ("D", "s", "ms", "us", "ns"), "m": ("s", "ms", "us", "ns")}


def _arrow_can_hold(dtype: np.dtype) -> bool:
    """Whether Arrow, the sparse wire format, keeps values of ``dtype`` as they are."""
    if dtype.kind in "OVc":
        return False
    if dtype.kind in _ARROW_TIME_UNITS:
        unit, count = np.datetime_data(dtype)
        return count == 1 and unit in _ARROW_TIME_UNITS[dtype.kind]
    return True


def _native(array: np.ndarray) -> np.ndarray:
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def encode_coo_arrow(coords, data) -> memoryview:
    """COO ``coords`` (ndim x nnz) and ``data`` (nnz) -> Arrow IPC file bytes (``data`` last)."""
    coords, data = check_coo_parts(coords, data)
    return encode_arrow({**{f"dim{i}": coords[i] for i in range(coords.shape[0])}, "data": data})
