#!/usr/bin/env python
"""Sparse and awkward benchmark: tiled_core vs the reference ``tiled.client`` on one real server.

Starts ONE ``tiled serve catalog`` (``tiled_core.server.LocalTiledServer``) on
127.0.0.1, writes the data once, then times both clients side by side on the
same nodes and prints a markdown table (median of ``--repeat`` runs; each
repeat runs both clients, alternating which goes first; the first results of
both are checked equal).

Cases:
  1. sparse full read: a 2-D COO array, one block (``c["sparse"].read()``)
  2. sparse slice: the first quarter of its rows (``c["sparse"][:n // 4]``)
  3. sparse in 4 blocks: full read of the same data stored in 4 row blocks
  4. awkward full read: records ``{id, e: var * float64, q: ?float64}``
  5. awkward one field: ``c["awkward"]["e"]`` (the jagged field only)

Usage::

    python benchmarks/bench_families.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import os
import platform
import sys
import time

import awkward as ak
import numpy as np

from bench_foundation import compare, footer, log, make_parser, publish
from tiled_core.client import from_uri as core_from_uri
from tiled_core.server import LocalTiledServer
from tiled_core.structures import BuiltinDtype, SparseStructure

from tiled.client import from_uri as ref_from_uri

SPARSE_SHAPE = (20_000, 20_000)
SPARSE_BLOCKS = 4


def sparse_data(nnz: int):
    rng = np.random.default_rng(0)
    linear = np.unique(rng.integers(0, SPARSE_SHAPE[0] * SPARSE_SHAPE[1], nnz))
    return np.stack(np.unravel_index(linear, SPARSE_SHAPE)), rng.random(len(linear))


def awkward_data(rows: int) -> ak.Array:
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 8, rows)
    q = ak.mask(ak.Array(rng.random(rows)), rng.random(rows) > 0.1)
    return ak.zip({"id": np.arange(rows), "e": ak.unflatten(rng.random(lengths.sum()), lengths), "q": q},
                  depth_limit=1)


def populate(server: LocalTiledServer, nnz: int, rows: int) -> dict:
    """'sparse' and 'awkward' by the reference client; 'sparse4' (row blocks) by tiled_core's block writes."""
    coords, data = sparse_data(nnz)
    array = awkward_data(rows)
    ref = ref_from_uri(server.uri, api_key=server.api_key)
    try:
        ref.write_sparse(coords, data, SPARSE_SHAPE, key="sparse")
        ref.write_awkward(array, key="awkward")
    finally:
        ref.context.close()
    ours = core_from_uri(server.uri, api_key=server.api_key)
    try:
        step = SPARSE_SHAPE[0] // SPARSE_BLOCKS
        structure = SparseStructure(chunks=((step,) * SPARSE_BLOCKS, (SPARSE_SHAPE[1],)), shape=SPARSE_SHAPE,
                                    data_type=BuiltinDtype.from_numpy_dtype(data.dtype))
        source = {"structure_family": "sparse", "structure": structure.to_json(), "mimetype": None,
                  "parameters": {}, "properties": {}, "assets": [], "management": "writable", "id": None}
        blocked = ours.new("sparse", [source], key="sparse4")
        for i in range(SPARSE_BLOCKS):
            inside = (coords[0] >= i * step) & (coords[0] < (i + 1) * step)
            blocked.write_block(coords[:, inside] - np.array([[i * step], [0]]), data[inside], (i, 0))
    finally:
        ours.context.close()
    return {"nnz": int(len(data)), "sparse_MB": (coords.nbytes + data.nbytes) / 1e6,
            "awkward_rows": rows, "awkward_MB": array.nbytes / 1e6}


def same_coo(x, y) -> None:
    if x.shape != y.shape or not (np.array_equal(x.coords, y.coords) and np.array_equal(x.data, y.data)):
        raise SystemExit("tiled_core and the reference client read different sparse data")


def same_awkward(x, y) -> None:
    if not ak.array_equal(x, y):
        raise SystemExit("tiled_core and the reference client read different awkward data")


def run_cases(server, repeat: int) -> dict:
    ours = core_from_uri(server.uri, api_key=server.api_key)
    ref = ref_from_uri(server.uri, api_key=server.api_key)
    quarter = SPARSE_SHAPE[0] // 4
    cases = {}
    try:
        # Warm-up: numba compiles sparse's kernels on first use, in the server and in the reference client.
        ref["sparse"][:10], ours["sparse"][:10], ref["sparse4"].read(), ref["awkward"][:1]
        log("1. sparse full read")
        cases["sparse_full"] = compare("sparse full", lambda: ours["sparse"].read(), lambda: ref["sparse"].read(),
                                       repeat, check=same_coo)
        log("2. sparse slice")
        cases["sparse_slice"] = compare("sparse slice", lambda: ours["sparse"][:quarter],
                                        lambda: ref["sparse"][:quarter], repeat, check=same_coo)
        log(f"3. sparse in {SPARSE_BLOCKS} blocks")
        cases["sparse_blocks"] = compare("sparse blocks", lambda: ours["sparse4"].read(),
                                         lambda: ref["sparse4"].read(), repeat, check=same_coo)
        log("4. awkward full read")
        cases["awkward_full"] = compare("awkward full", lambda: ours["awkward"].read(),
                                        lambda: ref["awkward"].read(), repeat, check=same_awkward)
        log("5. awkward one field")
        cases["awkward_field"] = compare("awkward field", lambda: ours["awkward"]["e"],
                                         lambda: ref["awkward"]["e"], repeat, check=same_awkward)
    finally:
        ours.context.close()
        ref.context.close()
    return cases


LABELS = {
    "sparse_full": "1. sparse `c['sparse'].read()`",
    "sparse_slice": "2. sparse `c['sparse'][:5000]`",
    "sparse_blocks": f"3. sparse in {SPARSE_BLOCKS} blocks `.read()`",
    "awkward_full": "4. awkward `c['awkward'].read()`",
    "awkward_field": "5. awkward field `c['awkward']['e']`",
}


def report(results: dict) -> str:
    data = results["data"]
    lines = [
        f"tiled_core vs tiled.client {results['config']['tiled']} — one local server, median of "
        f"{results['config']['repeat']}; sparse {SPARSE_SHAPE} with {data['nnz']:,} values "
        f"({data['sparse_MB']:.0f} MB of coords and data); awkward {data['awkward_rows']:,} records "
        f"({data['awkward_MB']:.0f} MB)",
        "",
        "| case | tiled_core (s) | reference (s) | speedup (ref/ours) |",
        "|---|---:|---:|---:|",
    ]
    for name, label in LABELS.items():
        r = results["cases"][name]
        lines.append(f"| {label} | {r['tiled_core']:.3f} | {r['reference']:.3f} | {r['speedup']:.2f}x |")
    lines += ["", footer(results)]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = make_parser(__doc__, quick="200k sparse values, 100k records").parse_args(argv)
    nnz, rows = (200_000, 100_000) if args.quick else (1_000_000, 300_000)
    start = time.perf_counter()
    results: dict = {
        "config": {"repeat": args.repeat, "quick": args.quick, "python": sys.version.split()[0],
                   "platform": platform.platform(), "cpus": os.cpu_count(), "tiled": __import__("tiled").__version__},
        "load_average_start": os.getloadavg(),
    }
    with LocalTiledServer() as server:
        log(f"server at {server.uri}")
        results["data"] = populate(server, nnz, rows)
        log(f"wrote the data in {time.perf_counter() - start:.1f}s")
        timings = time.perf_counter()
        results["cases"] = run_cases(server, args.repeat)
        results["cases_seconds"] = time.perf_counter() - timings
    results["load_average_end"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - start
    publish(results, report(results), args.json)


if __name__ == "__main__":
    main()
