"""Dask-backed Prefect flows over Tiled nodes.

``map_blocks_flow`` prepares the result node in the flow's own process, then
runs a subflow, ``map_blocks_on_dask``, that fans one Prefect task per array
block out over a ``prefect_dask.DaskTaskRunner`` (a temporary local cluster of
``workers`` processes, or the scheduler at ``dask_address``). Each task gets a
small picklable block spec, reads its block straight from the server, applies
the function and writes the result block: data never passes through the
flow's process.

Why a subflow: Prefect ships the *current flow's parameters* with every task
it submits to Dask (its serialised run context, secrets included). The
subflow's parameters are only the block specs and the function, so neither
the task payloads nor the Dask scheduler ever hold the API key; workers read
it from an environment variable (``TILED_API_KEY`` by default). For the same
reason, run ``prefect_tiled.tasks`` on a DaskTaskRunner only in flows whose
parameters carry no secret.
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

from tiled_core.client.conflict import begin_write, check_on_conflict, finish_write

from . import _blocks, _ops
from .artifacts import publish_writes
from .credentials import TiledCredentials

__all__ = ["map_blocks_flow", "map_blocks_on_dask", "map_block"]


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


@flow(name="tiled-map-blocks-on-dask")
def map_blocks_on_dask(plan: Any, function: Any) -> list[dict]:
    """Run ``map_block`` for every block of ``plan`` (a ``MapPlan``) on this flow's task runner.

    Its parameters, which Prefect ships with every task, are the small plan and the function only.
    Returns each block's summary.
    """
    return [future.result() for future in map_block.map(plan.specs(), unmapped(function))]


def _runner(workers: int, dask_address: str | None):
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    if workers < 0:
        raise ValueError(f"workers must be 0 (threads in this process) or more, not {workers}")
    if workers == 0:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})


@flow(name="tiled-map-blocks")
def map_blocks_flow(
    credentials: TiledCredentials,
    source_path: str,
    dest_path: str,
    function: Any,
    dtype: str | None = None,
    metadata: dict | None = None,
    on_conflict: str = "error",
    api_key_env: str = "TILED_API_KEY",
    workers: int = 2,
    dask_address: str | None = None,
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
        workers: worker processes of the temporary local Dask cluster; 0 runs
            the blocks in threads in this process instead.
        dask_address: an existing Dask scheduler to use instead.

    Returns the new node's URI. A markdown artifact summarises the write.
    """
    check_on_conflict(on_conflict)
    runner = _runner(workers, dask_address)
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
    plan = _blocks.plan(handle, source.path_parts, dest.path_parts, structure.chunks, structure.dtype, out_dtype)
    logger.info("mapping the blocks of %s into %s on %s", source.path, dest.path, credentials.target)
    done = map_blocks_on_dask.with_options(task_runner=runner)(plan, function)
    finish_write(dest)
    logger.info("mapped %d block(s) into %s, %d of them in %d other process(es)", len(done), dest.path,
                sum(d["pid"] != os.getpid() for d in done), len({d["pid"] for d in done} - {os.getpid()}))
    publish_writes([{
        "path": dest.path, "uri": dest.uri, "family": "array", "type": f"map_blocks of {source.path}",
        "shape": structure.shape, "dtype": str(out_dtype), "bytes": sum(d["bytes"] for d in done),
    }], title="tiled-map-blocks")
    return dest.uri
