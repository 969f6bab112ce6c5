"""Copies between Tiled servers from Prefect: the ``copy_nodes`` task and ``sync_copy_flow``.

Both are thin over ``tiled_core.client.sync.copy``, which is concurrent,
memory-bounded and resumable: a rerun skips nodes already complete and
finishes interrupted ones, so retrying a failed copy means running it again.
``sync_copy_flow`` spreads the node and block transfers over Dask workers
(``tiled_core``'s own Dask path: each worker reads the source and writes the
destination directly, and credentials travel out of band, never in a task).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from .credentials import TiledCredentials

__all__ = ["copy_nodes", "sync_copy_flow"]


def _destination(credentials: TiledCredentials, path: str):
    """The container at ``path`` on the destination, created (with its parents) when missing."""
    node = credentials.get_client()
    for key in [p for p in path.split("/") if p]:
        node = node.create_container(key, on_conflict="skip")
    return node


def _copy(source_credentials, dest_credentials, source_path, dest_path, on_conflict, dask_client) -> dict:
    from tiled_core.client.sync import copy

    logger = get_run_logger()
    source = source_credentials.node(source_path)
    dest = _destination(dest_credentials, dest_path)
    reported = [0]

    def progress(snapshot) -> None:
        # One log line per tenth of the nodes found so far: enough to follow, not a flood.
        step = max(1, snapshot.nodes_found // 10)
        if snapshot.nodes_done - reported[0] >= step:
            reported[0] = snapshot.nodes_done
            logger.info("copied %d/%d nodes, %d bytes", snapshot.nodes_done, snapshot.nodes_found, snapshot.bytes_done)

    logger.info("copying %s to %s (on_conflict=%s)", source.uri, dest.uri, on_conflict)
    summary = copy(source, dest, on_conflict=on_conflict, progress=progress, dask_client=dask_client)
    result = {"source": source.uri, "destination": dest.uri, "nodes": summary.nodes, "bytes": summary.bytes,
              "skipped": summary.skipped, "failed": summary.failed, "seconds": round(summary.seconds, 3)}
    _publish(result)
    if summary.failed:
        raise RuntimeError(f"{summary.failed} node(s) failed to copy (rerun to finish): {summary.errors[:5]}")
    return result


def _publish(result: dict) -> None:
    from prefect.artifacts import create_markdown_artifact

    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    create_markdown_artifact(markdown=f"## Tiled copy\n\n| | |\n|---|---|\n{rows}\n", description="Tiled copy")


@task(name="copy_nodes", retries=0, cache_policy=NO_CACHE, persist_result=False)
def copy_nodes(source_credentials: TiledCredentials, dest_credentials: TiledCredentials, source_path: str = "",
               dest_path: str = "", on_conflict: str = "skip") -> dict[str, Any]:
    """Copy the children of ``source_path`` into ``dest_path`` (created if missing) on another server.

    ``on_conflict``: ``"skip"`` (default: resume, keeping complete nodes),
    ``"warn"`` or ``"error"``. Returns a summary: source and destination URIs,
    nodes, bytes, skipped, failed, seconds. Raises if any node failed (the
    summary artifact is published first); rerunning finishes the copy.
    """
    return _copy(source_credentials, dest_credentials, source_path, dest_path, on_conflict, None)


@flow(name="tiled-sync-copy")
def sync_copy_flow(source_credentials: TiledCredentials, dest_credentials: TiledCredentials, source_path: str = "",
                   dest_path: str = "", on_conflict: str = "skip", workers: int = 2,
                   dask_address: str | None = None) -> dict[str, Any]:
    """Copy between two servers over Dask workers: a scheduler at ``dask_address``, or a
    LocalCluster of ``workers`` processes started for the run (``workers=0``: no Dask, one process).
    """
    import logging

    if dask_address is None and workers == 0:
        return _copy(source_credentials, dest_credentials, source_path, dest_path, on_conflict, None)
    from distributed import Client, LocalCluster

    if dask_address is not None:
        with Client(dask_address) as client:
            return _copy(source_credentials, dest_credentials, source_path, dest_path, on_conflict, client)
    with LocalCluster(n_workers=workers, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        return _copy(source_credentials, dest_credentials, source_path, dest_path, on_conflict, client)
