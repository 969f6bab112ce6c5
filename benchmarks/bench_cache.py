#!/usr/bin/env python
"""Response-cache benchmark: warm re-reads, tiled_core's Cache vs the reference client's.

Starts ONE ``tiled serve catalog`` (``tiled_core.server.LocalTiledServer``) on
127.0.0.1, fills it as ``bench_foundation.py`` does (a 256 MiB float64 array in
8x8 chunks, a container of 2000 entries with metadata), then gives each client
its own cache file (same capacity and item limit) and times, median of
``--repeat`` runs, each repeat running every contender once in rotating order:

  1. ``c["big"].read()`` with a warm cache
  2. ``list(c["many"].items())`` with a warm cache

Each case has two tiled_core rows against the same reference timings:

* revalidating (the default of both clients): every entry is revalidated with
  ``If-None-Match``. The server still reads the whole array and hashes it
  (SHA-1) to compute its ETag before it can answer 304, so that server time
  is a floor both clients share; the cache saves the transfer and decoding.
* ``Cache(max_age=3600)`` (a tiled_core option, opted into by the user for data
  that does not change meanwhile): entries confirmed within the hour are used
  without asking. The reference has no such option; it still revalidates.

For scale: the same reads by tiled_core without a cache, and the cold (first,
storing) read of each client.

Usage::

    python benchmarks/bench_cache.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench_foundation import MiB, compare, log, make_parser, prepopulate_catalog, publish, scratch_run, write_big
from tiled_core.client import from_uri as core_from_uri
from tiled_core.client.cache import Cache as CoreCache
from tiled_core.server import LocalTiledServer

from tiled.client import from_uri as ref_from_uri
from tiled.client.cache import Cache as RefCache

CAPACITY = 2 << 30
MAX_ITEM_SIZE = 300 * MiB  # above the largest single response either client asks for
REF_POOL = 4096


def run(args) -> dict:
    if args.quick:
        shape, chunks, n_nodes = (1024, 2048), (128, 256), 200
    else:
        shape, chunks, n_nodes = (4096, 8192), (512, 1024), 2000
    nbytes = shape[0] * shape[1] * 8
    results: dict = {
        "config": {
            "repeat": args.repeat, "quick": args.quick, "shape": shape, "chunks": chunks, "nbytes": nbytes,
            "container_entries": n_nodes, "capacity": CAPACITY, "max_item_size": MAX_ITEM_SIZE,
            "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "tiled": __import__("tiled").__version__,
        },
        "cases": {},
    }
    with scratch_run(results, "tiled-core-bench-cache-") as directory:
        prepopulate_catalog(directory / "server", n_nodes)
        with LocalTiledServer(directory / "server") as server:
            log(f"server at {server.uri}")
            write_big(server, shape, chunks)
            run_cases(server, directory, results["cases"], args.repeat, shape, n_nodes)
    return results


def run_cases(server, directory: Path, cases: dict, repeat: int, shape, n_nodes: int) -> None:
    uri, key = server.uri, server.api_key
    ours = core_from_uri(uri, api_key=key, cache=CoreCache(directory / "ours.db", CAPACITY, MAX_ITEM_SIZE))
    # The reference transport never closes the 304 it answers from its cache, so each
    # revalidation keeps a pooled connection checked out; with its default pool of 16
    # the listing runs into httpx.PoolTimeout. A pool big enough for the whole run.
    ref = ref_from_uri(uri, api_key=key, cache=RefCache(directory / "ref.db", CAPACITY, MAX_ITEM_SIZE),
                       max_connections=REF_POOL)
    plain = core_from_uri(uri, api_key=key)
    # The same file as `ours`, used without revalidation for an hour.
    trusting = core_from_uri(
        uri, api_key=key, cache=CoreCache(directory / "ours.db", CAPACITY, MAX_ITEM_SIZE, max_age=3600)
    )

    def timed(label, function):
        begin = time.perf_counter()
        value = function()
        elapsed = time.perf_counter() - begin
        log(f"  cold {label}: {elapsed:.3f}s")
        return value, elapsed

    log("cold reads (fill both caches)")
    a, cold_ours = timed("tiled_core big", lambda: ours["big"].read())
    b, cold_ref = timed("reference big", lambda: ref["big"].read())
    if a.shape != tuple(shape) or not np.array_equal(a, b):
        raise SystemExit("tiled_core and the reference client read different data for 'big'")
    del a, b
    _, cold_items_ours = timed("tiled_core items", lambda: list(ours["many"].items()))
    _, cold_items_ref = timed("reference items", lambda: list(ref["many"].items()))

    def same_array(x, y):
        if x.shape != tuple(shape) or not np.array_equal(x, y):
            raise SystemExit("warm re-reads differ between tiled_core and the reference client")

    log("1. warm re-read of 'big'")
    cases["array"] = compare(
        "warm array", lambda: ours["big"].read(), lambda: ref["big"].read(), repeat, check=same_array,
        extra={"tiled_core_no_cache": lambda: plain["big"].read(),
               "tiled_core_max_age": lambda: trusting["big"].read()},
    )
    cases["array"].update({"cold_tiled_core": cold_ours, "cold_reference": cold_ref})

    def same_items(x, y):
        if [k for k, _ in x] != [k for k, _ in y] or len(x) != n_nodes:
            raise SystemExit("warm listings differ between tiled_core and the reference client")

    log(f"2. warm items() of {n_nodes}")
    cases["items"] = compare(
        "warm items()", lambda: list(ours["many"].items()), lambda: list(ref["many"].items()), repeat,
        check=same_items, extra={"tiled_core_no_cache": lambda: list(plain["many"].items()),
                                 "tiled_core_max_age": lambda: list(trusting["many"].items())},
    )
    cases["items"].update({"cold_tiled_core": cold_items_ours, "cold_reference": cold_items_ref})
    cases["cache_files"] = {
        "tiled_core": {"entries": ours.context.cache.count(), "bytes": ours.context.cache.size()},
        "reference": {"entries": ref.context.cache.count(), "bytes": ref.context.cache.size()},
    }
    for name in ("array", "items"):
        cases[name]["speedup_max_age"] = cases[name]["reference"] / cases[name]["tiled_core_max_age"]
    for client in (ours, ref, plain, trusting):
        client.context.close()


def report(results: dict) -> str:
    config, cases = results["config"], results["cases"]
    lines = [
        f"Warm response cache: tiled_core vs tiled.client {config['tiled']} — one local server, median of "
        f"{config['repeat']}; array {tuple(config['shape'])} float64 ({config['nbytes'] / MiB:.0f} MiB), "
        f"container of {config['container_entries']}; both caches capacity {CAPACITY >> 20} MiB, "
        f"max_item_size {MAX_ITEM_SIZE >> 20} MiB",
        "",
        "| case | tiled_core warm (s) | reference warm (s) | speedup (ref/ours) | target | "
        "tiled_core no cache (s) | cold: tiled_core / reference (s) |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    labels = {"array": "1. `c['big'].read()`", "items": f"2. `list(c['many'].items())` ({config['container_entries']})"}
    for name in ("array", "items"):
        r = cases[name]
        for variant, ours, speedup in (("revalidating", r["tiled_core"], r["speedup"]),
                                       ("`max_age=3600`", r["tiled_core_max_age"], r["speedup_max_age"])):
            target = f">= 2x: {'met' if speedup >= 2 else 'NOT met'}"
            lines.append(
                f"| {labels[name]}, {variant} | {ours:.4f} | {r['reference']:.4f} | {speedup:.2f}x | {target} | "
                f"{r['tiled_core_no_cache']:.4f} | {r['cold_tiled_core']:.3f} / {r['cold_reference']:.3f} |"
            )
    files = cases["cache_files"]
    lines += [
        "",
        f"Cache contents after the runs: tiled_core {files['tiled_core']['entries']} entries, "
        f"{files['tiled_core']['bytes'] / MiB:.0f} MiB; reference {files['reference']['entries']} entries, "
        f"{files['reference']['bytes'] / MiB:.0f} MiB",
        "",
        f"Total {results['total_seconds']:.0f}s; load average {results['load_average_start'][0]:.1f} -> "
        f"{results['load_average_end'][0]:.1f} on {config['cpus']} CPUs",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = make_parser(__doc__).parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    results = run(args)
    publish(results, report(results), args.json)


if __name__ == "__main__":
    main()
