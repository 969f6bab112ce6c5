"""The structure of a ragged array: leading dimensions of known length, trailing ones of variable length."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ._array import BuiltinDtype, Dims, StructDtype, _dtype_from_json

__all__ = ["RaggedStructure", "RAGGED_PRIMITIVES"]

#: Element types a ragged array may hold (those awkward and the server's SQL storage both carry).
RAGGED_PRIMITIVES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
})


def _dims(value) -> tuple[str, ...] | None:
    return None if value is None else Dims(str(d) for d in value)


@dataclasses.dataclass(frozen=True)
class RaggedStructure:
    """A ragged array's structure, as the server describes it.

    ``shape``: the first entry is the number of rows (an int); each later one
    is an int (a fixed length) or None (a length that varies from row to
    row). ``size``: the number of elements. ``chunks``: the row counts of
    the stored partitions first, then ``(n,)`` for each further fixed
    dimension before the first variable one, and None for every dimension
    from there on. ``dims``: optional names of the dimensions.

    A shape or chunking the server would not accept raises ValueError here.
    """

    data_type: BuiltinDtype | StructDtype
    shape: tuple[int | None, ...]
    size: int
    chunks: tuple[tuple[int, ...] | None, ...]
    dims: tuple[str, ...] | None = None
    resizable: bool | tuple[bool, ...] = False

    def __post_init__(self) -> None:
        shape, chunks = tuple(self.shape), tuple(self.chunks)
        if not shape:
            raise ValueError("A ragged array must have at least one dimension (shape is empty)")
        if not chunks:
            raise ValueError("A ragged array must have at least one chunk dimension (chunks is empty)")
        if shape[0] is None:
            raise ValueError("The first dimension of a ragged array must be a known integer, not None")
        if chunks[0] is None:
            raise ValueError("The first chunks dimension must be a known integer partitioning, not None")
        if len(shape) != len(chunks):
            raise ValueError(f"Shape and chunks must have the same number of dimensions ({shape}, {chunks})")
        for entry in chunks[1:]:
            if entry is not None and len(entry) != 1:
                raise ValueError(f"Only the first dimension can be partitioned into chunks, not {chunks}")
        if any(s is not None and int(s) < 0 for s in shape) or int(self.size) < 0:
            raise ValueError(f"shape and size must not be negative ({shape}, {self.size})")
        if sum(chunks[0]) != shape[0]:
            raise ValueError(f"the row chunks {chunks[0]} do not add up to the {shape[0]} rows")
        if self.dims is not None and len(self.dims) != len(shape):
            raise ValueError(f"dims {self.dims} name {len(self.dims)} dimensions; the shape has {len(shape)}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "chunks", chunks)

    # -- JSON ----------------------------------------------------------------
    @classmethod
    def from_json(cls, data: dict) -> "RaggedStructure":
        """The dataclass for the server's structure JSON; a document that is not one raises ValueError."""
        try:
            return cls(
                data_type=_dtype_from_json(data["data_type"]),
                shape=tuple(None if s is None else int(s) for s in data["shape"]),
                size=int(data["size"]),
                chunks=tuple(None if c is None else tuple(int(n) for n in c) for c in data["chunks"]),
                dims=_dims(data.get("dims")),
                resizable=data.get("resizable", False),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a ragged structure ({type(exc).__name__}: {exc})") from None

    def to_json(self) -> dict:
        resizable = list(self.resizable) if isinstance(self.resizable, tuple) else self.resizable
        return {
            "data_type": self.data_type.to_json(),
            "shape": list(self.shape),
            "size": self.size,
            "chunks": [None if c is None else list(c) for c in self.chunks],
            "dims": None if self.dims is None else list(self.dims),
            "resizable": resizable,
        }

    # -- derived -------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        return self.data_type.to_numpy_dtype()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def ndim_fixed(self) -> int:
        """How many leading dimensions have a fixed length."""
        return self.shape.index(None) if None in self.shape else len(self.shape)

    @property
    def npartitions(self) -> int:
        return len(self.chunks[0])

    def form(self) -> dict:
        """The awkward form (as a JSON dict) of this structure's data, as the server stores it.

        Variable dimensions are ``ListOffsetArray`` (64-bit offsets), fixed ones
        ``RegularArray`` where variable ones follow them; the trailing fixed
        dimensions are the ``inner_shape`` of the ``NumpyArray`` at the bottom.
        Form keys are ``node{axis}``, which is how ``awkward.to_buffers`` names them.
        """
        primitive = _primitive(self.dtype)
        ndim = len(self.shape)
        variable = [axis for axis in range(1, ndim) if self.shape[axis] is None]
        last = variable[-1] if variable else 0  # axes after it fold into the leaf's inner shape
        form: dict[str, Any] = {
            "class": "NumpyArray", "primitive": primitive,
            "inner_shape": [int(s) for s in self.shape[last + 1:]] if variable else [int(s) for s in self.shape[1:]],
            "parameters": {}, "form_key": f"node{last}",
        }
        for axis in range(last, 0, -1):
            if self.shape[axis] is None:
                form = {"class": "ListOffsetArray", "offsets": "i64", "content": form, "parameters": {},
                        "form_key": f"node{axis - 1}"}
            else:
                form = {"class": "RegularArray", "size": int(self.shape[axis]), "content": form, "parameters": {},
                        "form_key": f"node{axis - 1}"}
        return form

    def __repr__(self) -> str:
        dims = f", dims={self.dims}" if self.dims else ""
        return f"RaggedStructure(shape={self.shape}, size={self.size}, chunks={self.chunks}, dtype={self.dtype}{dims})"


def _primitive(dtype: np.dtype) -> str:
    name = np.dtype(dtype).newbyteorder("=").name
    if name not in RAGGED_PRIMITIVES:
        raise ValueError(f"a ragged array holds booleans or numbers, not {dtype}")
    return name


def row_chunks(shape: tuple[int | None, ...], rows: tuple[int, ...]) -> tuple[tuple[int, ...] | None, ...]:
    """The ``chunks`` of a ragged array of ``shape`` stored in partitions of ``rows`` rows."""
    fixed = shape.index(None) if None in shape else len(shape)
    return (tuple(rows),) + tuple((int(s),) for s in shape[1:fixed]) + (None,) * (len(shape) - fixed)


def size_of(shape: tuple[int | None, ...]) -> int | None:
    """Element count of a shape without variable dimensions (None when it has some)."""
    return None if None in shape else math.prod(shape)
