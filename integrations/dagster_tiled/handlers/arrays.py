"""numpy and dask arrays <-> array nodes."""

from __future__ import annotations

from typing import Any

from ._base import Handler

__all__ = ["NumpyHandler", "DaskArrayHandler"]


def _describe_array(obj, node) -> dict[str, Any]:
    structure = node.structure()
    return {
        "shape": list(structure.shape),
        "dtype": str(structure.dtype),
        "chunks": [list(c) for c in structure.chunks],
        "bytes written": int(obj.nbytes),
    }


class NumpyHandler(Handler):
    """``numpy.ndarray`` <-> an array node, read whole into memory."""

    type_paths = ("numpy:ndarray",)
    family = "array"

    def validate(self, obj):
        import numpy as np

        if isinstance(obj, np.ma.MaskedArray):
            raise TypeError("a masked array would lose its mask in Tiled: store .filled(...) and the mask separately")

    def write(self, parent, key, obj, metadata):
        return parent.write_array(obj, key=key, metadata=metadata, on_conflict="replace")

    def describe(self, obj, node):
        return _describe_array(obj, node)

    def concat(self, values, keys):
        import numpy as np

        return np.concatenate(values)


class DaskArrayHandler(NumpyHandler):
    """``dask.array.Array`` <-> an array node: written block by block, read lazily (one task per block)."""

    type_paths = ("dask.array:Array",)
    lazy = True

    def concat(self, values, keys):
        import dask.array as da

        return da.concatenate(values)
