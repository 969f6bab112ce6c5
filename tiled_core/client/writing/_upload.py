"""Array uploads: chunking, the data source document, and how the bytes are sent.

Two ways to fill a new node, both leaving an interrupted write recognisable
(see :mod:`tiled_core.client.writing._conflict`):

- **one request** (numpy arrays of one block, i.e. up to ~100 MB, and dask
  arrays up to ``SINGLE_UPLOAD_BYTES``, whose chunks tile the shape exactly): the node is created *reserved*, with zero rows but the
  chunking of the full array, and filled by a single ``PATCH ...?extend=true``
  that writes every byte and sets the real shape at once. Two requests in
  all, like the reference client, and no mark to clear afterwards.
- **blocks** (everything else): the node is created with its full shape and
  the incomplete mark; blocks are sent concurrently (at most
  ``Limits.concurrency`` at a time, each computed just before it is sent, so
  a dask array is never whole in memory); the mark is cleared last.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from ...structures import ArrayStructure
from ...transport import ConnectionFailed, RequestTimeout, ServerError, TruncatedResponse
from ..reading._array_io import (
    SINGLE_REQUEST_BYTES,
    UPLOAD_CHUNK_BYTES,
    block_slices,
    patch_full,
    put_block,
    put_full,
    regular_chunks,
)

SINGLE_UPLOAD_BYTES = SINGLE_REQUEST_BYTES  # above this, blocks go concurrently


def is_dask(array) -> bool:
    return type(array).__module__.startswith("dask.")


def _regular(chunks: tuple[tuple[int, ...], ...]) -> bool:
    return all(len(set(c[:-1])) <= 1 and (len(c) < 2 or c[-1] <= c[0]) for c in chunks)


def _dask_chunks(array, limit: int = UPLOAD_CHUNK_BYTES) -> tuple[tuple[int, ...], ...]:
    """Regular chunks for a dask array (zarr needs them), none above the upload limit."""
    chunks = array.chunks
    if not _regular(chunks):
        chunks = tuple(tuple(_even(len_, c[0])) for len_, c in zip(array.shape, chunks))
    block = math.prod(c[0] if c else 0 for c in chunks) * array.dtype.itemsize
    if block > limit:  # one block must fit comfortably in memory and in one request
        chunks = regular_chunks(array.shape, array.dtype.itemsize, limit)
    return chunks


def upload_limit(value) -> int:
    """A container's ``_SUGGESTED_MAX_UPLOAD_SIZE``, checked: a positive number of bytes."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise ValueError(f"_SUGGESTED_MAX_UPLOAD_SIZE must be a positive number of bytes, not {value!r}")
    return int(value)


def _even(length: int, size: int):
    full, rest = divmod(length, max(size, 1))
    return [size] * full + ([rest] if rest else []) or [0]


def refuse_masked(array) -> None:
    """A masked array would be stored without its mask: refuse it, saying what to send instead."""
    if np.ma.isMaskedArray(array) or np.ma.isMaskedArray(getattr(array, "_meta", None)):
        raise TypeError("masked arrays cannot be written: Tiled stores no mask, so it would be dropped silently. "
                        "Write array.filled(fill_value) (and the mask, np.ma.getmaskarray(array), as a boolean "
                        "array of its own if it matters)")


def array_data_source(array, *, dims=None, limit: int = UPLOAD_CHUNK_BYTES):
    """Normalise ``array`` and describe it as a writable data source (zarr needs regular chunks).

    ``limit``: the largest chunk, in bytes (each chunk is uploaded by one request).
    """
    refuse_masked(array)
    if is_dask(array):
        chunks = _dask_chunks(array, limit)
        if chunks != array.chunks:
            array = array.rechunk(chunks)
    else:
        array = np.asarray(array)
        chunks = regular_chunks(array.shape, array.dtype.itemsize, limit)
    if array.dtype.kind == "O":
        raise TypeError("object arrays cannot be written to Tiled; convert to a numeric or string dtype")
    problem = _unstorable(array.dtype)
    if problem:
        raise TypeError(f"arrays of dtype {array.dtype} cannot be written to Tiled: {problem}")
    if dims is not None and len(dims) != array.ndim:
        raise ValueError(f"dims {list(dims)} do not match the array's {array.ndim} dimensions")
    structure = ArrayStructure.from_array(array, chunks=chunks, dims=dims)
    source = {
        "structure_family": "array",
        "structure": structure.to_json(),
        "mimetype": None,
        "parameters": {},
        "properties": {},
        "assets": [],
        "management": "writable",
        "id": None,
    }
    return array, source


# What the server's zarr storage (zarr 3) has data types for, by kind: item sizes (None: any >= 1).
_STORABLE_SIZES = {"b": {1}, "i": {1, 2, 4, 8}, "u": {1, 2, 4, 8}, "f": {2, 4, 8}, "c": {8, 16},
                   "S": None, "U": None, "V": None, "M": {8}, "m": {8}}


def _unstorable(dtype: np.dtype, *, in_struct: bool = False) -> str | None:
    """Why the server cannot store ``dtype`` (checked against tiled 0.2.20, which fails with a 500), or None."""
    if dtype.fields is not None:
        for name, (field, *_) in dtype.fields.items():
            if field.shape:
                return f"field {name!r} is a sub-array of shape {field.shape}, which the server cannot store"
            problem = _unstorable(field, in_struct=True)
            if problem:
                return f"field {name!r}: {problem}"
        return None
    sizes = _STORABLE_SIZES.get(dtype.kind)
    if dtype.kind not in _STORABLE_SIZES or (sizes is not None and dtype.itemsize not in sizes):
        return (f"the server's storage has no {dtype.name} type "
                "(floats go up to float64, complex numbers up to complex128)")
    if sizes is None and dtype.itemsize == 0:
        return "zero-length strings and bytes are not stored; use at least one character"
    if in_struct and dtype.kind == "V":
        return "raw bytes (void) inside a structured dtype are not stored"
    if dtype.kind in "mM" and np.datetime_data(dtype)[0] == "generic":
        return f"{dtype} has no time unit; give one, e.g. {dtype.str[1:]}[ns]"
    return None


def plan_array_write(array, source: dict, limit: int = UPLOAD_CHUNK_BYTES) -> tuple[dict, bool]:
    """``(data source to create the node with, whether it needs the incomplete mark)``.

    Data over ``limit`` bytes is never sent in one request.
    """
    structure = source["structure"]
    shape, chunks = structure["shape"], structure["chunks"]
    nbytes = math.prod(shape) * array.dtype.itemsize
    if nbytes == 0:
        return source, False  # nothing to send: the node is complete once created
    # The server sizes its zarr storage from the chunks; with a partial last chunk the
    # extending PATCH would round the shape up to the chunk grid, so only exact tilings qualify.
    exact = all(len(set(c)) == 1 for c in chunks)
    # A numpy array of one block (<= UPLOAD_CHUNK_BYTES) is sent from its own memory, so it can
    # go in one request at any such size; a dask array must be computed whole for that.
    one_request = nbytes <= limit and (
        nbytes <= SINGLE_UPLOAD_BYTES or (not is_dask(array) and all(len(c) == 1 for c in chunks)))
    if shape and exact and one_request:
        reserved = copy.deepcopy(source)
        reserved["structure"]["shape"] = [0, *shape[1:]]
        return reserved, False
    return source, True


def reserved_rows(structure: dict | None) -> int | None:
    """For a node created reserved and not yet filled: the rows it is waiting for; else None."""
    if not structure or not structure.get("shape") or "chunks" not in structure:
        return None
    rows = sum(structure["chunks"][0])
    return rows if structure["shape"][0] == 0 and rows > 0 else None


def visible_structure(structure: dict) -> dict:
    """What a reserved node holds so far: zero rows (its chunks say how many are coming)."""
    if reserved_rows(structure) is None:
        return structure
    return {**structure, "chunks": [[0], *structure["chunks"][1:]]}


def intended_shape(structure: dict) -> tuple[int, ...]:
    """The shape a node's writer asked for (the chunks add up to it, even while reserved)."""
    return tuple(sum(c) for c in structure["chunks"])


def upload_array(client, array, *, persist: bool = True) -> None:
    """Send all of ``array`` to the node behind ``client`` (reserved: one PATCH; else blocks)."""
    raw = client.item["attributes"]["structure"]
    session = client.context.session
    rows = reserved_rows(raw)
    if rows is not None:
        data = np.asarray(array.compute() if is_dask(array) else array)
        dtype = ArrayStructure.from_json(visible_structure(raw)).dtype
        try:
            structure = patch_full(session, client.path_parts, data, dtype, (0,), extend=True)
        except (ConnectionFailed, RequestTimeout, TruncatedResponse, ServerError) as error:
            from ._create import answer_lost  # _create imports this module

            if not answer_lost(error):
                raise
            # The PATCH (not idempotent: it appends) may have been applied before its answer was lost.
            # Look: still reserved, it was not (the server applies it whole or not at all); send it again.
            if reserved_rows(client.refresh().item["attributes"]["structure"]) is None:
                return
            structure = patch_full(session, client.path_parts, data, dtype, (0,), extend=True)
        client.item["attributes"]["structure"] = structure
        client._structure = None
        return
    upload_blocks(client, array, persist=persist)


def upload_blocks(client, array, *, persist: bool = True) -> None:
    """Write every block of the node from ``array`` (numpy or dask), a bounded number at a time."""
    structure: ArrayStructure = client.structure()
    session = client.context.session
    dtype = structure.dtype
    if 0 in structure.shape:
        return  # nothing to send; the server made the (empty) storage on create
    blocks = list(block_slices(structure.chunks))
    if len(blocks) == 1 and not is_dask(array):
        put_full(session, client.path_parts, array, dtype, persist=persist)
        return
    block_of = _dask_blocks(array, structure.chunks) if is_dask(array) else (lambda index, region: array[region])

    def send(entry):
        index, region = entry
        put_block(session, client.path_parts, index, np.asarray(block_of(index, region)), dtype, persist=persist)

    session.run_concurrently(send, blocks)


def _dask_blocks(array, chunks):
    """``(index, region) -> numpy block``, computing just that block of a dask array.

    Each block is taken from the graph by its key with the synchronous
    scheduler: ``array[region].compute()`` would also work, but its slicing
    and final concatenation hold several copies of the block (~5x its size).
    """
    import dask
    from dask.utils import ensure_dict

    if array.chunks != tuple(chunks):
        array = array.rechunk(chunks)
    graph = ensure_dict(array.__dask_graph__())  # once: each lookup then culls only what one key needs
    name = array.name
    return lambda index, region: dask.get(graph, (name, *index))
