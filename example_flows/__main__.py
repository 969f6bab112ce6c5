"""The main job: the whole tiled-core story against real Tiled servers.

1. populate a "facility" server with scans (tiled_core writes, searches, reads);
2. run the Prefect flow that reduces every new scan (Prefect's ephemeral API
   unless PREFECT_API_URL is set);
3. materialise the Dagster assets, one partition per scan, with their checks;
4. copy the scans to an "analysis" server over a 2-worker Dask LocalCluster,
   each worker moving blocks between the servers directly, with a progress bar;
5. print a short summary with links to the nodes.

It is quiet by default: a line per stage, a ticking line while servers start,
a progress bar on the copy (on a terminal), the summary; the orchestrators'
own logs only at WARNING and their telemetry off. --verbose shows everything.

--dagster-ui instead starts the Dagster UI (`dagster dev`, webserver and
daemon) on the example's assets, against the embedded server (or --tiled-uri)
with example scans written and one partition materialised, in a temporary
DAGSTER_HOME (unless DAGSTER_HOME is set); Ctrl-C stops it all.

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
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from example_flows import _console


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
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the orchestrators' own logs (Prefect, Dagster events, Dask) and warnings")
    parser.add_argument("--dagster-ui", action="store_true",
                        help="instead of the story: run the Dagster UI (dagster dev) on the example's assets")
    parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port on 127.0.0.1 (default 3000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _console.configure(args.verbose)
    if args.dagster_ui:
        return dagster_ui(args)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        facility, facility_key, analysis, analysis_key = _servers(args, stack, analysis=True)
        summary = run_story(facility, facility_key, analysis, analysis_key, n_scans=args.scans,
                            workers=args.workers, skip=set(args.skip), verbose=args.verbose)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\n== done in {summary['seconds']} s; summary:")
    print(json.dumps(summary, indent=2))
    return 0


def _servers(args, stack, *, analysis: bool) -> tuple[str, str | None, str | None, str | None]:
    """(facility URI, key, analysis URI, key): given ones, or embedded servers started side by side."""
    facility = analysis_uri = None
    facility_key = analysis_key = None
    if args.tiled_uri:
        facility, facility_key = args.tiled_uri, args.api_key or os.environ.get("TILED_API_KEY")
        print(f"facility server: {facility}")
    if analysis and getattr(args, "analysis_uri", None):
        analysis_uri = args.analysis_uri
        analysis_key = args.analysis_api_key or os.environ.get("TILED_ANALYSIS_API_KEY") or facility_key
    elif analysis and args.tiled_uri:
        analysis_uri, analysis_key = facility, facility_key  # a real server given: mirror into a new container on it
    wanted = [role for role, uri in (("facility", facility), ("analysis", analysis_uri if analysis else "-"))
              if uri is None]
    if wanted:
        started = _start_servers(stack, wanted)
        if "facility" in started:
            facility, facility_key = started["facility"].uri, started["facility"].api_key
        if "analysis" in started:
            analysis_uri, analysis_key = started["analysis"].uri, started["analysis"].api_key
    return facility, facility_key, analysis_uri, analysis_key


def _start_servers(stack, roles: list[str]) -> dict:
    """Start one embedded Tiled server per role, concurrently, with a ticking line while they start."""
    from tiled_core.server import LocalTiledServer

    servers = {role: LocalTiledServer() for role in roles}
    errors: list[BaseException] = []

    def start(server) -> None:
        try:
            server.start()
        except BaseException as error:  # reported below, after every thread finished
            errors.append(error)

    label = f"TILED_URI is not set: starting {len(roles)} embedded Tiled server{'s' * (len(roles) > 1)} on 127.0.0.1"
    with _console.Ticker(label) as ticker:
        threads = [threading.Thread(target=start, args=(s,), daemon=True) for s in servers.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for server in servers.values():
            stack.callback(server.stop)
        if errors:
            raise errors[0]
        for role, server in servers.items():
            ticker.say(f"{role} server (embedded): {server.uri}")
    return servers


def run_story(facility: str, facility_key: str | None, analysis: str, analysis_key: str | None, *,
              n_scans: int = 4, workers: int = 2, skip: set[str] = frozenset(), say=print,
              verbose: bool = True) -> dict:
    """Run every step; returns the summary printed by the main job.

    ``verbose=False``: the orchestrators' logs at WARNING (see ``example_flows._console``).
    """
    from example_flows import scans

    summary: dict = {"facility": facility, "analysis": analysis}
    say("\n== 1. scans: write, search, read back")
    written = scans.run(facility, facility_key, n_scans=n_scans, say=say)
    scans_path = written["container"].split("/api/v1/metadata/", 1)[1]
    summary["scans"] = {"container": written["container"], "count": written["scans"]}

    if "prefect" not in skip:
        say("\n== 2. Prefect: reduce every new scan")
        with _console.Ticker("Prefect flow (its temporary API server starts first)") as ticker:
            from example_flows import prefect_reduce

            if not verbose:
                _console.quiet_loggers()
            reduced = prefect_reduce.run(facility, facility_key, scans_path=scans_path, say=ticker.say)
        summary["prefect"] = {"results": reduced["results"], "reduced": len(reduced["reduced"])}

    if "dagster" not in skip:
        say("\n== 3. Dagster: materialise the partitioned assets")
        with _console.Ticker("Dagster runs") as ticker:
            from example_flows import dagster_scans

            if not verbose:
                _console.quiet_loggers()
            assets = dagster_scans.run(facility, facility_key, n_scans=n_scans, say=ticker.say,
                                       log_level="DEBUG" if verbose else "WARNING")
        summary["dagster"] = {"container": assets["container"], "partitions": assets["scans"]}

    if "copy" not in skip:
        say(f"\n== 4. copy the scans to the analysis server over {workers} Dask workers")
        summary["copy"] = copy_scans(facility, facility_key, analysis, analysis_key, scans_path, workers=workers,
                                     verbose=verbose)
        say(f"{summary['copy']['text']} into {summary['copy']['destination']}")
    return summary


def copy_scans(facility: str, facility_key: str | None, analysis: str, analysis_key: str | None,
               scans_path: str, *, workers: int = 2, verbose: bool = True) -> dict:
    """Copy the container ``scans_path`` to ``<scans_path>-mirror`` on the analysis server, on a LocalCluster."""
    from distributed import Client, LocalCluster

    from tiled_core.client import from_uri
    from tiled_core.client.sync import copy

    source_root = from_uri(facility, api_key=facility_key)
    dest_root = from_uri(analysis, api_key=analysis_key)
    try:
        source = source_root[scans_path]
        dest = dest_root.create_container(f"{scans_path}-mirror", metadata=dict(source.metadata), on_conflict="skip")
        with contextlib.ExitStack() as stack:
            with _console.Ticker(f"starting {workers} Dask worker processes"):
                if not verbose:
                    _console.quiet_loggers()
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=2, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.INFO if verbose else logging.WARNING))
                dask_client = stack.enter_context(Client(cluster))
            result = copy(source, dest, on_conflict="skip", dask_client=dask_client, progress=sys.stderr.isatty())
        return {"destination": dest.uri, "nodes": result.nodes, "bytes": result.bytes,
                "skipped": result.skipped, "seconds": round(result.seconds, 2), "text": str(result)}
    finally:
        source_root.context.close()
        dest_root.context.close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def dagster_ui(args) -> int:
    """``--dagster-ui``: a Tiled server with example scans, then ``dagster dev`` on the example until Ctrl-C."""
    from dagster import DagsterInstance

    from example_flows import dagster_scans

    with contextlib.ExitStack() as stack:
        facility, facility_key, _, _ = _servers(args, stack, analysis=False)
        home = os.environ.get("DAGSTER_HOME")
        if not home:
            home = tempfile.mkdtemp(prefix="tiled-core-dagster-")
            stack.callback(shutil.rmtree, home, ignore_errors=True)
            with open(os.path.join(home, "dagster.yaml"), "w") as f:
                f.write("telemetry:\n  enabled: false\n")
            print(f"DAGSTER_HOME is not set: using a temporary one, {home} (removed on exit)")
        env = {**os.environ, "DAGSTER_HOME": home, "TILED_URI": facility}
        if facility_key:
            env["TILED_API_KEY"] = facility_key
        else:
            env.pop("TILED_API_KEY", None)
        os.environ["DAGSTER_HOME"] = home  # the instance below is the one dagster dev opens
        with _console.Ticker("preparing the example (scans, partitions, one materialisation)") as ticker:
            instance = DagsterInstance.get()
            stack.callback(instance.dispose)
            if not args.verbose:
                _console.quiet_loggers()
            dagster_scans.prepare_ui(facility, facility_key, instance, n_scans=args.scans, say=ticker.say,
                                     log_level="DEBUG" if args.verbose else "WARNING")
        command = [sys.executable, "-m", "dagster", "dev", "-m", "example_flows.dagster_scans",
                   "-h", "127.0.0.1", "-p", str(args.port)]
        if not args.verbose:
            command += ["--log-level", "warning", "--code-server-log-level", "warning"]
            env["PYTHONWARNINGS"] = "ignore::FutureWarning"  # `dagster dev` is "superseded by dg dev" (a CLI not installed)
        print(f"\nDagster UI: http://127.0.0.1:{args.port}  (Tiled: {facility}; Ctrl-C stops everything)")
        signal.signal(signal.SIGTERM, _interrupt)  # a `kill` cleans up as Ctrl-C does
        process = subprocess.Popen(command, env=env)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)  # dagster dev stops its webserver and daemon on SIGINT
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            print("stopped")
            return 0
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait()


if __name__ == "__main__":
    sys.exit(main())
