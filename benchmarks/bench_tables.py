#!/usr/bin/env python
"""Table benchmark: tiled_core vs the reference ``tiled.client`` on one real server.

Starts ONE ``tiled serve catalog`` (``tiled_core.server.LocalTiledServer``) on
127.0.0.1, writes a 2,000,000-row, 5-column table in 8 partitions with the
reference client (int64, two float64, datetime64, a short-string column), then
times both clients side by side and prints a markdown table (median of
``--repeat`` runs, each repeat rotating which client goes first).

Cases:
  1. full read ``c["big"].read()`` (checked equal once); also timed: tiled_core
     asking for compressed responses as the reference does (``Accept-Encoding``
     of httpx), to show what skipping compression on loopback is worth
  2. single-column read ``c["big"].read(columns=["x"])``
  3. dask ``c["big"].read().compute()``
  4. a small table (8 partitions, 8,000 rows) read again: tiled_core's second
     read of a table it has seen is one /table/full request

For cases 1 and 2 the CPU seconds each read costs the server process and this
client are measured too (``/proc``, Linux): on a busy machine wall times are
noisy, CPU time much less so.

Targets: full read >= 1.5x the reference; single-column read >= 3x faster
than tiled_core's own full read.

Usage::

    python benchmarks/bench_tables.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
import warnings

import httpx
import numpy as np
import pandas as pd

from bench_foundation import compare, footer, log, make_parser, publish

from tiled_core.client import from_uri as core_from_uri
from tiled_core.server import LocalTiledServer

from tiled.client import from_uri as ref_from_uri

MiB = 1 << 20


def make_table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "i": np.arange(rows, dtype="int64"),
        "x": rng.random(rows),
        "y": rng.standard_normal(rows),
        "t": pd.date_range("2024-01-01", periods=rows, freq="s"),
        "s": rng.choice(["alpha", "beta", "gamma", "delta"], rows),
    })


def write_tables(server: LocalTiledServer, rows: int) -> None:
    import dask.dataframe as dd

    ref = ref_from_uri(server.uri, api_key=server.api_key)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ref.write_table(dd.from_pandas(make_table(rows), npartitions=8), key="big")
            ref.write_table(dd.from_pandas(make_table(8000), npartitions=8), key="small")
    finally:
        ref.context.close()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_cost(function, server_pid: int, repeat: int) -> dict:
    """Median CPU seconds one call costs the server and this client: unlike wall time,
    hardly affected by other busy processes on the machine."""
    server, client = [], []
    for _ in range(repeat):
        s0, c0 = process_cpu(server_pid), own_cpu()
        function()
        server.append(process_cpu(server_pid) - s0)
        client.append(own_cpu() - c0)
    return {"server": statistics.median(server), "client": statistics.median(client)}


def same_frames(x: pd.DataFrame, y: pd.DataFrame) -> None:
    try:
        pd.testing.assert_frame_equal(x, y, check_exact=True, check_index_type=True)
    except AssertionError as error:
        raise SystemExit(f"tiled_core and the reference client read different tables:\n{error}") from None


def run_cases(server: LocalTiledServer, cases: dict, repeat: int, rows: int) -> None:
    uri, key = server.uri, server.api_key
    ours = core_from_uri(uri, api_key=key)
    ref = ref_from_uri(uri, api_key=key)
    compressed = core_from_uri(uri, api_key=key)
    # What the reference's httpx client offers; our "auto" asks for identity on loopback.
    compressed.context.session._compression = httpx.Client().headers["accept-encoding"]
    ours_dask = core_from_uri(uri, "dask", api_key=key)
    ref_dask = ref_from_uri(uri, "dask", api_key=key)
    try:
        log("1. full read")
        nbytes = int(ours["big"].read().memory_usage(deep=True).sum())  # also warms both up
        ref["big"].read()
        full = compare(
            "full read", lambda: ours["big"].read(), lambda: ref["big"].read(), repeat, check=same_frames,
            extra={"tiled_core_compressed": lambda: compressed["big"].read()},
        )
        full["nbytes_in_memory"] = nbytes
        full["cpu"] = {"tiled_core": cpu_cost(lambda: ours["big"].read(), server.pid, repeat),
                       "reference": cpu_cost(lambda: ref["big"].read(), server.pid, repeat)}
        cases["full_read"] = full

        log("2. single-column read")
        column = compare(
            "one column", lambda: ours["big"].read(columns=["x"]), lambda: ref["big"].read(columns=["x"]),
            repeat, check=same_frames,
        )
        column["ours_full_over_ours_column"] = full["tiled_core"] / column["tiled_core"]
        column["cpu"] = {"tiled_core": cpu_cost(lambda: ours["big"].read(columns=["x"]), server.pid, repeat),
                         "reference": cpu_cost(lambda: ref["big"].read(columns=["x"]), server.pid, repeat)}
        cases["column_read"] = column

        log("3. dask read")
        cases["dask_read"] = compare(
            "dask read", lambda: ours_dask["big"].read().compute(), lambda: ref_dask["big"].read().compute(),
            repeat, check=same_frames,
        )

        log("4. small table, read again")
        ours["small"].read()
        cases["small_read"] = compare(
            "small read", lambda: ours["small"].read(), lambda: ref["small"].read(), repeat, check=same_frames,
        )
    finally:
        for client in (ours, ref, compressed, ours_dask, ref_dask):
            client.context.close()


def run(args) -> dict:
    rows = 200_000 if args.quick else 2_000_000
    results: dict = {
        "config": {
            "repeat": args.repeat, "quick": args.quick, "rows": rows, "columns": 5, "partitions": 8,
            "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "tiled": __import__("tiled").__version__,
        },
        "cases": {},
    }
    start = time.perf_counter()
    results["load_average_start"] = os.getloadavg()
    with LocalTiledServer() as server:
        log(f"server at {server.uri}")
        written = time.perf_counter()
        write_tables(server, rows)
        log(f"wrote the tables with the reference client in {time.perf_counter() - written:.1f}s")
        timed = time.perf_counter()
        run_cases(server, results["cases"], args.repeat, rows)
        results["cases_seconds"] = time.perf_counter() - timed
    results["load_average_end"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - start
    return results


LABELS = {
    "full_read": "1. full read `c['big'].read()`",
    "column_read": "2. one column `read(columns=['x'])`",
    "dask_read": "3. dask `read().compute()`",
    "small_read": "4. small table (8 partitions, 8000 rows), read again",
}


def report(results: dict) -> str:
    config, cases = results["config"], results["cases"]
    full, column = cases["full_read"], cases["column_read"]
    lines = [
        f"tiled_core vs tiled.client {config['tiled']}: one local server, median of {config['repeat']}; "
        f"table of {config['rows']:,} rows x 5 columns in 8 partitions "
        f"({full['nbytes_in_memory'] / MiB:.0f} MiB in pandas)",
        "",
        "| case | tiled_core (s) | reference (s) | speedup (ref/ours) | target |",
        "|---|---:|---:|---:|---|",
    ]
    targets = {
        "full_read": f"speedup >= 1.5x: {'met' if full['speedup'] >= 1.5 else 'NOT met'}",
        "column_read": (f"ours full / ours column = {column['ours_full_over_ours_column']:.2f}x >= 3x: "
                        f"{'met' if column['ours_full_over_ours_column'] >= 3 else 'NOT met'}"),
    }
    for name, label in LABELS.items():
        r = cases[name]
        lines.append(f"| {label} | {r['tiled_core']:.4f} | {r['reference']:.4f} | {r['speedup']:.2f}x "
                     f"| {targets.get(name, '')} |")
    lines += [
        "",
        f"Case 1 with compressed responses (tiled_core sending the reference's Accept-Encoding): "
        f"{full['tiled_core_compressed']:.4f}s, {full['reference'] / full['tiled_core_compressed']:.2f}x "
        "the reference.",
        "",
        "CPU seconds per read (server + client, median; barely affected by other load on the machine):",
        "",
        "| case | tiled_core server | tiled_core client | reference server | reference client | ratio (ref/ours) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("full_read", "column_read"):
        cpu = cases[name]["cpu"]
        ours, ref = cpu["tiled_core"], cpu["reference"]
        ratio = (ref["server"] + ref["client"]) / (ours["server"] + ours["client"])
        lines.append(f"| {LABELS[name]} | {ours['server']:.2f} | {ours['client']:.2f} | {ref['server']:.2f} "
                     f"| {ref['client']:.2f} | {ratio:.2f}x |")
    ours_full, ours_column = cases["full_read"]["cpu"]["tiled_core"], cases["column_read"]["cpu"]["tiled_core"]
    lines += [
        "",
        f"tiled_core CPU, full read / one column: "
        f"{sum(ours_full.values()) / sum(ours_column.values()):.2f}x",
        "",
        footer(results),
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = make_parser(__doc__, quick="200,000 rows instead of 2,000,000").parse_args(argv)
    results = run(args)
    publish(results, report(results), args.json)


if __name__ == "__main__":
    main()
