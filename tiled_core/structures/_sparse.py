from __future__ import annotations

import dataclasses

import numpy as np

from ._array import BuiltinDtype, Dims, StructDtype, _dtype_from_json, _dtype_from_numpy, as_dims, check_layout

_DEFAULT_COORD_TYPE = {"endianness": "little", "kind": "u", "itemsize": 8}  # the server's default


@dataclasses.dataclass(frozen=True)
class SparseStructure:
    """A COO sparse array: shape, chunking (block sizes per dimension), dtypes and dimension names."""

    chunks: tuple[tuple[int, ...], ...]
    shape: tuple[int, ...]
    data_type: BuiltinDtype | StructDtype | None = None
    coord_data_type: BuiltinDtype | None = None
    dims: tuple[str, ...] | None = None
    resizable: bool | tuple[bool, ...] = False
    layout: str = "COO"

    def __post_init__(self) -> None:
        check_layout(self.chunks, self.shape, self.dims)
        if self.layout != "COO":
            raise ValueError(f"only the COO sparse layout exists, not {self.layout!r}")

    @classmethod
    def from_json(cls, data: dict) -> "SparseStructure":
        resizable = data.get("resizable", False)
        data_type = data.get("data_type")
        return cls(
            chunks=tuple(tuple(int(c) for c in dim) for dim in data["chunks"]),
            shape=tuple(int(s) for s in data["shape"]),
            data_type=_dtype_from_json(data_type) if data_type is not None else None,
            coord_data_type=BuiltinDtype.from_json(data.get("coord_data_type") or _DEFAULT_COORD_TYPE),
            dims=as_dims(data.get("dims")),
            resizable=tuple(resizable) if isinstance(resizable, list) else bool(resizable),
            layout=getattr(data.get("layout", "COO"), "value", data.get("layout", "COO")),
        )

    @classmethod
    def from_coo(cls, coords, data, shape, *, chunks=None, dims=None) -> "SparseStructure":
        """Describe COO ``coords`` (ndim x nnz) and ``data`` (nnz) of ``shape`` (one chunk by default)."""
        shape = tuple(int(s) for s in shape)
        return cls(
            chunks=tuple(tuple(c) for c in chunks) if chunks is not None else tuple((s,) for s in shape),
            shape=shape,
            data_type=_dtype_from_numpy(np.asarray(data).dtype),
            coord_data_type=BuiltinDtype.from_numpy_dtype(np.asarray(coords).dtype),
            dims=Dims(dims) if dims is not None else None,
        )

    def to_json(self) -> dict:
        if self.data_type is None:  # tiled 0.2.20 answers 500 to a sparse structure without one
            raise ValueError("a sparse structure needs a data_type to be sent to the server")
        return {
            "chunks": [list(c) for c in self.chunks],
            "shape": list(self.shape),
            "data_type": self.data_type.to_json(),
            "coord_data_type": (self.coord_data_type or BuiltinDtype.from_json(_DEFAULT_COORD_TYPE)).to_json(),
            "dims": list(self.dims) if self.dims is not None else None,
            "resizable": list(self.resizable) if isinstance(self.resizable, tuple) else self.resizable,
            "layout": self.layout,
        }

    @property
    def dtype(self) -> np.dtype | None:
        return self.data_type.to_numpy_dtype() if self.data_type is not None else None

    @property
    def ndim(self) -> int:
        return len(self.shape)
