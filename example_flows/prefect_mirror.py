"""Prefect example: the nightly mirror of a facility server into an analysis server.

``nightly_mirror`` copies one container from the facility server to the
analysis server with ``prefect_tiled.copy.sync_copy_flow`` (transfers spread
over Dask workers). It is resumable: a night that failed half way is finished
by the next run, and nodes already mirrored are skipped. ``serve_prefect``
serves it on a nightly schedule; ``run(...)`` runs it once from code.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from prefect_tiled import TiledCredentials
from prefect_tiled.copy import sync_copy_flow


@flow(name="nightly-mirror")
def nightly_mirror(source: TiledCredentials, dest: TiledCredentials, path: str, workers: int = 2,
                   dask_address: str | None = None) -> dict[str, Any]:
    """Mirror ``path`` from ``source`` to the same path on ``dest`` (skipping what is already there)."""
    return sync_copy_flow(source, dest, path, path, on_conflict="skip", workers=workers, dask_address=dask_address)


def run(source_uri: str, source_key: str | None, dest_uri: str, dest_key: str | None, path: str, *,
        workers: int = 2, say=print) -> dict[str, Any]:
    """Mirror ``path`` once; returns the copy summary."""
    summary = nightly_mirror(TiledCredentials(uri=source_uri, api_key=source_key),
                             TiledCredentials(uri=dest_uri, api_key=dest_key), path, workers=workers)
    say(f"mirrored {path}: {summary['nodes']} nodes, {summary['bytes']} bytes, {summary['skipped']} skipped")
    return summary
