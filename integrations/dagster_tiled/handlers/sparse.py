"""sparse arrays <-> sparse (COO) nodes."""

from __future__ import annotations

from ._base import Handler

__all__ = ["SparseHandler"]


class SparseHandler(Handler):
    """``sparse.SparseArray`` (COO, GCXS, ...) <-> a sparse COO node; reads give ``sparse.COO``."""

    type_paths = ("sparse:SparseArray",)
    family = "sparse"

    def write(self, parent, key, obj, metadata):
        import sparse

        coo = obj if isinstance(obj, sparse.COO) else sparse.COO(obj)
        return parent.write_sparse(
            coords=coo.coords, data=coo.data, shape=coo.shape, key=key, metadata=metadata, on_conflict="replace"
        )

    def describe(self, obj, node):
        import sparse

        coo = obj if isinstance(obj, sparse.COO) else sparse.COO(obj)
        return {
            "shape": list(coo.shape),
            "dtype": str(coo.dtype),
            "nnz": int(coo.nnz),
            "bytes written": int(coo.coords.nbytes + coo.data.nbytes),
        }

    def concat(self, values, keys):
        import sparse

        return sparse.concatenate(values)
