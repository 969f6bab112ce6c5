"""Small picklable specs of array blocks, read and written by whichever worker runs them.

A spec carries a ``SessionHandle`` (server URL plus a credential *source*,
never the key), node paths, a block index, its shape and dtypes. On a Dask
worker process the handle reopens one Session per process from the source.

The block I/O itself is tiled_core's (``tiled_core.client.blocks``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tiled_core.client.blocks import block_slices, put_block, read_block_into
from tiled_core.distributed import EnvVarCredential, SessionHandle

__all__ = ["MapBlockSpec", "MapPlan", "plan", "session_handle", "empty_array_source"]


@dataclasses.dataclass(frozen=True)
class MapBlockSpec:
    """One block: read it from ``source``, write the result to the same block of ``dest``."""

    handle: SessionHandle
    source: tuple[str, ...]
    dest: tuple[str, ...]
    block: tuple[int, ...]
    shape: tuple[int, ...]
    source_dtype: np.dtype
    dest_dtype: np.dtype

    def read(self) -> np.ndarray:
        return read_block_into(self.handle.get(), self.source, self.block, np.empty(self.shape, self.source_dtype))

    def write(self, array: Any) -> int:
        array = np.asarray(array)
        if array.shape != self.shape:
            raise ValueError(f"the function turned block {self.block} of shape {self.shape} into shape {array.shape}; "
                             "map_blocks_flow needs it to keep each block's shape")
        put_block(self.handle.get(), self.dest, self.block, array, self.dest_dtype)
        return int(array.size * self.dest_dtype.itemsize)


@dataclasses.dataclass(frozen=True)
class MapPlan:
    """Everything a map over blocks needs, in a few hundred bytes however many blocks there are."""

    handle: SessionHandle
    source: tuple[str, ...]
    dest: tuple[str, ...]
    chunks: tuple[tuple[int, ...], ...]
    source_dtype: np.dtype
    dest_dtype: np.dtype

    def specs(self) -> list[MapBlockSpec]:
        """One spec per block."""
        return [
            MapBlockSpec(self.handle, self.source, self.dest, index, tuple(s.stop - s.start for s in region),
                         self.source_dtype, self.dest_dtype)
            for index, region in block_slices(self.chunks)
        ]


def plan(handle: SessionHandle, source, dest, chunks, source_dtype, dest_dtype) -> MapPlan:
    """The plan for mapping an array chunked as ``chunks`` from ``source`` into ``dest``."""
    return MapPlan(handle, tuple(source), tuple(dest), tuple(tuple(c) for c in chunks),
                   np.dtype(source_dtype), np.dtype(dest_dtype))


def session_handle(credentials, api_key_env: str) -> SessionHandle:
    """A handle on the block's connection that workers in other processes can reopen.

    With a key in the block, workers read it from the environment variable
    ``api_key_env`` (it is never shipped); without one, the client's own
    credential source applies (anonymous, or ``TILED_API_KEY``).
    """
    context = credentials.get_client().context
    if credentials.api_key is None:
        return context.session_handle
    return SessionHandle(context.session, EnvVarCredential(api_key_env))


def empty_array_source(shape, chunks, dtype, dims=None) -> dict:
    """The data source document of a new, not yet written array node."""
    import dask.array as da

    from tiled_core.client.blocks import array_data_source

    _, source = array_data_source(da.empty(shape, chunks=chunks, dtype=dtype), dims=dims)
    return source
