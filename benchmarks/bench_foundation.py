#!/usr/bin/env python
"""Foundation benchmark: tiled_core vs the reference ``tiled.client`` on one real server.

Starts ONE ``tiled serve catalog`` (via ``tiled_core.server.LocalTiledServer``)
on 127.0.0.1, populates it, then times both clients side by side on the same
data and prints a markdown table (median of ``--repeat`` runs).

Cases:
  1. full read of a 256 MiB float64 array stored in 8x8 chunks
     (``c["big"].read()``), verified equal once; also timed with ``curl``
     (the upper bound for one HTTP download of the same bytes)
  2. the same through the dask clients (``c["big"].read().compute()``)
  3. 64 serial ``read_block((i, j))`` calls
  4. ``list(c["many"].items())`` over 2000 small containers with metadata
  5. ``list(c["many"].search(Eq("group", 3)).keys())``
  6. connecting: ``from_uri`` wall time and HTTP round trips (counted in the
     server's access log, between two marker requests)

Usage::

    python benchmarks/bench_foundation.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from tiled_core.client import from_uri as core_from_uri
from tiled_core.queries import Eq as CoreEq
from tiled_core.server import LocalTiledServer

from tiled.client import from_uri as ref_from_uri
from tiled.queries import Eq as RefEq

MiB = 1 << 20
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) ')


# -- helpers -------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(function) -> float:
    start = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def compare(name: str, ours, ref, repeat: int) -> dict:
    """Run ``ours`` and ``ref`` ``repeat`` times each, alternating which goes first."""
    samples = {"tiled_core": [], "reference": []}
    for i in range(repeat):
        order = [("tiled_core", ours), ("reference", ref)]
        if i % 2:
            order.reverse()
        for label, function in order:
            gc.collect()
            samples[label].append(timed(function))
    result = {
        "tiled_core": statistics.median(samples["tiled_core"]),
        "reference": statistics.median(samples["reference"]),
        "samples": samples,
    }
    result["speedup"] = result["reference"] / result["tiled_core"]
    log(f"  {name}: tiled_core {result['tiled_core']:.4f}s  reference {result['reference']:.4f}s  "
        f"speedup {result['speedup']:.2f}x")
    return result


class AccessLog:
    """Counts HTTP requests in the server's access log between two marker requests."""

    def __init__(self, server: LocalTiledServer) -> None:
        self.path = server.directory / "server.log"
        self.healthz = f"{server.root_uri}/healthz"

    def _lines(self) -> list[str]:
        return _ANSI.sub("", self.path.read_text(errors="replace")).splitlines()

    def _mark(self) -> str:
        marker = f"bench-{uuid.uuid4().hex}"
        httpx.get(self.healthz, params={"marker": marker}, timeout=10).raise_for_status()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(marker in line for line in self._lines()):
                return marker
            time.sleep(0.02)
        raise RuntimeError("the server's access log does not show requests; cannot count round trips")

    def count(self, function) -> tuple[int, list[str]]:
        """Requests the server saw while ``function`` ran (and the request lines)."""
        begin = self._mark()
        function()
        end = self._mark()
        lines = self._lines()
        first = next(i for i, line in enumerate(lines) if begin in line)
        last = next(i for i, line in enumerate(lines) if end in line)
        requests = [line for line in lines[first + 1:last] if _REQUEST_LINE.search(line)]
        return len(requests), [_REQUEST_LINE.split(line, 1)[-1].split(" HTTP/")[0] for line in requests]


def curl_download(url: str, api_key: str) -> float:
    """Wall time of one identity-encoded GET of ``url`` by curl, the key passed on stdin."""
    config = f'header = "Authorization: Apikey {api_key}"\nheader = "Accept-Encoding: identity"\n'
    start = time.perf_counter()
    completed = subprocess.run(
        ["curl", "-s", "-S", "-f", "-o", "/dev/null", "-K", "-", url],
        input=config.encode(), capture_output=True,
    )
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"curl failed ({completed.returncode}): {completed.stderr.decode(errors='replace')}")
    return elapsed


# -- population ------------------------------------------------------------------
def populate(server: LocalTiledServer, shape, chunks, n_nodes: int) -> None:
    import dask.array as da

    ref = ref_from_uri(server.uri, api_key=server.api_key)
    start = time.perf_counter()
    ref.write_array(da.random.random(shape, chunks=chunks), key="big")
    log(f"  wrote 'big' {shape} in {chunks} chunks with the reference client in {time.perf_counter() - start:.1f}s")

    ours = core_from_uri(server.uri, api_key=server.api_key)
    many = ours.create_container("many", metadata={"description": "benchmark listing"})
    start = time.perf_counter()

    def create(i: int) -> None:
        many.create_container(
            f"node{i:05d}",
            metadata={"group": i % 10, "index": i, "name": f"node number {i}", "tags": ["bench", f"t{i % 7}"],
                      "params": {"exposure": 0.1 * (i % 5), "sample": f"s{i % 13}"}},
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, range(n_nodes)))
    log(f"  created {n_nodes} containers with metadata in {time.perf_counter() - start:.1f}s")
    ours.context.close()
    ref.context.close()


# -- main ----------------------------------------------------------------------
def run(args) -> dict:
    if args.quick:
        shape, chunks, n_nodes = (1024, 2048), (128, 256), 200
    else:
        shape, chunks, n_nodes = (4096, 8192), (512, 1024), 2000
    n_blocks = (shape[0] // chunks[0], shape[1] // chunks[1])
    nbytes = shape[0] * shape[1] * 8
    group_size = len([i for i in range(n_nodes) if i % 10 == 3])
    results: dict = {
        "config": {
            "repeat": args.repeat, "quick": args.quick, "shape": shape, "chunks": chunks,
            "blocks": n_blocks, "nbytes": nbytes, "container_entries": n_nodes,
            "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
        },
        "cases": {},
    }
    cases = results["cases"]
    total_start = time.perf_counter()

    with LocalTiledServer() as server:
        log(f"server at {server.uri} ({server.directory})")
        populate(server, shape, chunks, n_nodes)
        uri, key = server.uri, server.api_key

        ours = core_from_uri(uri, api_key=key)
        ref = ref_from_uri(uri, api_key=key)
        ours_dask = core_from_uri(uri, "dask", api_key=key)
        ref_dask = ref_from_uri(uri, "dask", api_key=key)

        # 1. full read (the equality check doubles as the warm-up of both paths)
        log("1. full read")
        a = ours["big"].read()
        b = ref["big"].read()
        if a.shape != tuple(shape) or not np.array_equal(a, b):
            raise SystemExit("tiled_core and the reference client read different data for 'big'")
        del a, b
        cases["full_read"] = compare("full read", lambda: ours["big"].read(), lambda: ref["big"].read(), args.repeat)
        cases["full_read"]["verified_equal"] = True

        # 7. curl: the upper bound for case 1
        log("7. curl")
        url = f"{uri}/array/full/big"
        curl_download(url, key)  # warm-up
        curl_samples = [curl_download(url, key) for _ in range(args.repeat)]
        curl_median = statistics.median(curl_samples)
        ours_median = cases["full_read"]["tiled_core"]
        cases["curl_full_read"] = {
            "curl": curl_median, "samples": curl_samples,
            "curl_MiB_per_s": nbytes / MiB / curl_median,
            "tiled_core_MiB_per_s": nbytes / MiB / ours_median,
            "reference_MiB_per_s": nbytes / MiB / cases["full_read"]["reference"],
            "ours_over_curl_throughput": curl_median / ours_median,
        }
        log(f"  curl {curl_median:.4f}s ({nbytes / MiB / curl_median:.0f} MiB/s)")

        # 2. dask
        log("2. dask read")
        cases["dask_read"] = compare(
            "dask read",
            lambda: ours_dask["big"].read().compute(),
            lambda: ref_dask["big"].read().compute(),
            args.repeat,
        )

        # 3. serial block reads
        log(f"3. {n_blocks[0] * n_blocks[1]} serial block reads")
        blocks = [(i, j) for i in range(n_blocks[0]) for j in range(n_blocks[1])]

        def read_blocks(client):
            node = client["big"]
            return [node.read_block(block) for block in blocks]

        cases["block_reads"] = compare("block reads", lambda: read_blocks(ours), lambda: read_blocks(ref), args.repeat)

        # 4. listing
        log(f"4. items() of {n_nodes}")
        n_ours = len(list(ours["many"].items()))
        n_ref = len(list(ref["many"].items()))
        if n_ours != n_nodes or n_ref != n_nodes:
            raise SystemExit(f"listing found {n_ours} (tiled_core) and {n_ref} (reference) of {n_nodes} entries")
        cases["items"] = compare(
            "items()", lambda: list(ours["many"].items()), lambda: list(ref["many"].items()), args.repeat
        )

        # 5. search
        log("5. search Eq('group', 3)")
        found_ours = list(ours["many"].search(CoreEq("group", 3)).keys())
        found_ref = list(ref["many"].search(RefEq("group", 3)).keys())
        if found_ours != found_ref or len(found_ours) != group_size:
            raise SystemExit(f"search results differ: {len(found_ours)} (tiled_core) vs {len(found_ref)} (reference)")
        cases["search"] = compare(
            "search",
            lambda: list(ours["many"].search(CoreEq("group", 3)).keys()),
            lambda: list(ref["many"].search(RefEq("group", 3)).keys()),
            args.repeat,
        )

        # 6. connect
        log("6. connect")

        def connect_ours():
            client = core_from_uri(uri, api_key=key)
            client.context.close()
            return client

        def connect_ref():
            client = ref_from_uri(uri, api_key=key)
            client.context.close()
            return client

        cases["connect"] = compare("connect", connect_ours, connect_ref, args.repeat)
        access = AccessLog(server)
        trips_ours, paths_ours = access.count(connect_ours)
        trips_ref, paths_ref = access.count(connect_ref)
        counted = core_from_uri(uri, api_key=key)
        session_count = counted.context.session.request_count
        counted.context.close()
        cases["connect"].update({
            "round_trips_tiled_core": trips_ours, "round_trips_reference": trips_ref,
            "requests_tiled_core": paths_ours, "requests_reference": paths_ref,
            "session_request_count_tiled_core": session_count,
        })
        log(f"  round trips: tiled_core {trips_ours} {paths_ours}, reference {trips_ref} {paths_ref}")

        for client in (ours, ref, ours_dask, ref_dask):
            client.context.close()

    results["total_seconds"] = time.perf_counter() - total_start
    return results


TARGETS = {
    "full_read": ("speedup >= 3x", lambda r: r["speedup"] >= 3),
    "items": ("speedup >= 2x", lambda r: r["speedup"] >= 2),
    "connect": ("round trips <= reference", lambda r: r["round_trips_tiled_core"] <= r["round_trips_reference"]),
}
LABELS = {
    "full_read": "1. full read `c['big'].read()`",
    "dask_read": "2. dask `c['big'].read().compute()`",
    "block_reads": "3. serial `read_block` x{blocks}",
    "items": "4. `list(c['many'].items())` ({n})",
    "search": "5. `search(Eq('group', 3)).keys()`",
    "connect": "6. connect `from_uri`",
}


def report(results: dict) -> str:
    config, cases = results["config"], results["cases"]
    n_blocks = config["blocks"][0] * config["blocks"][1]
    lines = [
        f"tiled_core vs tiled.client {__import__('tiled').__version__} — one local server, "
        f"median of {config['repeat']}; array {tuple(config['shape'])} float64 "
        f"({config['nbytes'] / MiB:.0f} MiB, {n_blocks} chunks); container of {config['container_entries']}",
        "",
        "| case | tiled_core (s) | reference (s) | speedup (ref/ours) | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name in ("full_read", "dask_read", "block_reads", "items", "search", "connect"):
        r = cases[name]
        label = LABELS[name].format(blocks=n_blocks, n=config["container_entries"])
        target = ""
        if name in TARGETS:
            text, check = TARGETS[name]
            target = f"{text}: {'met' if check(r) else 'NOT met'}"
        lines.append(f"| {label} | {r['tiled_core']:.4f} | {r['reference']:.4f} | {r['speedup']:.2f}x | {target} |")
    c = cases["curl_full_read"]
    ratio = c["ours_over_curl_throughput"]
    lines += [
        "",
        f"Case 1 vs curl (one identity-encoded GET of /array/full/big): curl {c['curl']:.4f}s "
        f"({c['curl_MiB_per_s']:.0f} MiB/s), tiled_core {c['tiled_core_MiB_per_s']:.0f} MiB/s, "
        f"reference {c['reference_MiB_per_s']:.0f} MiB/s; ours/curl throughput = {ratio:.2f} "
        f"(target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})",
    ]
    r = cases["connect"]
    lines += [
        "",
        f"Connect round trips (server access log): tiled_core {r['round_trips_tiled_core']} "
        f"{r['requests_tiled_core']} (session counter: {r['session_request_count_tiled_core']}), "
        f"reference {r['round_trips_reference']} {r['requests_reference']}",
        "",
        f"Total benchmark time: {results['total_seconds']:.0f}s",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case and client (median reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes (16 MiB array, 200 entries)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if shutil.which("curl") is None:
        parser.error("curl is needed for the upper-bound case")
    results = run(args)
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=list)
        log(f"results written to {args.json}")


if __name__ == "__main__":
    main()
