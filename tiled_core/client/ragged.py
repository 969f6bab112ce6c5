"""RaggedClient: arrays whose trailing dimensions vary in length, read as ``ragged.array``.

Reads go through ``/ragged/full`` with the selection as ``?slice=``, so only
the rows (and the parts of them) asked for travel; the server keeps a ragged
array as rows of an SQL table, one per partition of the first dimension.
``DaskRaggedClient`` (``structure_clients="dask"``) returns the same data as
a ``dask.delayed`` object, read one partition per task.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..codecs.ragged import JSON, ZIP, decode_ragged_json, decode_ragged_zip, encode_ragged_zip, pack_ragged
from ..structures import RaggedStructure
from ..transport import ClientError, Conflict
from .base import BaseClient
from .reading._limits import too_large
from .reading._ragged_select import RaggedSelection, select

__all__ = ["RaggedClient", "DaskRaggedClient"]


def _persist(persist: bool) -> list[tuple[str, str]]:
    if not isinstance(persist, bool):
        raise TypeError(f"persist must be True or False, not {persist!r}")
    return [] if persist else [("persist", "false")]


def _concat(parts: list):
    """Ragged arrays of the same form, end to end along the first dimension."""
    import awkward as ak
    import ragged

    if len(parts) == 1:
        return parts[0]
    return ragged.array(ak.concatenate([p._impl for p in parts], axis=0))


class RaggedClient(BaseClient):
    """A ragged array node: ``read()``, ``c[...]`` and ``export`` by selection; writes by row partition.

    ``shape`` has None for dimensions of variable length; ``chunks[0]`` are
    the row counts of the stored partitions. Selections are integers and
    slices (positive steps are applied locally); indexes outside a dimension
    of known length raise IndexError before any request.
    """

    def structure(self) -> RaggedStructure:
        if not isinstance(self._structure, RaggedStructure):
            self._load_structure()
            self._structure = RaggedStructure.from_json(self._structure or self._item["attributes"]["structure"])
        return self._structure

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The shape; None for a dimension whose length varies from row to row."""
        return self.structure().shape

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.structure().size

    @property
    def dtype(self) -> np.dtype:
        return self.structure().dtype

    @property
    def chunks(self) -> tuple[tuple[int, ...] | None, ...]:
        """Row counts of the stored partitions, then ``(n,)`` per further fixed dimension, None for the rest."""
        return self.structure().chunks

    @property
    def chunked(self) -> bool:
        """Whether the array is stored in more than one partition."""
        return any(c is not None and len(c) > 1 for c in self.chunks)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dims(self) -> tuple[str, ...] | None:
        """Names of the dimensions, if the writer gave them."""
        return self.structure().dims

    def __repr__(self) -> str:
        if self._structure is None and not self._item["attributes"].get("structure"):
            return super().__repr__()  # not known yet (a listing's lazy structure), and a repr sends no request
        structure = self.structure()
        dims = f" dims={structure.dims}" if structure.dims else ""
        return (f"<{type(self).__name__} {self.path or '/'} shape={structure.shape} size={structure.size} "
                f"chunks={structure.chunks} dtype={structure.dtype}{dims}>")

    # -- reads ---------------------------------------------------------------
    def _get(self, selection: RaggedSelection):
        params = [] if selection.param is None else [("slice", selection.param)]
        route = self._route("ragged/full")
        if selection.scalar:
            return decode_ragged_json(self._context.session.get_bytes(route, params, accept=JSON), self.dtype)
        body = self._context.session.get_bytes(route, params, accept=ZIP)
        return decode_ragged_zip(body, dtype=self.dtype, ndim=selection.ndim)

    def _read(self, selection: RaggedSelection):
        """One GET; a selection of many rows the server refuses as too large is read partition by partition."""
        try:
            return self._get(selection)
        except ClientError as error:
            pieces = self._pieces(selection.rows) if too_large(error) and selection.rows else []
            if len(pieces) < 2:
                raise
        return _concat([self._read(selection.with_rows(start, stop)) for start, stop in pieces])

    def _pieces(self, rows: tuple[int, int]) -> list[tuple[int, int]]:
        """``rows`` cut at partition boundaries (halved when within one partition)."""
        start, stop = rows
        bounds, edge = [], 0
        for count in self.chunks[0]:
            edge += count
            if start < edge < stop:
                bounds.append(edge)
        if not bounds and stop - start > 1:
            bounds = [(start + stop) // 2]
        edges = [start, *bounds, stop]
        return list(zip(edges[:-1], edges[1:]))

    def read(self, slice: Any = None):
        """The whole array, or ``array[slice]``, as a ``ragged.array`` (0-d for a single element).

        ``slice``: integers and slices per dimension, as numpy takes them.
        Raises TypeError/IndexError/ValueError for selections that cannot
        apply (before any request); a selection the data cannot satisfy
        (an index past the end of some row) is refused by the server
        (ClientError, "Cannot apply the requested slice").
        """
        selection = select(slice, self.shape)
        result = self._read(selection)
        if selection.local is not None:
            import ragged

            result = ragged.array(result._impl[selection.local])
        return result

    def __getitem__(self, slice):
        return self.read(slice=slice)

    # -- export --------------------------------------------------------------
    def export(self, filepath, *, slice: Any = None, format: str | None = None) -> None:
        """Write the array (or ``array[slice]``) to ``filepath`` in a format the server offers, streamed.

        ``format``: a media type or an extension ("json", "arrow", "parquet",
        "zip"); by default from ``filepath``'s extension. ``filepath`` may also
        be a writable binary file object. Steps are not supported here
        (ValueError): the server writes the file.
        """
        selection = select(slice, self.shape)
        if selection.local is not None:
            raise ValueError("export takes slices without steps; read() applies steps locally")
        params = [] if selection.param is None else [("slice", selection.param)]
        self._export(filepath, format=format, route="ragged/full", params=params)

    # -- writes --------------------------------------------------------------
    def _pack(self, array, rows: int | None):
        structure = self.structure()
        packed = pack_ragged(array, shape=structure.shape, dtype=structure.dtype)
        if rows is not None and packed.length != rows:
            raise ValueError(f"the data has {packed.length} rows; {self.path or '/'} takes {rows} here")
        return packed

    def _put(self, route: str, packed, params: list) -> None:
        # The server appends a partition row per request: resending could store it twice.
        self._context.session.send("PUT", self._route(route), params=params, content=encode_ragged_zip(packed),
                                   content_type=ZIP, idempotent=False)

    def write(self, array, persist: bool = True) -> None:
        """Store ``array`` as the node's data (its one partition): same fixed dimensions and row count.

        ``array``: a ``ragged.array``, an ``awkward.Array``, a numpy array or
        nested lists; lists take the node's dtype, typed data must have it.
        ``persist=False`` only streams the data to subscribers. Data that does
        not fit the node raises ValueError before any request.
        """
        chunks = self.chunks[0]
        if len(chunks) != 1:
            raise ValueError(f"{self.path or '/'} is stored in {len(chunks)} partitions; use write_block for each")
        self._put("ragged/full", self._pack(array, self.shape[0]), _persist(persist))

    def write_block(self, array, block, persist: bool = True) -> None:
        """Store ``array`` as partition ``block`` (an int, or a 1-tuple) of rows ``chunks[0][block]``.

        Each partition is written once (the server appends it): writing one
        again raises ``Conflict`` or stores it twice, depending on the storage.
        """
        index = block[0] if isinstance(block, tuple) and len(block) == 1 else block
        if isinstance(index, bool):
            raise TypeError("block must be an integer or a 1-tuple of one")
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"block must be an integer or a 1-tuple of one, not {block!r}") from None
        chunks = self.chunks[0]
        if not 0 <= index < len(chunks):
            raise IndexError(f"block {index} is out of range: {self.path or '/'} has {len(chunks)} partitions")
        self._put("ragged/block", self._pack(array, chunks[index]), [("block", str(index)), *_persist(persist)])

    def patch(self, array, offset, extend: bool = False, persist: bool = True) -> None:
        """Append ``array``'s rows at the end (``offset == shape[0]``, ``extend=True``) as a new partition.

        The server only appends: ``extend=False`` or ``persist=False`` raise
        NotImplementedError, an ``offset`` other than the current length too;
        a dtype or fixed dimensions other than the node's raise ValueError.
        Afterwards ``shape`` and ``chunks`` show the new length.
        """
        if not extend or not persist:
            raise NotImplementedError("Only extend=True and persist=True are currently supported "
                                      "(the server appends rows; it cannot overwrite them)")
        offset = (offset,) if not isinstance(offset, tuple) else offset
        try:
            offset = tuple(operator.index(o) for o in offset)
        except TypeError:
            raise TypeError(f"offset must be an integer or a tuple of integers, not {offset!r}") from None
        if not offset or offset[0] != self.shape[0] or any(offset[1:]):
            raise NotImplementedError(f"Only appending to the end of the leftmost dimension is currently supported: "
                                      f"offset must be {self.shape[0]}, not {offset}")
        packed = self._pack(array, None)
        params = [("shape", str(packed.length)), ("offset", ",".join(map(str, offset))), ("extend", "true")]
        try:
            reply = self._context.session.send("PATCH", self._route("ragged/full"), params=params,
                                               content=encode_ragged_zip(packed), content_type=ZIP, idempotent=False)
        except Conflict:
            raise
        except ClientError as error:
            if error.status == 400:
                raise ValueError(str(error.detail).replace("Use ?", "Pass keyword argument ")) from None
            raise
        if isinstance(reply, dict) and "shape" in reply:
            self._structure = RaggedStructure.from_json(reply)
        else:
            self.refresh()
        self._item["attributes"]["structure"] = self._structure.to_json()


class DaskRaggedClient(RaggedClient):
    """A ragged array node whose ``read()`` is lazy: a ``dask.delayed`` object of the ``ragged.array``.

    The graph reads the rows of each partition the selection touches, one
    task each, and joins them; it holds request descriptions (a session
    handle, a route, a slice), never the client or a secret. ``read().compute()``
    gives what ``RaggedClient.read()`` gives.
    """

    def to_delayed(self, slice: Any = None) -> list:
        """One ``dask.delayed`` per stored partition the selection touches (the rows of that partition)."""
        from ..distributed._ragged_tasks import partition_reads, run_ragged_read

        import dask

        selection = select(slice, self.shape)
        reads = partition_reads(self._context.session_handle, self._route("ragged/full"), selection,
                                self.chunks[0], self.dtype)
        return [dask.delayed(run_ragged_read, pure=True)(read) for read in reads]

    def read(self, slice: Any = None):
        """A ``dask.delayed`` object that computes to ``RaggedClient.read(slice)``; errors in the
        selection are raised now, before any graph is built."""
        import dask

        from ..distributed._ragged_tasks import finish_ragged

        selection = select(slice, self.shape)
        parts = self.to_delayed(slice)
        return dask.delayed(finish_ragged, pure=True)(parts, selection.local, selection.rows is None)
