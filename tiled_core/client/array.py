"""Array clients: in-memory (numpy) and lazy (dask)."""

from __future__ import annotations

import math
import numpy as np

from ..codecs.array import OCTET_STREAM, byte_view
from ..structures import ArrayStructure
from ._array_io import block_slices, put_block, put_full, read_block_into, read_selection_into
from ._slicing import block_selection, normalize
from .base import BaseClient

__all__ = ["ArrayClient", "DaskArrayClient"]


class ArrayClient(BaseClient):
    """Client-side wrapper around an array-like that returns in-memory arrays.

    ``read()`` fetches large selections as several concurrent requests written
    straight into one preallocated numpy array; ``c[...]`` slices like numpy
    (negative steps included), and only the selected bytes cross the network.
    """

    def structure(self) -> ArrayStructure:
        return super().structure()

    # -- shape and type ----------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.structure().shape

    @property
    def dtype(self) -> np.dtype:
        return self.structure().dtype

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        return self.structure().chunks

    @property
    def dims(self) -> tuple[str, ...] | None:
        return self.structure().dims

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.structure().nbytes

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    # -- reads ---------------------------------------------------------------
    def _read_numpy(self, slice=None) -> np.ndarray:
        structure = self.structure()
        selection = normalize(slice, structure.shape)
        out = np.empty(selection.shape, dtype=structure.dtype)
        if out.size:
            read_selection_into(
                self._context.session, self._path, selection, out, structure.chunks, whole=slice is None
            )
        return np.flip(out, selection.flip) if selection.flip else out

    def _read_block_numpy(self, block, slice=None) -> np.ndarray:
        structure = self.structure()
        block = block_selection(block, structure.chunks)
        block_shape = structure.block_shape(block)
        selection = normalize(slice, block_shape)
        out = np.empty(selection.shape, dtype=structure.dtype)
        if structure.dtype.isnative:
            read_block_into(self._context.session, self._path, block, out, selection.to_param() if slice is not None else None)
        elif out.size:
            # /array/block sends the storage's byte order, not the declared one; /array/full casts.
            starts = [sum(chunks[:i]) for chunks, i in zip(structure.chunks, block)]
            self._context.session.read_into(self._route("array/full"), [("slice", selection.offset(starts).to_param())],
                                            accept=OCTET_STREAM, out=byte_view(out))
        return np.flip(out, selection.flip) if selection.flip else out

    def read(self, slice=None) -> np.ndarray:
        """The entire array, or a selection: ``read((slice(0, 10), 3))``."""
        return self._read_numpy(slice)

    def read_block(self, block, slice=None) -> np.ndarray:
        """One block (chunk) of the array, optionally sliced within it."""
        return self._read_block_numpy(block, slice)

    def __getitem__(self, slice) -> np.ndarray:
        return self.read(slice)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self._read_numpy()
        return array.astype(dtype, copy=False) if dtype is not None else array

    # -- writes --------------------------------------------------------------
    def write(self, array, persist: bool = True) -> None:
        """Replace the whole array's data (same shape and dtype).

        ``persist=False`` only streams the data to the server's subscribers.
        """
        array = np.asarray(array)
        structure = self.structure()
        if array.shape != structure.shape:
            raise ValueError(f"array of shape {array.shape} does not fit node of shape {structure.shape}")
        if len(list(block_slices(structure.chunks))) == 1:
            put_full(self._context.session, self._path, array, structure.dtype, persist=persist)
            return
        session = self._context.session
        session.run_concurrently(
            lambda entry: put_block(session, self._path, entry[0], array[entry[1]], structure.dtype, persist=persist),
            list(block_slices(structure.chunks)),
        )

    def write_block(self, array, block, slice=Ellipsis, persist: bool = True) -> None:
        """Replace one block's data (``slice`` is accepted for compatibility; the server ignores it)."""
        structure = self.structure()
        block = block_selection(block, structure.chunks)
        array = np.asarray(array)
        if array.shape != structure.block_shape(block):
            raise ValueError(f"block {block} has shape {structure.block_shape(block)}, not {array.shape}")
        put_block(self._context.session, self._path, block, array, structure.dtype, persist=persist)

    # -- export ------------------------------------------------------------
    def export(self, filepath, *, format: str | None = None, slice=None, link: str | None = None,
               template_vars: dict | None = None) -> None:
        """Download the array (or a selection) in a format the server offers, streamed to a file.

        ``format`` is a media type or an extension (``"csv"``, ``"tiff"``, ...);
        by default it is taken from ``filepath``'s extension.
        """
        if link is not None or template_vars:
            raise ValueError("export(link=, template_vars=) are not supported; export reads this node")
        params = []
        if slice is not None:
            selection = normalize(slice, self.shape)
            if selection.flip:
                raise ValueError("export does not support negative steps")
            params.append(("slice", selection.to_param()))
        self._export(filepath, format=format, route="array/full", params=params)


class DaskArrayClient(ArrayClient):
    """Client-side wrapper around an array-like that returns dask arrays.

    The collection has the server's chunks. Its graph holds small picklable
    request descriptions (see ``tiled_core.distributed._array_tasks``), never
    the client, the data or the API key; on a ``distributed`` cluster each
    worker fetches its own blocks over its own connection pool. Neighbouring
    small chunks are fetched with one request and split on the worker.
    """

    def _dask_array(self):
        import dask.array as da
        from dask.base import tokenize

        from ..distributed._array_tasks import array_graph

        structure = self.structure()
        name = "tiled-core-read-" + tokenize(self.uri, structure.to_json())
        graph = array_graph(name, self._context.session_handle, self._path, structure.chunks, structure.dtype)
        return da.Array(graph, name, chunks=structure.chunks, dtype=structure.dtype)

    def read(self, slice=None):
        """A dask array of the entire array, or of a selection."""
        array = self._dask_array()
        if slice is not None:
            normalize(slice, self.shape)  # same errors as the numpy client, before any graph is built
            array = array[slice]
        return array

    def read_block(self, block, slice=None):
        """A dask array of one block (optionally sliced within it), read by one task."""
        import dask.array as da
        from dask.base import tokenize

        from ..distributed._array_tasks import ArrayRead, run_read

        structure = self.structure()
        block = block_selection(block, structure.chunks)
        selection = normalize(slice, structure.block_shape(block))
        # /array/full with the block's place added: /array/block would send the storage's byte order.
        starts = [sum(chunks[:i]) for chunks, i in zip(structure.chunks, block)]
        params = (("slice", selection.offset(starts).to_param()),)
        request = ArrayRead(self._context.session_handle, self._route("array/full"), params,
                            selection.shape, structure.dtype, tuple(selection.flip))
        name = "tiled-core-block-" + tokenize(self.uri, structure.to_json(), params)
        graph = {(name,) + (0,) * len(selection.shape): (run_read, request)}
        return da.Array(graph, name, chunks=tuple((n,) for n in selection.shape), dtype=structure.dtype)
