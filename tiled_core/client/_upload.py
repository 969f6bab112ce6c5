"""Preparing arrays for upload: chunking, the data source document, bounded concurrent PUTs."""

from __future__ import annotations

import numpy as np

from ..structures import ArrayStructure
from ._array_io import block_slices, put_block, put_full, regular_chunks


def _is_dask(array) -> bool:
    return type(array).__module__.startswith("dask.")


def _regular(chunks: tuple[tuple[int, ...], ...]) -> bool:
    return all(len(set(c[:-1])) <= 1 and (len(c) < 2 or c[-1] <= c[0]) for c in chunks)


def array_data_source(array, *, dims=None):
    """Normalise ``array`` and describe it as a writable data source (zarr needs regular chunks)."""
    if _is_dask(array):
        if not _regular(array.chunks):
            array = array.rechunk(tuple(c[0] for c in array.chunks))
        chunks = array.chunks
    else:
        array = np.asarray(array)
        chunks = regular_chunks(array.shape, array.dtype.itemsize)
    if array.dtype.kind == "O":
        raise TypeError("object arrays cannot be written to Tiled; convert to a numeric or string dtype")
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


def upload_array(client, array) -> None:
    """Upload every block of ``array`` to the (new) node behind ``client``."""
    structure: ArrayStructure = client.structure()
    session = client.context.session
    dtype = structure.dtype
    if 0 in structure.shape:
        return  # nothing to send; the server made the (empty) storage on create
    blocks = list(block_slices(structure.chunks))
    if len(blocks) == 1 and not _is_dask(array):
        put_full(session, client.path_parts, array, dtype)
        return

    def send(entry):
        index, region = entry
        data = array[region]
        if _is_dask(data):
            data = data.compute(scheduler="sync")  # one block at a time: memory stays bounded
        put_block(session, client.path_parts, index, np.asarray(data), dtype)

    session.run_concurrently(send, blocks)
