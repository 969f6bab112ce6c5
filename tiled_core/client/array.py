"""Array clients: in-memory (numpy) and lazy (dask)."""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import warnings

import numpy as np

from ..codecs.array import OCTET_STREAM, byte_view, expected_shape_param, patch_changes_shape
from ..structures import ArrayStructure
from .reading._array_io import (MAX_PART_BYTES, patch_full, plan_parts, put_block, read_block_into,
                                read_selection_into)
from .reading._slicing import block_selection, normalize, split_newaxis
from .writing._patch_blocks import patch_by_blocks
from .base import BaseClient

__all__ = ["ArrayClient", "DaskArrayClient"]


def _chunks_repr(chunks: tuple[tuple[int, ...], ...]) -> str:
    """Chunks, short: ``((3, 3, 3), (1, 1, ..., 1), (2, 2, ..., 2, 1), variable)``."""
    shown = []
    for sizes in chunks:
        if len(sizes) <= 5:
            shown.append(str(tuple(sizes)))
        elif len(set(sizes)) == 1:
            shown.append(f"({sizes[0]}, {sizes[0]}, ..., {sizes[0]})")
        elif len(set(sizes[:-1])) == 1:
            shown.append(f"({sizes[0]}, {sizes[0]}, ..., {sizes[0]}, {sizes[-1]})")
        else:
            shown.append("variable")
    return "(" + ", ".join(shown) + ")"


def _covers(selection, shape: tuple[int, ...]) -> bool:
    """Whether a selection is the whole array as it is (``[...]``, ``[:]``, ``[()]``): no slice to send."""
    return len(selection.entries) == len(shape) and all(
        isinstance(entry, range) and entry.step == 1 and entry.start == 0 and len(entry) == n
        for entry, n in zip(selection.entries, shape))


def _byte_limit(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise ValueError(f"RESPONSE_BYTESIZE_LIMIT must be a positive number of bytes, not {value!r}")
    return int(value)


class ArrayClient(BaseClient):
    """Client-side wrapper around an array-like that returns in-memory arrays.

    ``read()`` fetches large selections as several concurrent requests written
    straight into one preallocated numpy array; ``c[...]`` slices like numpy
    (negative steps included), and only the selected bytes cross the network.

    ``RESPONSE_BYTESIZE_LIMIT`` (class attribute, bytes; 100 MiB) bounds each
    response: a read larger than it is made of several requests under it.
    """

    RESPONSE_BYTESIZE_LIMIT = MAX_PART_BYTES

    def structure(self) -> ArrayStructure:
        if self._structure is None:
            from .writing._upload import visible_structure

            raw = self._item["attributes"].get("structure")
            if raw is not None:  # a node still being filled shows the rows it has: none
                self._structure = ArrayStructure.from_json(visible_structure(raw))
        return super().structure()

    def __repr__(self) -> str:
        # As the reference shows it (shape, chunks, dtype, dims), after our path; no request for it.
        if self._structure is None and (self._pending_structure is not None
                                        or not self._item["attributes"].get("structure")):
            return super().__repr__()
        structure = self.structure()
        shown = f" shape={structure.shape} chunks={_chunks_repr(structure.chunks)} dtype={structure.dtype}"
        if structure.dims:
            shown += f" dims={tuple(structure.dims)}"
        return f"<{type(self).__name__} {self.path or '/'}{shown}>"

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
            # A bar (interactive sessions only) when the read takes several requests.
            total = ArrayClient.fetch_count(self, slice) if self._context._bars_possible() else 0
            with self._context.tracking_progress(total):
                read_selection_into(
                    self._context.session, self._path, selection, out, structure.chunks,
                    whole=slice is None or _covers(selection, structure.shape),
                    limit=_byte_limit(self.RESPONSE_BYTESIZE_LIMIT),
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
            params = [("slice", selection.offset(starts).to_param()), expected_shape_param(out.shape)]
            self._context.session.read_into(self._route("array/full"), params, accept=OCTET_STREAM, out=byte_view(out))
        return np.flip(out, selection.flip) if selection.flip else out

    def fetch_count(self, slice=None) -> int:
        """How many requests ``read(slice)`` sends (none are sent to tell): 0 for an empty selection,
        1 up to ``RESPONSE_BYTESIZE_LIMIT`` and 16 MiB, more for larger reads, cut to fit under both."""
        structure = self.structure()
        selection = normalize(split_newaxis(slice)[0], structure.shape)
        if not selection.size:
            return 0
        return len(plan_parts(selection, structure.dtype.itemsize, structure.chunks,
                              self._context.session.limits.concurrency, _byte_limit(self.RESPONSE_BYTESIZE_LIMIT)))

    def read(self, slice=None) -> np.ndarray:
        """The entire array, or a selection: ``read((slice(0, 10), 3))`` (``None`` in it adds an axis, as in numpy)."""
        slice, newaxis = split_newaxis(slice)
        result = self._read_numpy(slice)
        return result if newaxis is None else result[newaxis]

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
        """Replace the whole array's data (same shape; a dtype that converts safely).

        Sent block by block over at most ``Limits.concurrency`` requests at a
        time; a dask array is computed one block at a time, never whole.
        ``persist=False`` only streams the data to the server's subscribers.
        """
        from .writing._upload import upload_blocks

        structure = self.structure()
        array = _conform(array, structure.dtype, lazy=True)
        if tuple(array.shape) != structure.shape:
            raise ValueError(f"array of shape {tuple(array.shape)} does not fit node of shape {structure.shape}")
        upload_blocks(self, array, persist=persist)

    def write_block(self, array, block, slice=Ellipsis, persist: bool = True) -> None:
        """Replace one block's data (``slice`` is accepted for compatibility; the server ignores it)."""
        structure = self.structure()
        block = block_selection(block, structure.chunks)
        array = _conform(array, structure.dtype)
        if array.shape != structure.block_shape(block):
            raise ValueError(f"block {block} has shape {structure.block_shape(block)}, not {array.shape}")
        put_block(self._context.session, self._path, block, array, structure.dtype, persist=persist)

    def patch(self, array, offset, extend: bool = False, persist: bool = True) -> None:
        """Write ``array`` into the node at ``offset``, growing the node if ``extend=True``.

        ``offset`` is an int (first axis) or one int per leading axis. Without
        ``extend`` the data must fit inside the current shape (ValueError
        otherwise, before any request). With it the array grows, along any
        axis, to hold the data; ``.shape`` shows the new size afterwards.

        On an array whose last chunk is partial, a patch that fits is sent as
        block writes (tiled 0.2.20 would otherwise grow the node to whole
        chunks); growing such an array warns if the server rounds it up.
        """
        structure = self.structure()
        array = _conform(array, structure.dtype)
        offset = _offset(offset, structure.shape, array.shape)
        if extend and not persist:
            raise ValueError("extend=True needs persist=True: a grown array must be stored")
        end = tuple(o + n for o, n in zip(offset, array.shape))
        if not extend and any(e > s for e, s in zip(end, structure.shape)):
            raise ValueError(f"data of shape {array.shape} at offset {offset} does not fit in shape "
                             f"{structure.shape}; pass extend=True to grow the array")
        if persist and array.size and all(e <= s for e, s in zip(end, structure.shape)) \
                and patch_changes_shape(structure.chunks):
            patch_by_blocks(self, array, offset)  # a PATCH would set the shape to the padded storage's
            return
        reply = patch_full(self._context.session, self._path, array, structure.dtype, offset,
                           extend=extend, persist=persist)
        if not persist:
            return
        self._item["attributes"]["structure"] = reply
        self._structure = None
        expected = tuple(max(s, e) for s, e in zip(structure.shape, end))
        if self.shape != expected:
            # tiled 0.2.20 sizes its zarr storage to whole chunks; growing into that padding makes
            # the server report the padded shape, whose extra entries hold the fill value (0).
            warnings.warn(f"the server grew {self.path} to {self.shape}, not {expected}: the extra "
                          "entries hold the fill value (a tiled 0.2.20 quirk with partial last chunks)",
                          RuntimeWarning, stacklevel=2)

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


def _blocks_touched(selection, chunks) -> tuple[set[int], ...]:
    """Per axis, the indices of the blocks that ``selection`` reads from."""
    touched = []
    for entry, sizes in zip(selection.entries, chunks):
        bounds = list(itertools.accumulate(sizes))
        positions = [entry] if isinstance(entry, int) else entry
        touched.append({bisect.bisect_right(bounds, p) for p in positions} if len(positions) <= 4096
                       else set(range(bisect.bisect_right(bounds, positions[0]),
                                      bisect.bisect_right(bounds, positions[-1]) + 1)))
    return tuple(touched)


class DaskArrayClient(ArrayClient):
    """Client-side wrapper around an array-like that returns dask arrays.

    The collection has the server's chunks. Its graph holds small picklable
    request descriptions (see ``tiled_core.distributed._array_tasks``), never
    the client, the data or the API key; on a ``distributed`` cluster each
    worker fetches its own blocks over its own connection pool. Neighbouring
    small chunks are fetched with one request and split on the worker.
    """

    def _dask_array(self, wanted=None):
        import dask.array as da
        from dask.base import tokenize

        from ..distributed._array_tasks import array_graph

        structure = self.structure()
        name = "tiled-core-read-" + tokenize(self.uri, structure.to_json(), wanted)
        graph = array_graph(name, self._context.session_handle, self._path, structure.chunks, structure.dtype, wanted)
        return da.Array(graph, name, chunks=structure.chunks, dtype=structure.dtype)

    def fetch_count(self, slice=None) -> int:
        """How many requests computing ``read(slice)`` sends (none are sent to tell): one per group
        of neighbouring small chunks that the selection keeps (see ``tiled_core.distributed``)."""
        from ..distributed._array_tasks import plan_groups

        structure = self.structure()
        wanted = None
        if slice is not None:
            selection = normalize(split_newaxis(slice)[0], structure.shape)
            if not selection.size:
                return 0
            wanted = _blocks_touched(selection, structure.chunks)
        _, groups = plan_groups(structure.chunks, structure.dtype.itemsize, wanted=wanted)

        def needed(index) -> bool:
            return ((wanted is None or all(i in w for i, w in zip(index, wanted)))
                    and all(sizes[i] for sizes, i in zip(structure.chunks, index)))

        return sum(1 for group in groups if any(needed(index) for index in group))

    def compute(self) -> np.ndarray:
        """The entire array, in memory: ``read().compute()`` (``fetch_count()`` requests, on the
        current dask scheduler), with a progress bar in interactive sessions."""
        with self._context.tracking_progress(self.fetch_count() if self._context._bars_possible() else 0):
            return self._dask_array().compute()

    def read(self, slice=None):
        """A dask array of the entire array, or of a selection."""
        if slice is None:
            return self._dask_array()
        # The same errors as the numpy client, before any graph is built (dask itself adds new axes).
        selection = normalize(split_newaxis(slice)[0], self.shape)
        return self._dask_array(_blocks_touched(selection, self.chunks))[slice]

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


def _conform(array, dtype: np.dtype, *, lazy: bool = False):
    """``array`` as data of ``dtype``: plain sequences are converted; arrays must cast safely.

    ``lazy`` keeps a dask array lazy (its blocks are computed as they are sent).
    """
    from .writing._upload import is_dask, refuse_masked

    refuse_masked(array)
    if not hasattr(array, "dtype"):
        return np.asarray(array, dtype=dtype)
    if array.dtype != dtype:
        if not np.can_cast(array.dtype, dtype, casting="safe"):
            raise ValueError(f"data of dtype {array.dtype} cannot be stored as {dtype} without loss; "
                             f"convert it first (e.g. .astype({str(dtype)!r}))")
        array = array.astype(dtype)
    if is_dask(array):
        return array if lazy else np.asarray(array.compute())
    return np.asarray(array)


def _offset(offset, shape: tuple[int, ...], data_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(data_shape) != len(shape):
        raise ValueError(f"data with {len(data_shape)} dimensions cannot patch an array with {len(shape)}")
    if isinstance(offset, (int, np.integer)):
        offset = (offset,)
    offset = tuple(operator.index(o) for o in offset)
    if not offset or len(offset) > len(shape) or any(o < 0 for o in offset):
        raise ValueError(f"offset must be 1 to {len(shape)} non-negative ints, not {offset}")
    return offset + (0,) * (len(shape) - len(offset))
