"""``application/octet-stream``: C-order raw bytes in the structure's dtype."""

from __future__ import annotations

import math

import numpy as np

from ..transport import MalformedResponse

OCTET_STREAM = "application/octet-stream"


def expected_shape_param(shape: tuple[int, ...]) -> tuple[str, str]:
    """The ``expected_shape=`` query parameter of a read whose answer has ``shape``.

    The server checks the data it is about to send against it and refuses a
    mismatch (an array resized since its structure was fetched, say) instead
    of sending bytes that would be read into the wrong shape.
    """
    return ("expected_shape", ",".join(str(int(n)) for n in shape) or "scalar")


def patch_params(offset: tuple[int, ...], shape: tuple[int, ...], *, extend: bool) -> list[tuple[str, str]]:
    """The query of a ``PATCH /array/full``: data of ``shape`` written at ``offset``."""
    return [("offset", ",".join(map(str, offset))), ("shape", ",".join(map(str, shape))),
            ("extend", "true" if extend else "false")]


def patch_changes_shape(chunks: tuple[tuple[int, ...], ...]) -> bool:
    """Whether any ``PATCH /array/full`` of an array with these chunks would change its shape.

    tiled 0.2.20 sizes an array's zarr storage as first chunk x number of
    chunks on each axis, and every PATCH sets the node's shape to the
    storage's (even a PATCH inside the shape, without ``extend``): an array
    with a partial last chunk would grow to whole chunks.
    """
    return any(axis and axis[0] * len(axis) != sum(axis) for axis in chunks)


def expected_nbytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    return np.dtype(dtype).itemsize * math.prod(shape)


def decode_octet_stream(body: bytes | memoryview, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Bytes -> array; a body of the wrong size is MalformedResponse, never a reshape error."""
    expected = expected_nbytes(dtype, shape)
    if len(body) != expected:
        raise MalformedResponse(
            f"array body has {len(body)} bytes; shape {tuple(shape)} of {np.dtype(dtype)} needs {expected}"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def encode_octet_stream(array, dtype: np.dtype | None = None) -> memoryview:
    """Array -> C-order bytes in ``dtype`` (default: its own), without a copy when already so."""
    array = np.asarray(array)
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return byte_view(np.ascontiguousarray(array))


def byte_view(array: np.ndarray) -> memoryview:
    """A flat, writable-if-the-array-is byte view of a C-contiguous array (any shape, even empty)."""
    return memoryview(array.reshape(-1).view(np.uint8))
