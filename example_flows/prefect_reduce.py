"""A scheduled Prefect pipeline: reduce every new scan.

Each run searches a container of scans (as written by ``example_flows.scans``)
for those without a ``reduced`` metadata marker, reduces each scan's image to
a profile (mean over y), writes the profile next to the scans with metadata
linking back to its source, and marks the scan as reduced. Reruns are safe:
marked scans are not found again, and a profile that already exists is kept
(``on_conflict="skip"``).

Deploy it on a schedule, e.g. ``reduce_new_scans.serve(cron="*/10 * * * *",
parameters={"credentials": TiledCredentials.load("facility"), "scans_path": "scans"})``,
or call ``run(uri, api_key)`` from code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from prefect_tiled import TiledCredentials
from prefect_tiled.tasks import search_nodes, write_node
from tiled_core.queries import KeyPresent

REDUCTION = "mean over y of image"


@task(cache_policy=NO_CACHE, persist_result=False)
def ensure_container(credentials: TiledCredentials, path: str) -> str:
    """Create the container at ``path`` ("parent/key") unless it exists; returns its URI."""
    parent_path, _, key = path.strip("/").rpartition("/")
    container = credentials.node(parent_path).create_container(key, metadata={"purpose": "reduced scans"},
                                                               on_conflict="skip")
    return container.uri


@task(cache_policy=NO_CACHE, persist_result=False)
def reduce_scan(credentials: TiledCredentials, scan_path: str) -> dict[str, Any]:
    """Read one scan's image and reduce it to a profile; returns the profile and where it came from."""
    scan = credentials.node(scan_path)
    image = scan["image"].read()
    return {"profile": image.mean(axis=0), "source": scan.uri, "sample": scan.metadata.get("sample")}


@task(cache_policy=NO_CACHE, persist_result=False)
def mark_reduced(credentials: TiledCredentials, scan_path: str, result_uri: str) -> bool:
    """Record on the scan where its reduction is, so later runs skip it.

    Returns False when this tiled_core cannot update metadata yet; reruns
    then find the scan again and keep the existing profile (on_conflict="skip").
    """
    scan = credentials.node(scan_path)
    update = getattr(scan, "update_metadata", None)
    if update is None:
        return False
    update(metadata={"reduced": result_uri})
    return True


@flow(name="reduce-new-scans")
def reduce_new_scans(credentials: TiledCredentials, scans_path: str, results_path: str | None = None,
                     limit: int | None = None) -> dict[str, Any]:
    """Reduce every scan under ``scans_path`` not yet marked ``reduced``; results go to ``results_path``.

    ``results_path`` defaults to a sibling container ``<scans_path>-reduced``.
    Returns ``{"results": path, "reduced": [scan paths], "marked": n}``.
    """
    results_path = results_path or f"{scans_path.strip('/')}-reduced"
    ensure_container(credentials, results_path)
    todo = search_nodes(credentials, scans_path, query=KeyPresent("reduced", False), limit=limit)
    marked = 0
    for scan_path in todo:
        reduced = reduce_scan(credentials, scan_path)
        key = scan_path.rsplit("/", 1)[-1]
        result_uri = write_node(
            credentials, f"{results_path}/{key}", np.asarray(reduced["profile"]),
            metadata={"source": reduced["source"], "source_path": scan_path, "reduction": REDUCTION,
                      "sample": reduced["sample"]},
            on_conflict="skip",
        )
        marked += mark_reduced(credentials, scan_path, result_uri)
    return {"results": results_path, "reduced": todo, "marked": marked}


def run(uri: str, api_key: str | None, *, scans_path: str | None = None, n_scans: int = 3, say=print) -> dict:
    """Reduce the scans at ``scans_path`` on the server at ``uri`` (first writing ``n_scans`` example
    scans with ``example_flows.scans`` when no path is given). Needs a Prefect API (or Prefect's
    ephemeral mode). Returns the flow's summary."""
    if scans_path is None:
        from example_flows import scans

        written = scans.run(uri, api_key, n_scans=n_scans, say=say)
        scans_path = written["container"].split("/api/v1/metadata/", 1)[1]
    credentials = TiledCredentials(uri=uri, api_key=api_key)
    summary = reduce_new_scans(credentials, scans_path)
    say(f"reduced {len(summary['reduced'])} scan(s) of {scans_path} into {summary['results']}")
    return summary
