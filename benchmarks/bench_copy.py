#!/usr/bin/env python
"""Copy benchmark: ``tiled_core.client.sync.copy`` vs the reference ``tiled.client.sync.copy``.

Starts TWO ``tiled serve catalog`` processes (source and destination, via
``tiled_core.server.LocalTiledServer``) on 127.0.0.1, fills the source, then
copies the same containers with both clients in the same run:

  1. "big": a container holding a 256 MiB float64 array, shape (4096, 8192),
     in 64 chunks of 512x1024 (written by the reference client from
     ``dask.array.random.random``)
  2. "many": a container holding a container of 2000 small nodes (16-element
     float64 arrays with a few metadata keys), created through tiled's catalog
     API before the source server starts
  3. the same two copies with ``copy(..., dask_client=...)`` on a 2-worker
     ``distributed.LocalCluster`` (worker processes read the source and write
     the destination; the driver only lists and creates nodes), and with
     ``preserve_order=False`` (creates in one container run concurrently, so
     the children's order may differ from the source's)

``--latency MS`` (20 when given without a value) runs the slow-link case
set instead: source AND destination servers each behind a proxy
(``tests/_proxy.py`` in a process of its own, loopback only) that adds MS
milliseconds each way (2 x MS per round trip, per connection: concurrent
connections overlap), as between two facilities; the contenders are
tiled_core, ``preserve_order=False`` and the reference (no LocalCluster).
The proxies also count the round trips and the most requests in flight at
once.

Every copy goes into a fresh container on the destination, deleted afterwards
(untimed). The first copy of each case is checked against the source. Besides
wall time, the CPU seconds each copy costs the source server, the destination
server and this client are read from ``/proc``: on a busy machine they show
where the time goes far more steadily than wall time does.

Usage::

    python benchmarks/bench_copy.py [--repeat 1] [--quick] [--json out.json] [--no-dask] [--latency [MS]]
        [--case big|many] [--nodes N]
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench_foundation import footer, log, make_parser, publish
from bench_tables import own_cpu, process_cpu

from tiled_core.client import from_uri as core_from_uri
from tiled_core.client.sync import copy as core_copy
from tiled_core.server import LocalTiledServer

from tiled.client import from_uri as ref_from_uri
from tiled.client.sync import copy as ref_copy

MiB = 1 << 20
#: Loopback targets: the 256 MiB array at least 2.5x the reference, the 2,000 small nodes 2x.
TARGETS = {"big": 2.5, "many": 2.0}
#: The slow link's targets: the 2,000-node copy at least 4x the reference, the array 3x.
LATENCY_TARGETS = {"big": 3.0, "many": 4.0}
PROXY = Path(__file__).resolve().parent.parent / "tests" / "_proxy.py"


class LinkProxy:
    """``tests/_proxy.py`` in a process of its own (its CPU is not the client's) adding ``latency`` s each way."""

    def __init__(self, server: LocalTiledServer, latency: float) -> None:
        self.server = server
        self.process = subprocess.Popen([sys.executable, str(PROXY), str(server.port), "--latency", str(latency)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())
        self.pid = self.process.pid
        self.uri = f"http://127.0.0.1:{self.port}/api/v1"
        self.api_key = server.api_key

    def command(self, line: str) -> dict:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- population ------------------------------------------------------------------
def prepopulate_small_nodes(directory: Path, n_nodes: int) -> None:
    """``many/nodes/n00000..``: small arrays created with tiled's catalog API before the server starts.

    Creating them over HTTP costs the server ~30 ms of CPU each (a minute or
    more for 2000); the stored nodes are the same.
    """
    from tiled.catalog import from_uri as catalog_from_uri
    from tiled.structures.array import ArrayStructure
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import DataSource, Management

    async def create() -> None:
        catalog = catalog_from_uri(f"sqlite:///{directory / 'catalog.db'}", writable_storage=[str(directory / "data")],
                                   init_if_not_exists=True)
        await catalog.startup()
        try:
            many = await catalog.create_node(StructureFamily.container, {"description": "copy benchmark"}, key="many")
            nodes = await many.create_node(StructureFamily.container, {"n": n_nodes}, key="nodes")
            for i in range(n_nodes):
                values = np.arange(16, dtype="f8") + i
                source = DataSource(structure_family=StructureFamily.array, structure=ArrayStructure.from_array(values),
                                    mimetype="application/x-zarr", management=Management.writable)
                node = await nodes.create_node(StructureFamily.array, {"index": i, "group": i % 10, "tag": f"t{i % 7}"},
                                               key=f"n{i:05d}", data_sources=[source])
                adapter = await node.get_adapter()
                adapter.write(values)
        finally:
            await catalog.shutdown()

    (directory / "data").mkdir(parents=True, exist_ok=True)
    asyncio.run(create())


def write_big(server: LocalTiledServer, shape, chunks) -> None:
    import dask.array as da

    ref = ref_from_uri(server.uri, api_key=server.api_key)
    try:
        ref.create_container("big").write_array(da.random.random(shape, chunks=chunks), key="array")
    finally:
        ref.context.close()


# -- one timed copy ------------------------------------------------------------------
class Bench:
    def __init__(self, source: LocalTiledServer, dest: LocalTiledServer, dask_client, links=None) -> None:
        """``links``: ``(source proxy, dest proxy)`` the copies go through (setup and checks do not)."""
        self.source, self.dest, self.dask_client, self.links = source, dest, dask_client, links
        self.core_source = core_from_uri(source.uri, api_key=source.api_key)
        self.core_dest = core_from_uri(dest.uri, api_key=dest.api_key)
        via_source, via_dest = links or (source, dest)
        self.copy_source = core_from_uri(via_source.uri, api_key=source.api_key)
        self.copy_dest = core_from_uri(via_dest.uri, api_key=dest.api_key)
        self.ref_source = ref_from_uri(via_source.uri, api_key=source.api_key)
        self.ref_dest = ref_from_uri(via_dest.uri, api_key=dest.api_key)

    def close(self) -> None:
        for client in (self.core_source, self.core_dest, self.copy_source, self.copy_dest, self.ref_source,
                       self.ref_dest):
            client.context.close()

    def run(self, contender: str, case: str) -> tuple[dict, str]:
        """Copy ``case`` once with ``contender`` into a fresh container; returns (measurements, its key)."""
        key = f"{case}-{contender}-{uuid.uuid4().hex[:6]}"
        self.core_dest.create_container(key)
        if contender == "reference":
            source, dest = self.ref_source[case], self.ref_dest[key]
            action = lambda: ref_copy(source, dest)  # noqa: E731
        else:
            source, dest = self.copy_source[case], self.copy_dest[key]
            client = self.dask_client if contender == "tiled_core_dask" else None
            ordered = contender != "tiled_core_unordered"
            action = lambda: core_copy(source, dest, progress=False, dask_client=client,  # noqa: E731
                                       preserve_order=ordered)
        for link in self.links or ():
            link.command("clear")
        proxies = [link.pid for link in self.links or ()]
        cpu = (process_cpu(self.source.pid), process_cpu(self.dest.pid), own_cpu(), sum(map(process_cpu, proxies)))
        load = os.getloadavg()[0]
        start = time.perf_counter()
        action()
        seconds = time.perf_counter() - start
        after = (process_cpu(self.source.pid), process_cpu(self.dest.pid), own_cpu(), sum(map(process_cpu, proxies)))
        measured = {"seconds": seconds, "source_cpu": after[0] - cpu[0], "dest_cpu": after[1] - cpu[1],
                    "client_cpu": after[2] - cpu[2], "load": (load + os.getloadavg()[0]) / 2}
        # The busiest server's CPU over the wall time: near 1, that server (one process) is the bottleneck.
        measured["busiest_share"] = max(measured["source_cpu"], measured["dest_cpu"]) / seconds
        if self.links:
            stats = [link.command("stats") for link in self.links]
            measured["proxy_cpu"] = after[3] - cpu[3]
            measured["round_trips"] = sum(s["requests"] for s in stats)
            measured["peak_in_flight"] = max(s["peak_in_flight"] for s in stats)
        return measured, key

    def check(self, case: str, key: str, ordered: bool) -> None:
        """The copy holds what the source holds (checked once per contender)."""
        if case == "big":
            np.testing.assert_array_equal(self.core_dest[key]["array"].read(), self.core_source["big"]["array"].read())
        else:
            copied, original = self.core_dest[key]["nodes"], self.core_source["many"]["nodes"]
            if ordered:
                assert list(copied) == list(original), "keys differ"
            else:
                assert sorted(copied) == sorted(original), "keys differ"
            for name in (original.keys().first(), original.keys().last()):
                np.testing.assert_array_equal(copied[name].read(), original[name].read())
                assert dict(copied[name].metadata) == dict(original[name].metadata)

    def drop(self, key: str) -> None:
        self.core_dest.delete(key, recursive=True)


def run_cases(bench: Bench, contenders: list[str], repeat: int, units: dict[str, int]) -> dict:
    cases: dict = {}
    for case in units:
        samples: dict[str, list[dict]] = {c: [] for c in contenders}
        for i in range(repeat):
            order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
            for contender in order:
                log(f"  {case}: {contender} (repeat {i + 1}/{repeat}) ...")
                measured, key = bench.run(contender, case)
                if i == 0:
                    bench.check(case, key, ordered=contender != "tiled_core_unordered")
                bench.drop(key)
                samples[contender].append(measured)
                log(f"    {measured['seconds']:.2f}s (CPU s: source {measured['source_cpu']:.1f}, "
                    f"dest {measured['dest_cpu']:.1f}, client {measured['client_cpu']:.1f}; "
                    f"load {measured['load']:.1f})")
        result = {c: {m: statistics.median(s[m] for s in samples[c]) for m in samples[c][0]} for c in contenders}
        for c in contenders:
            result[c]["speedup"] = result["reference"]["seconds"] / result[c]["seconds"]
            if "round_trips" in result[c]:
                result[c]["round_trips_per_unit"] = result[c]["round_trips"] / units[case]
        result["samples"] = samples
        cases[case] = result
    return cases


LABELS = {"big": "{mib} MiB array, {blocks} chunks", "many": "container of {n} small nodes"}
NAMES = {"tiled_core": "tiled_core", "tiled_core_unordered": "tiled_core, preserve_order=False",
         "tiled_core_dask": "tiled_core, 2-worker LocalCluster", "reference": "reference"}


def report(results: dict) -> str:
    config, cases = results["config"], results["cases"]
    latency = config.get("latency_ms")
    where = (f"source and destination each behind a {latency:g} ms-each-way proxy ({2 * latency:g} ms per round trip)"
             if latency else "two local servers")
    lines = [
        f"tiled_core.client.sync.copy vs tiled.client.sync.copy {config['tiled']} — {where}, "
        f"median of {config['repeat']}; array {tuple(config['shape'])} float64 ({config['nbytes'] / MiB:.0f} MiB, "
        f"{config['blocks']} chunks); {config['n_nodes']} small nodes",
        "",
    ]
    head = "| case | contender | wall (s) | speedup vs reference | CPU s: source server | dest server | client |"
    rule = "|---|---|---:|---:|---:|---:|---:|"
    if latency:
        head += " proxies | round trips per node/chunk | most in flight |"
        rule += "---:|---:|---:|"
    lines += [head + " busiest server / wall | load | target |", rule + "---:|---:|---|"]
    for case in cases:
        label = LABELS[case].format(n=config["n_nodes"], mib=config["nbytes"] // MiB, blocks=config["blocks"])
        goal = (LATENCY_TARGETS if latency else TARGETS)[case]
        for contender in config["contenders"]:
            r = cases[case][contender]
            target = ""
            if contender != "reference":
                target = f">= {goal:g}x: {'met' if r['speedup'] >= goal else 'NOT met'}"
            row = (f"| {label} | {NAMES[contender]} | {r['seconds']:.2f} | {r['speedup']:.2f}x | "
                   f"{r['source_cpu']:.1f} | {r['dest_cpu']:.1f} | {r['client_cpu']:.1f} |")
            if latency:
                row += f" {r['proxy_cpu']:.1f} | {r['round_trips_per_unit']:.2f} | {r['peak_in_flight']:.0f} |"
            lines.append(row + f" {r['busiest_share']:.0%} | {r['load']:.1f} | {target} |")
    lines += ["", footer(results)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.set_defaults(repeat=1)
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster copies")
    parser.add_argument("--latency", metavar="MS", type=float, nargs="?", const=20.0, default=None,
                        help="the slow-link case set: both servers behind proxies adding MS ms each way (default 20)")
    parser.add_argument("--case", choices=("big", "many"), action="append",
                        help="run only this case (repeatable; default both)")
    parser.add_argument("--nodes", type=int, help="small nodes in the 'many' case (default 2000, quick 100 or 50)")
    args = parser.parse_args(argv)
    if args.quick:
        # The slow link's quick set is smaller still: the reference pays every round trip in series.
        # (16 MiB, still 64 chunks: the round trips per chunk are what the link costs), under 2 minutes.
        shape, chunks, n_nodes = ((512, 4096), (64, 512), 50) if args.latency else ((1024, 4096), (128, 512), 100)
    else:
        shape, chunks, n_nodes = (4096, 8192), (512, 1024), 2000
    n_nodes = args.nodes or n_nodes
    no_dask = args.no_dask or args.latency is not None
    contenders = ["tiled_core", "reference", "tiled_core_unordered"] + ([] if no_dask else ["tiled_core_dask"])
    blocks = (shape[0] // chunks[0]) * (shape[1] // chunks[1])
    results: dict = {
        "config": {
            "repeat": args.repeat, "shape": shape, "chunks": chunks, "n_nodes": n_nodes,
            "blocks": blocks, "nbytes": shape[0] * shape[1] * 8, "latency_ms": args.latency,
            "contenders": contenders, "python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count(), "tiled": __import__("tiled").__version__,
        },
        "load_average_start": os.getloadavg(),
    }
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        source_dir = Path(tmp) / "source"
        log(f"creating {n_nodes} small nodes through the catalog API ...")
        prepopulate_small_nodes(source_dir, n_nodes)
        with LocalTiledServer(source_dir) as source, LocalTiledServer(Path(tmp) / "dest") as dest:
            log(f"writing the {shape} array ...")
            write_big(source, shape, chunks)
            cluster = dask_client = None
            if not no_dask:
                from distributed import Client, LocalCluster

                cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
                # Not the default scheduler: the reference client computes small dask graphs of its own,
                # which must stay on its threads (a cluster made them ~10x slower here).
                dask_client = Client(cluster, set_as_default=False)
            links = None
            if args.latency is not None:
                links = (LinkProxy(source, args.latency / 1000), LinkProxy(dest, args.latency / 1000))
            bench = Bench(source, dest, dask_client, links)
            try:
                cases_start = time.perf_counter()
                units = {"big": blocks, "many": n_nodes}
                units = {case: units[case] for case in args.case or units}
                results["cases"] = run_cases(bench, contenders, args.repeat, units)
                results["cases_seconds"] = time.perf_counter() - cases_start
            finally:
                bench.close()
                for link in links or ():
                    link.close()
                if dask_client is not None:
                    dask_client.close()
                    cluster.close()
    results["total_seconds"] = time.perf_counter() - total_start
    results["load_average_end"] = os.getloadavg()
    publish(results, report(results), args.json)


if __name__ == "__main__":
    main()
