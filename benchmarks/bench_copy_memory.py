#!/usr/bin/env python
"""Copy memory benchmark: the client's peak memory while ``sync.copy`` moves a 1 GiB array.

Starts two ``tiled serve catalog`` processes on 127.0.0.1 (via
``tiled_core.server.LocalTiledServer``), writes a 1 GiB float64 array (4 MiB
chunks) to the first, then copies it to the second with tiled_core's
``sync.copy`` (default memory budget, ``max_memory`` = 256 MiB) and with the
reference ``tiled.client.sync.copy``, one after the other.

For each copy it reports how much the process's peak resident memory rose
above what it held before the copy (``VmHWM`` from ``/proc/self/status``,
reset before the copy through ``/proc/self/clear_refs``) and the wall time,
and checks the copy (its sum against the source's). Each copy runs in a fresh
process. Target: tiled_core under 256 MiB.

Usage::

    python benchmarks/bench_copy_memory.py [--quick] [--json out.json]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from bench_foundation import footer, log, make_parser, publish, scratch_run

from tiled_core.client import from_uri as core_from_uri
from tiled_core.client.sync import copy as core_copy
from tiled_core.server import LocalTiledServer

from tiled.client import from_uri as ref_from_uri
from tiled.client.sync import copy as ref_copy

MiB = 1 << 20
TARGET = 256 * MiB


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def peak_rise(action) -> tuple[float, int]:
    """``(seconds, bytes)``: ``action``'s wall time and how far it raised this process's peak RSS."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    return seconds, (_status_kib("VmHWM") - before) * 1024


def copy_in_child(contender: str, source: LocalTiledServer, dest: LocalTiledServer, key: str) -> dict:
    """Copy 'big' into ``key`` with ``contender`` in a fresh process (nothing left over from the other
    copy or from writing the source); its wall time and peak memory rise."""
    environment = {**os.environ, "SOURCE_KEY": source.api_key, "DEST_KEY": dest.api_key}
    completed = subprocess.run([sys.executable, __file__, "--child", contender, source.uri, dest.uri, key],
                               env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"the {contender} copy failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child(contender: str, source_uri: str, dest_uri: str, key: str) -> None:
    """Runs in the child process: connect, copy, print the measurement as JSON."""
    if contender == "tiled_core":
        src = core_from_uri(source_uri, api_key=os.environ["SOURCE_KEY"])
        dst = core_from_uri(dest_uri, api_key=os.environ["DEST_KEY"])
        action = lambda: core_copy(src, dst[key], progress=False)  # noqa: E731
    else:
        src = ref_from_uri(source_uri, api_key=os.environ["SOURCE_KEY"])
        dst = ref_from_uri(dest_uri, api_key=os.environ["DEST_KEY"])
        action = lambda: ref_copy(src, dst[key])  # noqa: E731
    seconds, rise = peak_rise(action)
    print(json.dumps({"seconds": seconds, "peak_rise": rise}))


def run(args) -> dict:
    shape = (2048, 16384) if args.quick else (8192, 16384)  # 256 MiB or 1 GiB of float64
    chunks = (32, 16384)  # 4 MiB chunks, as a detector writes whole frames
    nbytes = shape[0] * shape[1] * 8
    results: dict = {"config": {"quick": args.quick, "shape": shape, "chunks": chunks, "nbytes": nbytes,
                                "tiled": __import__("tiled").__version__, "cpus": os.cpu_count()},
                     "cases": {}}
    with scratch_run(results, "tiled-core-bench-memory-") as directory:
        with LocalTiledServer(directory / "source") as source, LocalTiledServer(directory / "dest") as dest:
            import dask.array as da

            writer = core_from_uri(source.uri, api_key=source.api_key)
            start = time.perf_counter()
            writer.write_array(da.random.random(shape, chunks=chunks), key="big")
            log(f"wrote 'big' {shape} ({nbytes / MiB:.0f} MiB) in {time.perf_counter() - start:.1f}s")
            expected_sum = writer["big"].read().sum()
            cases_start = time.perf_counter()
            checker = core_from_uri(dest.uri, api_key=dest.api_key)
            for contender in ("tiled_core", "reference"):
                key = f"{contender}-{uuid.uuid4().hex[:6]}"
                checker.create_container(key)
                log(f"  {contender} ...")
                measured = copy_in_child(contender, source, dest, key)
                if not np.isclose(checker[key]["big"].read().sum(), expected_sum):
                    raise SystemExit(f"{contender}'s copy differs from the source")
                checker.delete(key, recursive=True)
                results["cases"][contender] = measured
                log(f"    {measured['seconds']:.1f}s, peak memory +{measured['peak_rise'] / MiB:.0f} MiB")
            checker.context.close()
            writer.context.close()
            results["cases_seconds"] = time.perf_counter() - cases_start
    return results


def report(results: dict) -> str:
    config, cases = results["config"], results["cases"]
    lines = [f"sync.copy of a {config['nbytes'] / MiB:.0f} MiB float64 array {tuple(config['shape'])} in "
             f"{config['chunks']} chunks between two local servers (tiled {config['tiled']}): "
             "the client's peak memory above what it held before", "",
             "| contender | wall (s) | peak memory rise (MiB) | target |", "|---|---:|---:|---|"]
    for contender, r in cases.items():
        target = ""
        if contender == "tiled_core":
            target = f"< {TARGET // MiB} MiB: {'met' if r['peak_rise'] < TARGET else 'NOT met'}"
        lines.append(f"| {contender} | {r['seconds']:.1f} | {r['peak_rise'] / MiB:.0f} | {target} |")
    lines += ["", footer(results)]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:])
        return
    parser = make_parser(__doc__, repeat=1, quick="256 MiB array")
    args = parser.parse_args(argv)
    results = run(args)
    publish(results, report(results), args.json)


if __name__ == "__main__":
    main()
