"""Prefect tasks for Tiled: read, write, search and copy nodes.

The tasks here (all importable from ``prefect_tiled.tasks``):

- ``read_node`` / ``aread_node``: a node's data (an array, a table, ...), optionally a slice or columns;
- ``write_node`` / ``awrite_node``: data written as a node; returns its URI;
- ``search_nodes`` / ``asearch_nodes``: paths of the children matching a query;
- ``copy_nodes``: copy a container's children to another server (resumable; also in ``prefect_tiled.copy``,
  beside the ``sync_copy_flow`` flow);

and ``retry_on_outage``, a ``retry_condition_fn`` for them (see below).

Every task takes a ``TiledCredentials`` block first, logs what it acts on
(paths and the server URI, never the key) and returns something small: a URI,
a list of paths, or the data only when the task is a read.

Which layer retries what:

| layer | retries | on | how long |
|---|---|---|---|
| tiled_core transport (``Session``) | every request | connection refused or reset, truncated body, 429 (after ``Retry-After``), 502/503/504; reads, PUT and DELETE only, and any request that never reached the server or was refused with 429 | 6 attempts within 45 s (``TILED_RETRY_ATTEMPTS``, ``TILED_RETRY_TIMEOUT``) |
| these tasks | nothing by default (``retries=0``) | - | - |
| your flow, if you want it | ``task.with_options(retries=N, retry_delay_seconds=S, retry_condition_fn=retry_on_outage)`` | only ``TransportError`` that survived the client's own retries, i.e. an outage longer than its deadline (a server restart) | your choice: S should exceed a restart |

Task retries stay off because stacking them on the client's retries
multiplies waits and turns a clear error (401, 404, 409, bad input) into
minutes of pointless repetition. A write that failed half way is finished by
rerunning it with ``on_conflict="replace"``; ``"skip"`` keeps a node that
already exists (reruns of completed work).

Where the key goes: with Prefect's default (thread) task runner the block
stays in this process. On a DaskTaskRunner, Prefect pickles each task's
arguments *and the flow's parameters* to the workers, so a block holding an
``api_key`` would travel with every task: there, use a block without
``api_key`` and set ``TILED_API_KEY`` on the workers, or follow
``prefect_tiled.flows.map_blocks_flow``, which ships only small block specs.

Caching is off (``NO_CACHE``): reads must see the server's current data,
writes are made idempotent by ``on_conflict``, and no cache key is ever
computed from the credentials, so none can carry the key. Results are not
persisted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from . import _ops
from .artifacts import apublish_writes, publish_writes
from .copy import copy_nodes
from .credentials import TiledCredentials

__all__ = [
    "read_node", "aread_node", "write_node", "awrite_node", "search_nodes", "asearch_nodes", "copy_nodes",
    "retry_on_outage",
]

_OPTIONS = dict(retries=0, cache_policy=NO_CACHE, persist_result=False)


def retry_on_outage(task, task_run, state) -> bool:
    """A ``retry_condition_fn``: retry only when the server stayed unreachable past the client's own retries."""
    from tiled_core.transport import TransportError

    try:
        state.result()
    except TransportError:
        return True
    except BaseException:
        return False
    return False


@task(name="read_node", **_OPTIONS)
def read_node(credentials: TiledCredentials, path: str, slice: Any = None, columns: Any = None) -> Any:
    """Read a node's data: numpy array, pandas DataFrame, xarray Dataset, awkward or sparse array.

    Arguments:
        credentials: the server.
        path: node path from the root, e.g. ``"scans/scan001/image"``.
        slice: for arrays, a numpy-style selection (``(slice(0, 10), 3)``).
        columns: for tables, the columns to read.

    Raises KeyError for a missing node, TypeError for an argument the node's family does not take.

    Example:
        ```python
        from prefect import flow
        from prefect_tiled import TiledCredentials
        from prefect_tiled.tasks import read_node

        @flow
        def peak():
            image = read_node(TiledCredentials.load("facility"), "scans/scan001/image")
            return float(image.max())
        ```
    """
    return _ops.read(credentials, path, slice, columns)


@task(name="aread_node", **_OPTIONS)
async def aread_node(credentials: TiledCredentials, path: str, slice: Any = None, columns: Any = None) -> Any:
    """Async twin of ``read_node`` (the client is synchronous: it runs in a worker thread)."""
    return await asyncio.to_thread(_ops.read, credentials, path, slice, columns)


@task(name="write_node", **_OPTIONS)
def write_node(credentials: TiledCredentials, path: str, data: Any, metadata: dict | None = None,
               specs: list | None = None, on_conflict: str = "error") -> str:
    """Write ``data`` as a new node at ``path`` ("container/key") and return the node's URI.

    The writer is chosen by the data's type: numpy or dask array -> array;
    pandas or dask DataFrame -> table; xarray Dataset -> xarray_dataset
    container; awkward Array -> awkward; sparse COO -> sparse.

    ``on_conflict``: ``"error"`` (default; ``Conflict`` if ``path`` exists),
    ``"skip"`` (keep the existing node and return its URI: for reruns of
    completed work) or ``"replace"`` (write it again: for a rerun of a write
    that failed half way). A markdown artifact summarises the write.

    Example:
        ```python
        import numpy as np
        from prefect import flow
        from prefect_tiled import TiledCredentials
        from prefect_tiled.tasks import write_node

        @flow
        def save():
            return write_node(TiledCredentials.load("facility"), "results/dark", np.zeros((4, 4)),
                              metadata={"kind": "dark"}, on_conflict="skip")
        ```
    """
    summary = _ops.write(credentials, path, data, metadata, specs, on_conflict)
    publish_writes([summary])
    return summary["uri"]


@task(name="awrite_node", **_OPTIONS)
async def awrite_node(credentials: TiledCredentials, path: str, data: Any, metadata: dict | None = None,
                      specs: list | None = None, on_conflict: str = "error") -> str:
    """Async twin of ``write_node``."""
    summary = await asyncio.to_thread(_ops.write, credentials, path, data, metadata, specs, on_conflict)
    await apublish_writes([summary])
    return summary["uri"]


@task(name="search_nodes", **_OPTIONS)
def search_nodes(credentials: TiledCredentials, path: str = "", query: Any = None, sort: Any = None,
                 limit: int | None = None) -> list[str]:
    """Paths of the children of ``path`` that match ``query``.

    Arguments:
        query: a query from ``tiled_core.queries``, a ``{"key": value}`` dict
            (each pair an ``Eq``), or a list of these (combined with AND).
        sort: ``[("key", 1 | -1), ...]`` or ``"key"`` / ``"-key"``.
        limit: at most this many paths.

    Example:
        ```python
        from prefect import flow
        from tiled_core.queries import KeyPresent
        from prefect_tiled import TiledCredentials
        from prefect_tiled.tasks import search_nodes

        @flow
        def todo():
            return search_nodes(TiledCredentials.load("facility"), "scans",
                                query=[{"sample": "Cu"}, KeyPresent("reduced", False)], limit=100)
        ```
    """
    return _ops.search(credentials, path, query, sort, limit)


@task(name="asearch_nodes", **_OPTIONS)
async def asearch_nodes(credentials: TiledCredentials, path: str = "", query: Any = None, sort: Any = None,
                        limit: int | None = None) -> list[str]:
    """Async twin of ``search_nodes``."""
    return await asyncio.to_thread(_ops.search, credentials, path, query, sort, limit)
