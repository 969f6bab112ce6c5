#!/usr/bin/env python
"""Where the time of one small-node write and of one copied chunk goes.

Starts two real servers (``LocalTiledServer``) on 127.0.0.1 and, one request
at a time, records for each HTTP request: the client's wall time, the
server's CPU seconds (``/proc``), the server's own time in the application
(its ``Server-Timing: app`` header; app time minus CPU is time the server
spent waiting: database commits, disk, threads), and the client's CPU.

  1. small node: ``write_array(np.arange(10) * i, key=..., metadata=...)``,
     by tiled_core and by the reference client (``--nodes`` each, alternating)
  2. one copied chunk: a 4 MiB block (512 x 1024 float64) read from the
     source server and written to the destination (``GET /array/block`` then
     ``PUT /array/block``), as a copy moves it

Means per request kind are printed as a markdown table (progress on stderr).

Usage::

    python benchmarks/bench_breakdown.py [--nodes 100] [--chunks 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from tiled_core.client import from_uri as core_from_uri
from tiled_core.server import LocalTiledServer

from tiled.client import from_uri as ref_from_uri

_APP = re.compile(r"app;dur=([0-9.]+)")
SETTLE = 0.01  # seconds after each answer, so the server's CPU for that request has been spent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Recorder:
    """Wraps ``httpx.Client.send`` (both clients use httpx for these requests) to time each request."""

    def __init__(self, pids: dict[int, int]) -> None:
        self.pids = pids  # port -> server pid
        self.rows: list[dict] = []
        self.label = ""
        self._send = httpx.Client.send

    def __enter__(self) -> "Recorder":
        recorder = self

        def send(client, request, **kwargs):
            pid = recorder.pids[request.url.port]
            cpu0, own0, wall0 = server_cpu(pid), time.process_time(), time.perf_counter()
            response = recorder._send(client, request, **kwargs)
            response.read()
            wall = time.perf_counter() - wall0
            own = time.process_time() - own0
            time.sleep(SETTLE)
            match = _APP.search(response.headers.get("server-timing", ""))
            recorder.rows.append({
                "who": recorder.label, "request": f"{request.method} {_route(request.url.path)}",
                "wall": wall, "server_cpu": server_cpu(pid) - cpu0, "client_cpu": own,
                "server_app": float(match.group(1)) / 1000 if match else None,
            })
            return response

        httpx.Client.send = send
        return self

    def __exit__(self, *exc) -> None:
        httpx.Client.send = self._send


def _route(path: str) -> str:
    parts = path.split("/api/v1/", 1)[-1].split("/")
    return "/" + "/".join(parts[:2] if parts[0] in ("array", "table") else parts[:1])


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["who"], row["request"]), []).append(row)
    out = []
    for (who, request), items in groups.items():
        if not who:
            continue  # setting up (containers, source data)

        def mean(name):
            # means: /proc counts CPU in 10 ms ticks, so a median of one request's ticks says little
            values = [item[name] for item in items if item[name] is not None]
            return statistics.fmean(values) if values else None
        out.append({"who": who, "request": request, "n": len(items), **{name: mean(name) for name in
                                                                          ("wall", "server_cpu", "server_app", "client_cpu")}})
    return out


def table(summary: list[dict]) -> str:
    def ms(value):
        return "-" if value is None else f"{1000 * value:.1f}"
    lines = ["| case | request | n | wall ms | server CPU ms | server in app ms | server waiting ms | client CPU ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in summary:
        waiting = None if row["server_app"] is None else max(0.0, row["server_app"] - row["server_cpu"])
        lines.append(f"| {row['who']} | {row['request']} | {row['n']} | {ms(row['wall'])} | {ms(row['server_cpu'])} | "
                     f"{ms(row['server_app'])} | {ms(waiting)} | {ms(row['client_cpu'])} |")
    return "\n".join(lines)


def small_nodes(server, recorder: Recorder, n: int) -> None:
    ours = core_from_uri(server.uri, api_key=server.api_key)
    ref = ref_from_uri(server.uri, api_key=server.api_key)
    try:
        recorder.label = ""
        parents = {"tiled_core": ours.create_container("bd-ours"), "reference": ref.create_container("bd-ref")}
        for i in range(n):
            for who in (("tiled_core", "reference") if i % 2 else ("reference", "tiled_core")):
                recorder.label = f"small node, {who}"
                parents[who].write_array(np.arange(10) * i, key=f"n{i:05d}",
                                         metadata={"index": i, "name": f"node {i}"})
    finally:
        ours.context.close()
        ref.context.close()


def copied_chunks(source, dest, recorder: Recorder, n: int) -> None:
    recorder.label = ""
    block = np.random.default_rng(0).random((512, 1024))
    ref_source = ref_from_uri(source.uri, api_key=source.api_key)
    import dask.array as da

    ref_source.write_array(da.from_array(np.concatenate([block] * n), chunks=block.shape), key="chunks")
    ref_dest = ref_from_uri(dest.uri, api_key=dest.api_key)
    try:
        ref_dest.new("array", [_writable(ref_source["chunks"])], key="chunks")
        ref_source.context.close()
        ref_dest.context.close()
        recorder.label = "copied 4 MiB chunk"
        with httpx.Client(headers={"Authorization": f"Apikey {source.api_key}"}) as reader, \
                httpx.Client(headers={"Authorization": f"Apikey {dest.api_key}"}) as writer:
            for i in range(n):
                got = reader.get(f"{source.uri.rstrip('/')}/array/block/chunks", params={"block": f"{i},0"},
                                 headers={"Accept": "application/octet-stream", "Accept-Encoding": "identity"})
                got.raise_for_status()
                put = writer.put(f"{dest.uri.rstrip('/')}/array/block/chunks", params={"block": f"{i},0"}, content=got.content,
                                 headers={"Content-Type": "application/octet-stream"})
                put.raise_for_status()
    finally:
        ref_source.context.close()
        ref_dest.context.close()


def _writable(node):
    from tiled.structures.data_source import DataSource

    return DataSource(structure_family="array", structure=node.structure(), management="writable")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="small nodes written by each client")
    parser.add_argument("--chunks", type=int, default=16, help="4 MiB chunks copied")
    parser.add_argument("--json", help="also save the rows and the summary here")
    args = parser.parse_args(argv)
    with LocalTiledServer() as source, LocalTiledServer() as dest:
        recorder = Recorder({source.port: source.pid, dest.port: dest.pid})
        with recorder:
            log(f"1. {args.nodes} small nodes per client")
            small_nodes(source, recorder, args.nodes)
            log(f"2. {args.chunks} copied chunks")
            copied_chunks(source, dest, recorder, args.chunks)
    summary = summarize(recorder.rows)
    load = os.getloadavg()
    print(table(summary))
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; one request at a time, means; "
          f"server waiting = its in-app time minus its CPU time")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": recorder.rows, "summary": summary, "load": load}, indent=1))


if __name__ == "__main__":
    main()
