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

Every copy goes into a fresh container on the destination, deleted afterwards
(untimed). The first copy of each case is checked against the source. Besides
wall time, the CPU seconds each copy costs the source server, the destination
server and this client are read from ``/proc``: on a busy machine they show
where the time goes far more steadily than wall time does.

Usage::

    python benchmarks/bench_copy.py [--repeat 1] [--quick] [--json out.json] [--no-dask]
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
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
TARGET = 3.0


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
    def __init__(self, source: LocalTiledServer, dest: LocalTiledServer, dask_client) -> None:
        self.source, self.dest, self.dask_client = source, dest, dask_client
        self.core_source = core_from_uri(source.uri, api_key=source.api_key)
        self.core_dest = core_from_uri(dest.uri, api_key=dest.api_key)
        self.ref_source = ref_from_uri(source.uri, api_key=source.api_key)
        self.ref_dest = ref_from_uri(dest.uri, api_key=dest.api_key)

    def close(self) -> None:
        for client in (self.core_source, self.core_dest, self.ref_source, self.ref_dest):
            client.context.close()

    def run(self, contender: str, case: str) -> tuple[dict, str]:
        """Copy ``case`` once with ``contender`` into a fresh container; returns (measurements, its key)."""
        key = f"{case}-{contender}-{uuid.uuid4().hex[:6]}"
        self.core_dest.create_container(key)
        if contender == "reference":
            source, dest = self.ref_source[case], self.ref_dest[key]
            action = lambda: ref_copy(source, dest)  # noqa: E731
        else:
            source, dest = self.core_source[case], self.core_dest[key]
            client = self.dask_client if contender == "tiled_core_dask" else None
            ordered = contender != "tiled_core_unordered"
            action = lambda: core_copy(source, dest, progress=False, dask_client=client,  # noqa: E731
                                       preserve_order=ordered)
        cpu = (process_cpu(self.source.pid), process_cpu(self.dest.pid), own_cpu())
        start = time.perf_counter()
        action()
        seconds = time.perf_counter() - start
        after = (process_cpu(self.source.pid), process_cpu(self.dest.pid), own_cpu())
        return {"seconds": seconds, "source_cpu": after[0] - cpu[0], "dest_cpu": after[1] - cpu[1],
                "client_cpu": after[2] - cpu[2]}, key

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


def run_cases(bench: Bench, contenders: list[str], repeat: int) -> dict:
    cases: dict = {}
    for case in ("big", "many"):
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
                    f"dest {measured['dest_cpu']:.1f}, client {measured['client_cpu']:.1f})")
        result = {c: {m: statistics.median(s[m] for s in samples[c]) for m in samples[c][0]} for c in contenders}
        for c in contenders:
            result[c]["speedup"] = result["reference"]["seconds"] / result[c]["seconds"]
        result["samples"] = samples
        cases[case] = result
    return cases


LABELS = {"big": "{mib} MiB array, {blocks} chunks", "many": "container of {n} small nodes"}
NAMES = {"tiled_core": "tiled_core", "tiled_core_unordered": "tiled_core, preserve_order=False",
         "tiled_core_dask": "tiled_core, 2-worker LocalCluster", "reference": "reference"}


def report(results: dict) -> str:
    config, cases = results["config"], results["cases"]
    lines = [
        f"tiled_core.client.sync.copy vs tiled.client.sync.copy {config['tiled']} — two local servers, "
        f"median of {config['repeat']}; array {tuple(config['shape'])} float64 ({config['nbytes'] / MiB:.0f} MiB, "
        f"{config['blocks']} chunks); {config['n_nodes']} small nodes",
        "",
        "| case | contender | wall (s) | speedup vs reference | CPU s: source server | dest server | client | target |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for case in ("big", "many"):
        label = LABELS[case].format(n=config["n_nodes"], mib=config["nbytes"] // MiB, blocks=config["blocks"])
        for contender in config["contenders"]:
            r = cases[case][contender]
            target = ""
            if contender != "reference":
                target = f">= {TARGET:.0f}x: {'met' if r['speedup'] >= TARGET else 'NOT met'}"
            lines.append(f"| {label} | {NAMES[contender]} | {r['seconds']:.2f} | {r['speedup']:.2f}x | "
                         f"{r['source_cpu']:.1f} | {r['dest_cpu']:.1f} | {r['client_cpu']:.1f} | {target} |")
    lines += ["", footer(results)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.set_defaults(repeat=1)
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster copies")
    args = parser.parse_args(argv)
    if args.quick:
        shape, chunks, n_nodes = (1024, 4096), (128, 512), 200
    else:
        shape, chunks, n_nodes = (4096, 8192), (512, 1024), 2000
    contenders = ["tiled_core", "reference", "tiled_core_unordered"] + ([] if args.no_dask else ["tiled_core_dask"])
    results: dict = {
        "config": {
            "repeat": args.repeat, "shape": shape, "chunks": chunks, "n_nodes": n_nodes,
            "blocks": (shape[0] // chunks[0]) * (shape[1] // chunks[1]), "nbytes": shape[0] * shape[1] * 8,
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
            if not args.no_dask:
                from distributed import Client, LocalCluster

                cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
                # Not the default scheduler: the reference client computes small dask graphs of its own,
                # which must stay on its threads (a cluster made them ~10x slower here).
                dask_client = Client(cluster, set_as_default=False)
            bench = Bench(source, dest, dask_client)
            try:
                cases_start = time.perf_counter()
                results["cases"] = run_cases(bench, contenders, args.repeat)
                results["cases_seconds"] = time.perf_counter() - cases_start
            finally:
                bench.close()
                if dask_client is not None:
                    dask_client.close()
                    cluster.close()
    results["total_seconds"] = time.perf_counter() - total_start
    results["load_average_end"] = os.getloadavg()
    publish(results, report(results), args.json)


if __name__ == "__main__":
    main()
