#!/usr/bin/env python
"""Write benchmark: tiled_core vs the reference ``tiled.client`` on one real server.

Starts ONE ``tiled serve catalog`` (``tiled_core.server.LocalTiledServer``) on
127.0.0.1 and times both clients writing the same data, side by side, in one
run (medians; each repeat rotates which client goes first):

  1. ``write_array`` of a 256 MiB float64 numpy array (4096 x 8192); the
     first repeat's nodes are read back and checked equal to the source
  2. ``write_array`` of the same data as a dask array in 64 chunks of 4 MiB
  3. 2000 small nodes: ``write_array(np.arange(10) * i, key=..., metadata=...)``
     in a loop, by tiled_core, by the reference client, by tiled_core in one
     ``Container.batch()`` per round, and by tiled_core
     forced to its multi-request scheme (create + data + the PUT that clears
     the incomplete mark) to price that mark; written in ``--rounds`` slices
     with the clients taking turns, since a loop of minutes sees the load change
  4. requests per small node, counted in the server's access log
  5. the client's peak traced memory (tracemalloc) while writing case 2 once

``--latency MS`` (20 when given without a value) puts the server behind the
project's test proxy (``tests/_proxy.py``, in a process of its own) adding MS
milliseconds each way, as a pipeline writing to another facility's server
would see it; the clients write through it, and only the small-node cases run.

Besides wall time, the server process's CPU time is recorded per write: with
a busy machine (2 cores shared here) wall times are noisy, and the server's
work is most of the cost of a write.

Usage::

    python benchmarks/bench_writes.py [--repeat 3] [--quick] [--nodes 2000] [--rounds 20] [--skip-big]
        [--latency [MS]] [--json out.json]
"""

from __future__ import annotations

import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_foundation import MiB, AccessLog, compare, log, make_parser, save_json  # noqa: E402

import tiled_core.client.writing._upload as core_upload  # noqa: E402
from tiled_core.client import from_uri as core_from_uri  # noqa: E402
from tiled_core.server import LocalTiledServer  # noqa: E402

from tiled.client import from_uri as ref_from_uri  # noqa: E402

_KEYS = itertools.count()


def fresh_key(prefix: str) -> str:
    return f"{prefix}{next(_KEYS):05d}"


class ServerCPU:
    """CPU seconds the server process has used (user + system), from /proc."""

    def __init__(self, pid: int) -> None:
        self.path = f"/proc/{pid}/stat"
        self.tick = os.sysconf("SC_CLK_TCK")
        self.samples: dict[str, list[float]] = {}

    def now(self) -> float:
        fields = Path(self.path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def measured(self, label: str, function):
        """``function`` wrapped so that each call records the server's CPU time under ``label``."""
        def wrapper():
            start = self.now()
            value = function()
            self.samples.setdefault(label, []).append(self.now() - start)
            return value
        return wrapper

    def medians(self) -> dict[str, float]:
        return {label: statistics.median(values) for label, values in self.samples.items()}


class forced_mark_scheme:
    """tiled_core writing every array with the multi-request scheme (create, data, clear the mark)."""

    def __enter__(self):
        self.saved = core_upload.plan_array_write
        core_upload.plan_array_write = lambda array, source, *limit: (source, True)

    def __exit__(self, *exc):
        core_upload.plan_array_write = self.saved


def write_nodes(container, n: int, start: int = 0) -> None:
    """``n`` small array nodes, as a pipeline writing one result per scan would."""
    for i in range(start, start + n):
        container.write_array(np.arange(10) * i, key=f"n{i:05d}", metadata={"index": i, "name": f"node {i}"})


def interleaved(contenders: dict, n: int, rounds: int, cpu: "ServerCPU") -> dict:
    """Each contender writes ``n`` small nodes in ``rounds`` slices, the contenders taking turns
    (rotating who goes first), so that a change in the machine's load hits them all alike."""
    labels = list(contenders)
    wall = dict.fromkeys(labels, 0.0)
    server = dict.fromkeys(labels, 0.0)
    per_round = max(1, n // rounds)
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            cpu_start, start = cpu.now(), time.perf_counter()
            contenders[label](per_round, r * per_round)
            wall[label] += time.perf_counter() - start
            server[label] += cpu.now() - cpu_start
    nodes = per_round * rounds
    result = {label: wall[label] for label in labels}
    result["speedup"] = wall["reference"] / wall["tiled_core"]
    result["server_cpu"] = server
    result["ms_per_node"] = {label: 1000 * wall[label] / nodes for label in labels}
    result["nodes"] = nodes
    log("  small nodes: " + "  ".join(f"{label} {1000 * wall[label] / nodes:.1f} ms/node "
                                       f"({1000 * server[label] / nodes:.1f} ms server CPU)" for label in labels))
    return result


def write_batched(container, n: int, start: int = 0) -> None:
    """The same nodes through ``Container.batch()`` (creates in order, data overlapping)."""
    with container.batch() as batch:
        for i in range(start, start + n):
            batch.write_array(np.arange(10) * i, key=f"n{i:05d}", metadata={"index": i, "name": f"node {i}"})


def write_marked(container, n: int, start: int = 0) -> None:
    with forced_mark_scheme():
        write_nodes(container, n, start)


def run_cases(server, args, results) -> None:
    link = None
    if args.latency:
        from bench_copy import LinkProxy

        link = LinkProxy(server, args.latency / 1000)
    via = link or server
    ours = core_from_uri(via.uri, api_key=server.api_key)
    ref = ref_from_uri(via.uri, api_key=server.api_key)
    cpu = ServerCPU(server.pid)
    try:
        if not args.skip_big:
            big_cases(ours, ref, cpu, args, results)
        small_cases(server, ours, ref, cpu, args, results["cases"])
    finally:
        ours.context.close()
        ref.context.close()
        if link is not None:
            link.close()


def big_cases(ours, ref, cpu, args, results) -> None:
    import dask.array as da

    cases = results["cases"]
    shape = (512, 8192) if args.quick else (4096, 8192)
    data = np.random.default_rng(0).random(shape)
    nbytes = data.nbytes
    results["config"].update({"shape": shape, "nbytes": nbytes})

    def check_big(our_node, ref_node):
        for name, node in (("tiled_core", our_node), ("reference", ref_node)):
            if not np.array_equal(ours[node.item["id"]].read(), data):
                raise SystemExit(f"the array written by {name} does not read back equal")

    # 1. numpy
    log(f"1. write_array of a {nbytes / MiB:.0f} MiB numpy array")
    cases["big_numpy"] = compare(
        "numpy write", cpu.measured("1 ours", lambda: ours.write_array(data, key=fresh_key("np"))),
        cpu.measured("1 ref", lambda: ref.write_array(data, key=fresh_key("np"))), args.repeat, check=check_big,
    )

    # 2. dask
    lazy = da.from_array(data, chunks=(512, 1024))
    log(f"2. write_array of the same as a dask array in {lazy.npartitions} chunks")
    cases["big_dask"] = compare(
        "dask write", cpu.measured("2 ours", lambda: ours.write_array(lazy, key=fresh_key("da"))),
        cpu.measured("2 ref", lambda: ref.write_array(lazy, key=fresh_key("da"))), args.repeat, check=check_big,
    )
    for name, n in (("big_numpy", 1), ("big_dask", 2)):
        cases[name]["server_cpu"] = {"tiled_core": cpu.medians()[f"{n} ours"], "reference": cpu.medians()[f"{n} ref"]}
        cases[name]["MiB_per_s"] = {k: nbytes / MiB / cases[name][k] for k in ("tiled_core", "reference")}

    # 5. memory
    log("5. client peak traced memory, one dask write each")
    memory = {}
    for label, client in (("tiled_core", ours), ("reference", ref)):
        tracemalloc.start()
        try:
            client.write_array(lazy, key=fresh_key("mem"))
            memory[label] = tracemalloc.get_traced_memory()[1] / MiB
        finally:
            tracemalloc.stop()
    cases["dask_write_peak_MiB"] = memory
    log(f"  {memory}")


def small_cases(server, ours, ref, cpu, args, cases) -> None:
    # 3. small nodes
    log(f"3. {args.nodes} small nodes, in {args.rounds} interleaved rounds")
    ours_parent, ref_parent = ours.create_container(fresh_key("so")), ref.create_container(fresh_key("sr"))
    mark_parent = ours.create_container(fresh_key("sm"))
    batch_parent = ours.create_container(fresh_key("sb"))
    cases["small_nodes"] = interleaved({
        "tiled_core": lambda n, start: write_nodes(ours_parent, n, start),
        "reference": lambda n, start: write_nodes(ref_parent, n, start),
        "tiled_core_batch": lambda n, start: write_batched(batch_parent, n, start),
        "tiled_core_mark": lambda n, start: write_marked(mark_parent, n, start),
    }, args.nodes, args.rounds, cpu)
    cases["small_nodes"]["batch_speedup"] = cases["small_nodes"]["reference"] / cases["small_nodes"]["tiled_core_batch"]

    # 4. requests per small node
    log("4. requests per small node (server access log)")
    access = AccessLog(server)
    counted = 20
    per_node = {}
    for label, function in (("tiled_core", lambda: write_nodes(ours.create_container(fresh_key("co")), counted)),
                            ("reference", lambda: write_nodes(ref.create_container(fresh_key("cr")), counted)),
                            ("tiled_core_batch", lambda: write_batched(ours.create_container(fresh_key("cb")), counted)),
                            ("tiled_core_mark", lambda: write_marked(ours.create_container(fresh_key("cm")), counted))):
        requests, _ = access.count(function)
        per_node[label] = (requests - 1) / counted  # minus the parent container's create
    cases["requests_per_small_node"] = per_node
    log(f"  {per_node}")


def report(results: dict) -> str:
    config, cases = results["config"], results["cases"]
    small, requests = cases["small_nodes"], cases["requests_per_small_node"]
    lines = [
        f"tiled_core vs tiled.client {config['tiled']} writing to one local server"
        + (f" behind a {config['latency_ms']:g} ms-each-way proxy" if config.get("latency_ms") else "")
        + "; big writes: median of "
        f"{config['repeat']}; small nodes: totals over {config['rounds']} interleaved rounds",
        "",
        "| case | tiled_core (s) | reference (s) | speedup (ref/ours) | server CPU ours / ref (s) | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    rows = [("small_nodes", f"3. {small['nodes']} small `write_array`", 1.2)]
    if "big_numpy" in cases:
        size = f"{config['nbytes'] / MiB:.0f} MiB"
        rows[:0] = [("big_numpy", f"1. `write_array` numpy {size}", 2.0),
                    ("big_dask", f"2. `write_array` dask {size}, 64 chunks", None)]
    for name, label, target in rows:
        r = cases[name]
        met = "" if target is None else f">= {target}x: {'met' if r['speedup'] >= target else 'NOT met'}"
        lines.append(f"| {label} | {r['tiled_core']:.2f} | {r['reference']:.2f} | {r['speedup']:.2f}x | "
                     f"{r['server_cpu']['tiled_core']:.2f} / {r['server_cpu']['reference']:.2f} | {met} |")
    batch = small["tiled_core_batch"]
    lines.append(f"| 3b. the same nodes in `Container.batch()` | {batch:.2f} | {small['reference']:.2f} | "
                 f"{small['batch_speedup']:.2f}x | {small['server_cpu']['tiled_core_batch']:.2f} / "
                 f"{small['server_cpu']['reference']:.2f} | >= 2.0x: "
                 f"{'met' if small['batch_speedup'] >= 2.0 else 'NOT met'} |")
    lines += [
        "",
        "Small nodes, per node: "
        + "; ".join(f"{label} {small['ms_per_node'][label]:.1f} ms wall, "
                    f"{1000 * small['server_cpu'][label] / small['nodes']:.1f} ms server CPU, "
                    f"{requests[label]:.1f} requests"
                    for label in ("tiled_core", "reference", "tiled_core_batch", "tiled_core_mark"))
        + ". (`tiled_core_mark`: tiled_core forced to create + data + clear-the-mark.)",
    ]
    if "big_numpy" in cases:
        memory = cases["dask_write_peak_MiB"]
        lines += [
            "",
            f"Throughput, numpy: tiled_core {cases['big_numpy']['MiB_per_s']['tiled_core']:.0f} MiB/s, reference "
            f"{cases['big_numpy']['MiB_per_s']['reference']:.0f} MiB/s; dask: "
            f"{cases['big_dask']['MiB_per_s']['tiled_core']:.0f} vs "
            f"{cases['big_dask']['MiB_per_s']['reference']:.0f} MiB/s.",
            "",
            f"Client peak traced memory writing the dask array: tiled_core {memory['tiled_core']:.0f} MiB, "
            f"reference {memory['reference']:.0f} MiB.",
        ]
    lines += [
        "",
        f"Total {results['total_seconds']:.0f}s; load average {results['load_average_start'][0]:.1f} at start, "
        f"{results['load_average_end'][0]:.1f} at end on {config['cpus']} CPUs.",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = make_parser(__doc__, repeat=3, quick="a 32 MiB array, 200 small nodes")
    parser.add_argument("--rounds", type=int, default=20, help="slices the small nodes are written in, clients taking turns")
    parser.add_argument("--skip-big", action="store_true", help="only the small-node cases")
    parser.add_argument("--nodes", type=int, default=2000, help="small nodes per run")
    parser.add_argument("--latency", metavar="MS", type=float, nargs="?", const=20.0, default=None,
                        help="write through a proxy adding MS ms each way (default 20); small nodes only")
    args = parser.parse_args(argv)
    if args.latency:
        args.skip_big = True
    if args.quick:
        args.nodes = min(args.nodes, 100 if args.latency else 200)  # each node waits 2 round trips in series
    if args.repeat < 1 or args.rounds < 1 or args.nodes < args.rounds:
        parser.error("--repeat and --rounds must be at least 1, and --nodes at least --rounds")
    results = {
        "config": {"repeat": args.repeat, "rounds": args.rounds, "quick": args.quick, "latency_ms": args.latency,
                   "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                   "tiled": __import__("tiled").__version__},
        "cases": {},
        "load_average_start": os.getloadavg(),
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tiled-core-bench-writes-") as directory:
        with LocalTiledServer(Path(directory)) as server:
            log(f"server at {server.uri}")
            run_cases(server, args, results)
    results["load_average_end"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - start
    print(report(results))
    save_json(results, args.json)


if __name__ == "__main__":
    main()
