"""Dask-backed Prefect flows over Tiled nodes.

``map_blocks_flow`` fans one Prefect task per array block out over a
``prefect_dask.DaskTaskRunner`` (by default a local cluster of two worker
processes; point it elsewhere with ``map_blocks_flow.with_options(
task_runner=DaskTaskRunner(address=...))``). Each task gets a small picklable
block spec, reads its block straight from the server, applies the function
and writes the result block to the new node: data never passes through the
flow's process, and no API key is in any task's parameters (workers read it
from an environment variable, ``TILED_API_KEY`` by default).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from tiled_core.client._conflict import begin_write, check_on_conflict, finish_write

from . import _blocks, _ops
from .artifacts import publish_writes
from .credentials import TiledCredentials

__all__ = ["map_blocks_flow", "map_block"]


def _resolve_function(function: Callable | str) -> Callable:
    """A callable, or ``"package.module:name"`` (the form a deployment's parameters can carry)."""
    if callable(function):
        return function
    if isinstance(function, str) and ":" in function:
        module, _, name = function.partition(":")
        try:
            target = importlib.import_module(module)
            for part in name.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import function {function!r}: {error}") from None
        if callable(target):
            return target
    raise TypeError(f"function must be a callable or 'package.module:name', not {function!r}")


@task(name="map_block", cache_policy=NO_CACHE, persist_result=False)
def map_block(spec: _blocks.MapBlockSpec, function: Callable | str) -> dict:
    """Read one block, apply ``function``, write the result block; returns ``{"block", "bytes", "pid"}``."""
    result = _resolve_function(function)(spec.read())
    return {"block": list(spec.block), "bytes": spec.write(result), "pid": os.getpid()}


@flow(
    name="tiled-map-blocks",
    task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True}),
)
def map_blocks_flow(
    credentials: TiledCredentials,
    source_path: str,
    dest_path: str,
    function: Any,
    dtype: str | None = None,
    metadata: dict | None = None,
    on_conflict: str = "error",
    api_key_env: str = "TILED_API_KEY",
) -> str:
    """Apply ``function`` to every block of the array at ``source_path``; write the result as ``dest_path``.

    Arguments:
        function: a callable or ``"package.module:name"``; it gets a numpy
            block and must return an array of the same shape.
        dtype: the result's dtype (default: the source's).
        metadata: the new node's metadata (``source`` is added, linking back).
        on_conflict: ``"error"``, ``"skip"`` (keep a complete result; finish
            one a failed run left incomplete) or ``"replace"`` (delete and redo).
        api_key_env: the environment variable that holds the API key on the
            Dask workers (used when the block has a key).

    Returns the new node's URI. A markdown artifact summarises the write.
    """
    check_on_conflict(on_conflict)
    _resolve_function(function)  # a bad import path fails here, not on every worker
    logger = _ops.logger()
    source = credentials.node(source_path)
    if source.structure_family != "array":
        raise TypeError(f"{source_path} is a {source.structure_family} node; map_blocks_flow maps arrays")
    structure = source.structure()
    out_dtype = np.dtype(dtype) if dtype is not None else structure.dtype
    parent_path, key = _ops.split_node_path(dest_path)
    doc = _blocks.empty_array_source(structure.shape, structure.chunks, out_dtype, dims=structure.dims)
    target = begin_write(credentials.node(parent_path), "array", [doc], key=key, specs=None,
                         metadata={**(metadata or {}), "source": source.uri}, on_conflict=on_conflict)
    dest = target.client
    if not target.needs_upload:
        logger.info("%s exists and is complete; on_conflict='skip' keeps it", dest.path)
        return dest.uri
    if dest.structure().chunks != structure.chunks:
        raise ValueError(f"{dest.path} was left unfinished with other chunks than {source.path}; "
                         "rerun with on_conflict='replace'")
    handle = _blocks.session_handle(credentials, api_key_env)
    specs = _blocks.plan(handle, source.path_parts, dest.path_parts, structure.chunks, structure.dtype, out_dtype)
    logger.info("mapping %d block(s) of %s into %s on %s", len(specs), source.path, dest.path, credentials.target)
    done = [future.result() for future in map_block.map(specs, unmapped(function))]
    finish_write(dest)
    elsewhere = {d["pid"] for d in done} - {os.getpid()}
    logger.info("mapped %d block(s) into %s, %d of them in %d other process(es)", len(done), dest.path,
                sum(d["pid"] != os.getpid() for d in done), len(elsewhere))
    publish_writes([{
        "path": dest.path, "uri": dest.uri, "family": "array", "type": f"map_blocks of {source.path}",
        "shape": structure.shape, "dtype": str(out_dtype), "bytes": sum(d["bytes"] for d in done),
    }], title="tiled-map-blocks")
    return dest.uri
