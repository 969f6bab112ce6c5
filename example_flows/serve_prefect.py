"""Serve the example Prefect deployments (the compose stack's ``prefect-worker`` runs this).

Reads ``TILED_URI`` and ``TILED_API_KEY``, saves them as a ``TiledCredentials``
block (Prefect stores the key as a secret), and serves a ``reduce-new-scans``
deployment on an interval. The deployment's parameters name the block; they
never hold the key, so the Prefect UI does not show it.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from typing import Any

from prefect import flow


@flow(name="nightly-mirror-from-blocks")
def nightly_mirror_from_blocks(source_block: str, dest_block: str, path: str) -> dict[str, Any]:
    """Load both credentials blocks and mirror ``path`` (on the stack's Dask scheduler when one is set)."""
    from prefect_tiled import TiledCredentials

    from example_flows.prefect_mirror import nightly_mirror

    return nightly_mirror(TiledCredentials.load(source_block), TiledCredentials.load(dest_block), path,
                          dask_address=os.environ.get("DASK_SCHEDULER_ADDRESS"))


@flow(name="reduce-new-scans-from-block")
def reduce_new_scans_from_block(block_name: str, scans_path: str, results_path: str | None = None) -> dict[str, Any]:
    """Load the credentials block ``block_name`` and reduce the new scans under ``scans_path``."""
    from prefect_tiled import TiledCredentials

    from example_flows.prefect_reduce import reduce_new_scans

    return reduce_new_scans(TiledCredentials.load(block_name), scans_path, results_path)


def save_credentials(block_name: str, uri: str, api_key: str | None) -> None:
    from prefect_tiled import TiledCredentials

    TiledCredentials(uri=uri, api_key=api_key).save(block_name, overwrite=True)


def build_deployments(block_name: str, scans_path: str, every: timedelta) -> list:
    """The deployments served here (parameters: names and paths only)."""
    return [
        reduce_new_scans_from_block.to_deployment(
            name="reduce-new-scans", interval=every,
            parameters={"block_name": block_name, "scans_path": scans_path},
            description="Reduce every scan not yet marked 'reduced' and link the result back to it.",
        ),
        nightly_mirror_from_blocks.to_deployment(
            name="nightly-mirror", cron="0 2 * * *",
            parameters={"source_block": block_name, "dest_block": block_name, "path": scans_path},
            description="Mirror the scans (resumable); point dest_block at the analysis server's block.",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_flows.serve_prefect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiled-uri", default=os.environ.get("TILED_URI"), help="default: $TILED_URI")
    parser.add_argument("--block-name", default="tiled", help="credentials block to save and use (default: tiled)")
    parser.add_argument("--scans-path", default="scans", help="container of scans to watch (default: scans)")
    parser.add_argument("--every-minutes", type=float, default=10.0, help="how often to run (default: 10)")
    args = parser.parse_args(argv)
    if not args.tiled_uri:
        parser.error("give --tiled-uri or set TILED_URI")
    from prefect import serve

    save_credentials(args.block_name, args.tiled_uri, os.environ.get("TILED_API_KEY"))
    serve(*build_deployments(args.block_name, args.scans_path, timedelta(minutes=args.every_minutes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
