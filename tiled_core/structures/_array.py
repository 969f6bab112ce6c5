from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

_ENDIAN_TO_CHAR = {"little": "<", "big": ">", "not_applicable": "|"}
_CHAR_TO_ENDIAN = {"<": "little", ">": "big", "|": "not_applicable", "=": "little"}


@dataclasses.dataclass(frozen=True)
class BuiltinDtype:
    """A numpy scalar type: byte order, kind character, item size, datetime units."""

    endianness: str
    kind: str
    itemsize: int
    dt_units: str | None = None

    @classmethod
    def from_numpy_dtype(cls, dtype: np.dtype) -> "BuiltinDtype":
        dtype = np.dtype(dtype)
        if dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"{dtype} is a structured dtype; use StructDtype")
        if dtype.kind == "O":
            raise ValueError("object arrays cannot be sent to a Tiled server")
        order = dtype.byteorder
        if order == "=":
            order = "<" if np.little_endian else ">"
        units = None
        if dtype.kind in "mM":
            unit, count = np.datetime_data(dtype)
            units = f"[{count if count != 1 else ''}{unit}]"
        return cls(_CHAR_TO_ENDIAN[order], dtype.kind, dtype.itemsize, units)

    @classmethod
    def from_json(cls, data: dict) -> "BuiltinDtype":
        return cls(data["endianness"], data["kind"], int(data["itemsize"]), data.get("dt_units"))

    def to_numpy_dtype(self) -> np.dtype:
        size = self.itemsize // 4 if self.kind == "U" else self.itemsize
        return np.dtype(f"{_ENDIAN_TO_CHAR[self.endianness]}{self.kind}{size}{self.dt_units or ''}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    dtype: "BuiltinDtype | StructDtype"
    shape: tuple[int, ...] | None = None

    @classmethod
    def from_json(cls, data: dict) -> "Field":
        return cls(data["name"], _dtype_from_json(data["dtype"]), tuple(data["shape"]) if data.get("shape") else None)

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.to_json(), "shape": list(self.shape) if self.shape else None}


@dataclasses.dataclass(frozen=True)
class StructDtype:
    """A numpy structured (record) dtype."""

    itemsize: int
    fields: tuple[Field, ...]

    @classmethod
    def from_numpy_dtype(cls, dtype: np.dtype) -> "StructDtype":
        dtype = np.dtype(dtype)
        fields = []
        for name in dtype.names:
            field_dtype, _offset = dtype.fields[name][:2]
            shape = None
            if field_dtype.subdtype is not None:
                field_dtype, shape = field_dtype.subdtype
            fields.append(Field(name, _dtype_from_numpy(field_dtype), tuple(shape) if shape else None))
        return cls(dtype.itemsize, tuple(fields))

    @classmethod
    def from_json(cls, data: dict) -> "StructDtype":
        return cls(int(data["itemsize"]), tuple(Field.from_json(f) for f in data["fields"]))

    def to_numpy_dtype(self) -> np.dtype:
        return np.dtype(
            [(f.name, f.dtype.to_numpy_dtype(), f.shape) if f.shape else (f.name, f.dtype.to_numpy_dtype()) for f in self.fields]
        )

    def to_json(self) -> dict:
        return {"itemsize": self.itemsize, "fields": [f.to_json() for f in self.fields]}


def _dtype_from_json(data: dict) -> "BuiltinDtype | StructDtype":
    return StructDtype.from_json(data) if "fields" in data else BuiltinDtype.from_json(data)


def _dtype_from_numpy(dtype: np.dtype) -> "BuiltinDtype | StructDtype":
    return StructDtype.from_numpy_dtype(dtype) if np.dtype(dtype).fields is not None else BuiltinDtype.from_numpy_dtype(dtype)


class ListEqualTuple(tuple):
    """A tuple that also equals a list of the same items (the reference client gives these as lists).

    Scripts written for the reference compare them with lists
    (``node.dims == ["x", "y"]``, ``node.path_parts == ["a", "b"]``); a plain
    tuple would make that silently False. Hashed and shown as a tuple.
    """

    __slots__ = ()

    def __eq__(self, other):
        return tuple.__eq__(self, tuple(other) if isinstance(other, list) else other)

    def __ne__(self, other):
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return tuple.__repr__(self)


class Dims(ListEqualTuple):
    """Dimension names (the server sends them as a JSON list); equal to the same names as a list."""

    __slots__ = ()


def as_dims(value) -> "Dims | None":
    """``value`` (None, or a sequence of names) as ``Dims``; an empty sequence is None."""
    return Dims(value) if value else None


def check_layout(chunks, shape, dims) -> None:
    """Chunks must add up to the shape, and dims (if any) name every dimension."""
    if len(chunks) != len(shape):
        raise ValueError(f"chunks {chunks} do not match shape {shape}")
    for size, chunk in zip(shape, chunks):
        if sum(chunk) != size:
            raise ValueError(f"chunks {chunks} do not add up to shape {shape}")
    if dims is not None and len(dims) != len(shape):
        raise ValueError(f"dims {dims} do not match shape {shape}")


@dataclasses.dataclass(frozen=True)
class ArrayStructure:
    """Shape, chunking (dask-style: block sizes per dimension), dtype and dimension names."""

    data_type: BuiltinDtype | StructDtype
    chunks: tuple[tuple[int, ...], ...]
    shape: tuple[int, ...]
    dims: tuple[str, ...] | None = None
    resizable: bool | tuple[bool, ...] = False

    def __post_init__(self) -> None:
        check_layout(self.chunks, self.shape, self.dims)

    @classmethod
    def from_json(cls, data: dict) -> "ArrayStructure":
        resizable = data.get("resizable", False)
        return cls(
            data_type=_dtype_from_json(data["data_type"]),
            chunks=tuple(tuple(int(c) for c in dim) for dim in data["chunks"]),
            shape=tuple(int(s) for s in data["shape"]),
            dims=as_dims(data.get("dims")),
            resizable=tuple(resizable) if isinstance(resizable, list) else bool(resizable),
        )

    @classmethod
    def from_array(cls, array: Any, *, chunks=None, dims=None) -> "ArrayStructure":
        shape = tuple(int(s) for s in array.shape)
        return cls(
            data_type=_dtype_from_numpy(array.dtype),
            chunks=tuple(tuple(c) for c in chunks) if chunks is not None else tuple((s,) for s in shape),
            shape=shape,
            dims=Dims(dims) if dims is not None else None,
        )

    def to_json(self) -> dict:
        return {
            "data_type": self.data_type.to_json(),
            "chunks": [list(c) for c in self.chunks],
            "shape": list(self.shape),
            "dims": list(self.dims) if self.dims is not None else None,
            "resizable": list(self.resizable) if isinstance(self.resizable, tuple) else self.resizable,
        }

    @property
    def dtype(self) -> np.dtype:
        return self.data_type.to_numpy_dtype()

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def block_shape(self, block: tuple[int, ...]) -> tuple[int, ...]:
        if len(block) != len(self.shape):
            raise ValueError(f"block index {block} needs {len(self.shape)} entries")
        shape = []
        for axis, (index, sizes) in enumerate(zip(block, self.chunks)):
            if not 0 <= index < len(sizes):
                raise IndexError(f"block index {index} out of range for axis {axis} with {len(sizes)} blocks")
            shape.append(sizes[index])
        return tuple(shape)
