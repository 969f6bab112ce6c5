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

"big" is written by the reference client from a dask array (so both clients
read the same storage); "many" and its children are created through tiled's
catalog API before the server starts (``--populate-over-http`` uses tiled_core's
``create_container`` instead, about a minute slower). Each repeat runs both
clients, alternating which goes first. The machine's load average is recorded:
other busy processes make the numbers noisy.

Usage::

    python benchmarks/bench_foundation.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def compare(name: str, ours, ref, repeat: int, check=None, extra: dict | None = None) -> dict:
    """Run ``ours`` and ``ref`` (and any ``extra`` contenders) ``repeat`` times each.

    Each repeat runs every contender once, rotating which goes first, so that
    changes in the machine's load hit all of them alike. ``check(ours_result,
    ref_result)`` is called on the first repeat's results.
    """
    contenders = {"tiled_core": ours, "reference": ref, **(extra or {})}
    labels = list(contenders)
    samples: dict[str, list[float]] = {label: [] for label in labels}
    first: dict = {}
    for i in range(repeat):
        shift = i % len(labels)
        for label in labels[shift:] + labels[:shift]:
            gc.collect()
            start = time.perf_counter()
            value = contenders[label]()
            samples[label].append(time.perf_counter() - start)
            if i == 0 and check is not None and label in ("tiled_core", "reference"):
                first[label] = value
            del value
        if i == 0 and check is not None:
            check(first.pop("tiled_core"), first.pop("reference"))
    result = {label: statistics.median(samples[label]) for label in labels}
    result["samples"] = samples
    result["speedup"] = result["reference"] / result["tiled_core"]
    log(f"  {name}: " + "  ".join(f"{label} {result[label]:.4f}s" for label in labels)
        + f"  speedup {result['speedup']:.2f}x")
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
def node_metadata(i: int) -> dict:
    return {"group": i % 10, "index": i, "name": f"node number {i}", "tags": ["bench", f"t{i % 7}"],
            "params": {"exposure": round(0.1 * (i % 5), 1), "sample": f"s{i % 13}"}}


def prepopulate_catalog(directory: Path, n_nodes: int) -> None:
    """Create 'many' and its children straight in the catalog, before the server starts.

    The server spends ~30 ms of CPU on every node created over HTTP (a minute
    for 2000 here), so this uses tiled's own catalog API instead: the same
    ``create_node`` the server's POST handler calls, without HTTP and auth.
    """
    import asyncio

    from tiled.catalog import from_uri as catalog_from_uri
    from tiled.structures.core import StructureFamily

    async def create() -> None:
        catalog = catalog_from_uri(
            f"sqlite:///{directory / 'catalog.db'}", writable_storage=[str(directory / "data")],
            init_if_not_exists=True,
        )
        await catalog.startup()
        try:
            many = await catalog.create_node(
                StructureFamily.container, {"description": "benchmark listing"}, key="many"
            )
            for i in range(n_nodes):
                await many.create_node(StructureFamily.container, node_metadata(i), key=f"node{i:05d}")
        finally:
            await catalog.shutdown()

    (directory / "data").mkdir(parents=True, exist_ok=True)
    asyncio.run(create())


def populate_over_http(server: LocalTiledServer, n_nodes: int) -> None:
    """The same nodes, created with tiled_core's ``create_container`` (slow: server-bound)."""
    ours = core_from_uri(server.uri, api_key=server.api_key)
    try:
        many = ours.create_container("many", metadata={"description": "benchmark listing"})
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda i: many.create_container(f"node{i:05d}", metadata=node_metadata(i)), range(n_nodes)))
    finally:
        ours.context.close()


def write_big(server: LocalTiledServer, shape, chunks) -> None:
    import dask.array as da

    ref = ref_from_uri(server.uri, api_key=server.api_key)
    try:
        ref.write_array(da.random.random(shape, chunks=chunks), key="big")
    finally:
        ref.context.close()


# -- main ----------------------------------------------------------------------
def run(args) -> dict:
    if args.quick:
        shape, chunks, n_nodes = (1024, 2048), (128, 256), 200
    else:
        shape, chunks, n_nodes = (4096, 8192), (512, 1024), 2000
    n_blocks = (shape[0] // chunks[0], shape[1] // chunks[1])
    nbytes = shape[0] * shape[1] * 8
    results: dict = {
        "config": {
            "repeat": args.repeat, "quick": args.quick, "shape": shape, "chunks": chunks,
            "blocks": n_blocks, "nbytes": nbytes, "container_entries": n_nodes,
            "populate": "http" if args.populate_over_http else "catalog",
            "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "tiled": __import__("tiled").__version__,
        },
        "cases": {},
    }
    cases = results["cases"]
    with scratch_run(results, "tiled-core-bench-") as directory:
        if not args.populate_over_http:
            start = time.perf_counter()
            prepopulate_catalog(directory, n_nodes)
            log(f"created 'many' with {n_nodes} children in the catalog in {time.perf_counter() - start:.1f}s")
        with LocalTiledServer(directory) as server:
            log(f"server at {server.uri}")
            if args.populate_over_http:
                start = time.perf_counter()
                populate_over_http(server, n_nodes)
                log(f"created 'many' with {n_nodes} children over HTTP in {time.perf_counter() - start:.1f}s")
            start = time.perf_counter()
            write_big(server, shape, chunks)
            log(f"wrote 'big' {shape} in {chunks} chunks with the reference client "
                f"in {time.perf_counter() - start:.1f}s")
            timings = time.perf_counter()
            run_cases(server, cases, args.repeat, shape, n_blocks, nbytes, n_nodes)
            results["cases_seconds"] = time.perf_counter() - timings
    return results


def run_cases(server, cases, repeat, shape, n_blocks, nbytes, n_nodes) -> None:
    uri, key = server.uri, server.api_key
    ours = core_from_uri(uri, api_key=key)
    ref = ref_from_uri(uri, api_key=key)
    ours_dask = core_from_uri(uri, "dask", api_key=key)
    ref_dask = ref_from_uri(uri, "dask", api_key=key)

    # 1. full read, with curl (case 7) in the same repeats; the equality check doubles as the warm-up
    log("1. full read (and 7. curl)")
    a = ours["big"].read()
    b = ref["big"].read()
    if a.shape != tuple(shape) or not np.array_equal(a, b):
        raise SystemExit("tiled_core and the reference client read different data for 'big'")
    del a, b
    url = f"{uri}/array/full/big"
    curl_download(url, key)  # warm-up
    full = compare(
        "full read", lambda: ours["big"].read(), lambda: ref["big"].read(), repeat,
        extra={"curl": lambda: curl_download(url, key)},
    )
    curl = {"curl": full.pop("curl"), "samples": full["samples"].pop("curl")}
    full["verified_equal"] = True
    cases["full_read"] = full
    curl.update({
        "curl_MiB_per_s": nbytes / MiB / curl["curl"],
        "tiled_core_MiB_per_s": nbytes / MiB / full["tiled_core"],
        "reference_MiB_per_s": nbytes / MiB / full["reference"],
        "ours_over_curl_throughput": curl["curl"] / full["tiled_core"],
    })
    cases["curl_full_read"] = curl

    # 2. dask
    log("2. dask read")

    def same_shape(x, y):
        if x.shape != tuple(shape) or y.shape != tuple(shape):
            raise SystemExit(f"dask reads returned shapes {x.shape} and {y.shape}")

    cases["dask_read"] = compare(
        "dask read",
        lambda: ours_dask["big"].read().compute(),
        lambda: ref_dask["big"].read().compute(),
        repeat, check=same_shape,
    )

    # 3. serial block reads
    blocks = [(i, j) for i in range(n_blocks[0]) for j in range(n_blocks[1])]
    log(f"3. {len(blocks)} serial block reads")

    def read_blocks(client):
        node = client["big"]
        return [node.read_block(block) for block in blocks]

    def same_blocks(x, y):
        if len(x) != len(blocks) or not all(np.array_equal(p, q) for p, q in zip(x, y)):
            raise SystemExit("block reads differ between tiled_core and the reference client")

    # The floor for a block read: a plain httpx GET of the raw bytes, viewed as an array (no copy).
    raw = httpx.Client(headers={"authorization": f"Apikey {key}", "accept-encoding": "identity"}, timeout=60)
    dtype, block_shape = np.dtype("<f8"), tuple(s // n for s, n in zip(shape, n_blocks))

    def read_blocks_raw():
        out = []
        for block in blocks:
            response = raw.get(f"{uri}/array/block/big", params={"block": ",".join(map(str, block))},
                               headers={"accept": "application/octet-stream"})
            response.raise_for_status()
            out.append(np.frombuffer(response.content, dtype).reshape(block_shape))
        return out

    try:
        cases["block_reads"] = compare(
            "block reads", lambda: read_blocks(ours), lambda: read_blocks(ref), repeat, check=same_blocks,
            extra={"raw_httpx": read_blocks_raw},
        )
    finally:
        raw.close()
    cases["block_reads"]["over_raw_httpx"] = cases["block_reads"]["tiled_core"] / cases["block_reads"]["raw_httpx"]

    # 4. listing
    log(f"4. items() of {n_nodes}")

    def same_items(x, y):
        keys_x, keys_y = [k for k, _ in x], [k for k, _ in y]
        if len(keys_x) != n_nodes or keys_x != keys_y:
            raise SystemExit(f"listings differ: {len(keys_x)} (tiled_core) vs {len(keys_y)} (reference) entries")
        if dict(x[7][1].metadata) != dict(y[7][1].metadata):
            raise SystemExit("listed metadata differs between tiled_core and the reference client")

    cases["items"] = compare(
        "items()", lambda: list(ours["many"].items()), lambda: list(ref["many"].items()), repeat, check=same_items
    )

    # 5. search
    log("5. search Eq('group', 3)")
    expected = [f"node{i:05d}" for i in range(n_nodes) if i % 10 == 3]

    def same_keys(x, y):
        if x != expected or y != expected:
            raise SystemExit(f"search found {len(x)} (tiled_core) and {len(y)} (reference) of {len(expected)}")

    cases["search"] = compare(
        "search",
        lambda: list(ours["many"].search(CoreEq("group", 3)).keys()),
        lambda: list(ref["many"].search(RefEq("group", 3)).keys()),
        repeat, check=same_keys,
    )

    # 6. connect
    log("6. connect")

    def connect_ours():
        client = core_from_uri(uri, api_key=key)
        client.context.close()

    def connect_ref():
        client = ref_from_uri(uri, api_key=key)
        client.context.close()

    cases["connect"] = compare("connect", connect_ours, connect_ref, repeat)
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
        f"Case 1 vs curl (one identity-encoded GET of /array/full/big, timed in the same repeats): "
        f"curl {c['curl']:.4f}s "
        f"({c['curl_MiB_per_s']:.0f} MiB/s), tiled_core {c['tiled_core_MiB_per_s']:.0f} MiB/s, "
        f"reference {c['reference_MiB_per_s']:.0f} MiB/s; ours/curl throughput = {ratio:.2f} "
        f"(target >= 0.85: {'met' if ratio >= 0.85 else 'NOT met'})",
        "",
        f"Case 3 vs plain httpx (the same {n_blocks} GETs of /array/block, bytes viewed as arrays): "
        f"httpx {cases['block_reads']['raw_httpx']:.4f}s; tiled_core/httpx time = "
        f"{cases['block_reads']['over_raw_httpx']:.2f} (target <= 1.1: "
        f"{'met' if cases['block_reads']['over_raw_httpx'] <= 1.1 else 'NOT met'})",
    ]
    r = cases["connect"]
    lines += [
        "",
        f"Connect round trips (server access log): tiled_core {r['round_trips_tiled_core']} "
        f"{r['requests_tiled_core']} (session counter: {r['session_request_count_tiled_core']}), "
        f"reference {r['round_trips_reference']} {r['requests_reference']}",
        "",
        footer(results),
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def scratch_run(results: dict, prefix: str) -> Iterator[Path]:
    """A temporary directory for a benchmark's servers (removed afterwards); ``results`` gets the
    load averages at the start and the end, and the run's total seconds."""
    start = time.perf_counter()
    results["load_average_start"] = os.getloadavg()
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - start


def footer(results: dict) -> str:
    """The last line of a report: total time and the machine's load."""
    return (
        f"Total benchmark time: {results['total_seconds']:.0f}s (cases {results['cases_seconds']:.0f}s); "
        f"load average {results['load_average_start'][0]:.1f} at start, {results['load_average_end'][0]:.1f} "
        f"at end on {results['config']['cpus']} CPUs"
    )


def save_json(results: dict, path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2, default=list)
        log(f"results written to {path}")


def publish(results: dict, text: str, json_path: str | None) -> None:
    """Print the report; save every sample as JSON when asked."""
    print(text)
    save_json(results, json_path)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def make_parser(description: str, *, repeat: int = 5, quick: str = "16 MiB array, 200 entries") -> argparse.ArgumentParser:
    """The options every benchmark here takes: --repeat, --quick, --json."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--repeat", type=_at_least_one, default=repeat,
                        help="timed runs per case and client (median reported)")
    parser.add_argument("--quick", action="store_true", help=f"small sizes ({quick})")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return parser


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--populate-over-http", action="store_true",
                        help="create the listing nodes with tiled_core over HTTP (about a minute more) "
                             "instead of through tiled's catalog API before the server starts")
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        parser.error("curl is needed for the upper-bound case")
    results = run(args)
    publish(results, report(results), args.json)


if __name__ == "__main__":
    main()
