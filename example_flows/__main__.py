"""The main job: the whole tiled-core story against real Tiled servers.

1. populate a "facility" server with scans (tiled_core writes, searches, reads);
2. run the Prefect flow that reduces every new scan (Prefect's ephemeral API
   unless PREFECT_API_URL is set);
3. materialise the Dagster assets, one partition per scan, with their checks;
4. copy the scans to an "analysis" server over a 2-worker Dask LocalCluster,
   each worker moving blocks between the servers directly, with a progress bar;
5. print a short summary with links to the nodes.

With no server configured (no --tiled-uri and no TILED_URI) two embedded real
Tiled servers are started on free loopback ports and stopped afterwards. With
--tiled-uri (and --api-key or TILED_API_KEY) everything runs on that server,
under fresh containers; the copy then goes to --analysis-uri, or to a new
container on the same server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m example_flows", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiled-uri", default=os.environ.get("TILED_URI"),
                        help="the facility server (default: $TILED_URI, else an embedded server)")
    parser.add_argument("--api-key", default=None,
                        help="its API key (default: $TILED_API_KEY); prefer the environment variable")
    parser.add_argument("--analysis-uri", default=os.environ.get("TILED_ANALYSIS_URI"),
                        help="where the copy goes (default: $TILED_ANALYSIS_URI, else an embedded second "
                             "server, or the facility server itself when --tiled-uri is given)")
    parser.add_argument("--analysis-api-key", default=None,
                        help="API key of the analysis server (default: $TILED_ANALYSIS_API_KEY, else --api-key)")
    parser.add_argument("--scans", type=int, default=4, help="how many scans to write (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes for the copy (default 2)")
    parser.add_argument("--skip", action="append", default=[], choices=["prefect", "dagster", "copy"],
                        help="leave out a step (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        facility, facility_key = _facility(args, stack)
        analysis, analysis_key = _analysis(args, stack, facility, facility_key)
        summary = run_story(facility, facility_key, analysis, analysis_key,
                            n_scans=args.scans, workers=args.workers, skip=set(args.skip))
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2))
    return 0


def _facility(args, stack) -> tuple[str, str | None]:
    if args.tiled_uri:
        print(f"facility server: {args.tiled_uri}")
        return args.tiled_uri, args.api_key or os.environ.get("TILED_API_KEY")
    from tiled_core.server import LocalTiledServer

    print("TILED_URI is not set: starting embedded Tiled servers on 127.0.0.1 ...")
    server = stack.enter_context(LocalTiledServer())
    print(f"facility server (embedded): {server.uri}")
    return server.uri, server.api_key


def _analysis(args, stack, facility: str, facility_key: str | None) -> tuple[str, str | None]:
    if args.analysis_uri:
        return args.analysis_uri, args.analysis_api_key or os.environ.get("TILED_ANALYSIS_API_KEY") or facility_key
    if args.tiled_uri:
        return facility, facility_key  # a real server given: mirror into a new container on it
    from tiled_core.server import LocalTiledServer

    server = stack.enter_context(LocalTiledServer())
    print(f"analysis server (embedded): {server.uri}")
    return server.uri, server.api_key


def run_story(facility: str, facility_key: str | None, analysis: str, analysis_key: str | None, *,
              n_scans: int = 4, workers: int = 2, skip: set[str] = frozenset(), say=print) -> dict:
    """Run every step; returns the summary printed by the main job."""
    from example_flows import scans

    summary: dict = {"facility": facility, "analysis": analysis}
    say("\n== 1. scans: write, search, read back")
    written = scans.run(facility, facility_key, n_scans=n_scans, say=say)
    scans_path = written["container"].split("/api/v1/metadata/", 1)[1]
    summary["scans"] = {"container": written["container"], "count": written["scans"]}

    if "prefect" not in skip:
        say("\n== 2. Prefect: reduce every new scan")
        from example_flows import prefect_reduce

        reduced = prefect_reduce.run(facility, facility_key, scans_path=scans_path, say=say)
        summary["prefect"] = {"results": reduced["results"], "reduced": len(reduced["reduced"])}

    if "dagster" not in skip:
        say("\n== 3. Dagster: materialise the partitioned assets")
        from example_flows import dagster_scans

        assets = dagster_scans.run(facility, facility_key, n_scans=n_scans, say=say)
        summary["dagster"] = {"container": assets["container"], "partitions": assets["scans"]}

    if "copy" not in skip:
        say(f"\n== 4. copy the scans to the analysis server over {workers} Dask workers")
        summary["copy"] = copy_scans(facility, facility_key, analysis, analysis_key, scans_path, workers=workers)
        say(f"copied {summary['copy']['nodes']} nodes, {summary['copy']['bytes']} bytes "
            f"into {summary['copy']['destination']}")
    return summary


def copy_scans(facility: str, facility_key: str | None, analysis: str, analysis_key: str | None,
               scans_path: str, *, workers: int = 2) -> dict:
    """Copy the container ``scans_path`` to ``<scans_path>-mirror`` on the analysis server, on a LocalCluster."""
    from distributed import Client, LocalCluster

    from tiled_core.client import from_uri
    from tiled_core.client.sync import copy

    source_root = from_uri(facility, api_key=facility_key)
    dest_root = from_uri(analysis, api_key=analysis_key)
    try:
        source = source_root[scans_path]
        dest = dest_root.create_container(f"{scans_path}-mirror", metadata=dict(source.metadata), on_conflict="skip")
        with LocalCluster(n_workers=workers, threads_per_worker=2, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.WARNING) as cluster, Client(cluster) as dask_client:
            result = copy(source, dest, on_conflict="skip", dask_client=dask_client, progress=sys.stderr.isatty())
        return {"destination": dest.uri, "nodes": result.nodes, "bytes": result.bytes,
                "skipped": result.skipped, "seconds": round(result.seconds, 2)}
    finally:
        source_root.context.close()
        dest_root.context.close()


if __name__ == "__main__":
    sys.exit(main())
