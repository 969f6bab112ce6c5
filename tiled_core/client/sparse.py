"""SparseClient: COO sparse arrays, read as ``sparse.COO``."""

from __future__ import annotations

import numpy as np

from ..codecs.sparse import check_coo_parts
from ..structures import SparseStructure
from .reading import _sparse_io
from .reading._slicing import block_selection, normalize
from .array import ArrayClient
from .base import BaseClient

__all__ = ["SparseClient"]


class SparseClient(BaseClient):
    """A sparse (COO) array node; ``read()`` and ``c[...]`` return ``sparse.COO`` objects.

    Slices follow numpy (integers, ranges with any step, Ellipsis) and are
    applied by the server, so only the selected entries cross the network.
    """

    def structure(self) -> SparseStructure:
        if self._structure is None or isinstance(self._structure, dict):
            self._structure = SparseStructure.from_json(self._structure or self.item["attributes"]["structure"])
        return self._structure

    # The same as for dense arrays: read from the structure, no request.
    shape = ArrayClient.shape
    chunks = ArrayClient.chunks
    dims = ArrayClient.dims
    ndim = ArrayClient.ndim

    @property
    def dtype(self) -> np.dtype | None:
        return self.structure().dtype

    def __repr__(self) -> str:
        if self._structure is None and not self._item["attributes"].get("structure"):
            return super().__repr__()  # not known yet, and a repr sends no request
        structure = self.structure()
        dims = f" dims={structure.dims}" if structure.dims else ""
        return f"<{type(self).__name__} {self.path or '/'} shape={structure.shape}{dims}>"

    # -- reads ---------------------------------------------------------------
    def read(self, slice=None):
        """The whole array, or a numpy-style selection of it, as a ``sparse.COO``.

        One request (the server joins the blocks); a response over the server's
        size limit is split into concurrent halves. An all-integer selection
        gives the element as a numpy scalar, as sparse does. Raises
        IndexError/TypeError/ValueError for a bad selection before any request.
        """
        structure = self.structure()
        selection = normalize(slice, structure.shape)
        session = self._context.session
        if not selection.shape and structure.shape:
            return _sparse_io.element(_sparse_io.read_selection(session, self._path, _sparse_io.as_box(selection)))
        coo = _sparse_io.read_selection(session, self._path, selection, whole=slice is None)
        return _sparse_io.flip(coo, selection.flip)

    def read_block(self, block, slice=None):
        """One block (chunk), with coordinates local to it, optionally sliced within it."""
        structure = self.structure()
        block = block_selection(block, structure.chunks)
        block_shape = tuple(sizes[i] for i, sizes in zip(block, structure.chunks))
        selection = normalize(slice, block_shape)
        session = self._context.session
        if not selection.shape and block_shape:
            box = _sparse_io.as_box(selection)
            return _sparse_io.element(_sparse_io.read_block(session, self._path, block, box.shape, box.to_param()))
        param = selection.to_param() if slice is not None else None
        coo = _sparse_io.read_block(session, self._path, block, selection.shape, param)
        return _sparse_io.flip(coo, selection.flip)

    def __getitem__(self, slice):
        return self.read(slice)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        dense = self.read().todense()
        return dense.astype(dtype, copy=False) if dtype is not None else dense

    def todense(self) -> np.ndarray:
        """A dense numpy array (may be large)."""
        return self.read().todense()

    # -- writes --------------------------------------------------------------
    def write(self, coords, data) -> None:
        """Replace the data of a single-block sparse array with COO ``coords`` (ndim x nnz) and ``data``."""
        structure = self.structure()
        if any(len(sizes) > 1 for sizes in structure.chunks):
            raise ValueError(f"{self.path} has {structure.chunks} chunks: write each block with write_block")
        coords, data = check_coo_parts(coords, data, structure.shape)
        _sparse_io.put(self._context.session, self._path, coords, data)

    def write_block(self, coords, data, block) -> None:
        """Replace one block's data; ``coords`` are local to the block."""
        structure = self.structure()
        block = block_selection(block, structure.chunks)
        coords, data = check_coo_parts(coords, data, tuple(sizes[i] for i, sizes in zip(block, structure.chunks)))
        _sparse_io.put(self._context.session, self._path, coords, data, block=block)

    # -- export ------------------------------------------------------------
    def export(self, filepath, *, format=None, slice=None) -> None:
        """Download the array (or a selection) in a format the server offers, streamed to a file or buffer.

        ``format`` is a media type or an extension (``"csv"``, ``"parquet"``,
        ``"h5"``, ...); by default it comes from ``filepath``'s extension.
        Rows are ``dim0, ..., dimN-1, data`` as the server writes them.
        """
        params = []
        if slice is not None:
            selection = normalize(slice, self.shape)
            if selection.flip:
                raise ValueError("export does not support negative steps")
            if not selection.shape:
                raise ValueError("export needs a selection with at least one dimension left")
            params.append(("slice", selection.to_param()))
        self._export(filepath, format=format, route="array/full", params=params)
