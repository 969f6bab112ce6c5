"""A bounded soak: 8 readers and 2 writers share one client on one real server for a fixed time.

Readers read arrays (whole, block by block, sliced), tables, metadata and
listings of a fixed container and check every value; writers create arrays
and tables, replace metadata and read each write back. The test then asserts:

* no operation failed or returned other data than was written;
* open file descriptors and resident memory did not grow between the end of
  the warm-up and the end of the run (beyond a small bound: a leak of one
  socket, buffer or response per operation would exceed it many times over);
* the session never held more than ``max_connections`` established TCP
  connections to the server (counted from ``/proc``, sampled throughout);
* closing the client gives every socket back.

Loopback only; it stops by itself. CI runs it for 10 s; for a longer run::

    TILED_CORE_SOAK_SECONDS=300 python -m pytest -q -n 0 -m soak tests/test_soak.py -s

(``-s`` prints the figures: operations done, fds, RSS and connections.)
No assertion is about speed.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
import traceback
import uuid
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from tiled_core.client import from_uri

pytestmark = [pytest.mark.soak, pytest.mark.timeout(900)]

DURATION = float(os.environ.get("TILED_CORE_SOAK_SECONDS", "10"))
WARM_UP = min(5.0, DURATION / 4)
READERS, WRITERS = 8, 2
MAX_CONNECTIONS = 4  # fewer than the 10 threads: the pool limit is under pressure
FD_SLACK = MAX_CONNECTIONS + 8  # in-flight sockets at either snapshot, plus a few transient files
RSS_SLACK = 32 * 2**20  # allocator noise of 10 threads (~2 MiB seen); a per-operation leak adds up past it

ARRAYS = {
    "grid": np.arange(96 * 80, dtype="float64").reshape(96, 80) / 7,  # 4 x 2 blocks
    "ints": np.arange(5000, dtype=">i4"),
    "small": np.array([[1, 2], [3, 4]], dtype="uint8"),
}
CHUNKS = {"grid": ((24, 24, 24, 24), (40, 40)), "ints": ((1000,) * 5,)}
TABLE = pd.DataFrame({"x": np.arange(300, dtype="int64"), "y": np.linspace(0, 1, 300), "s": [f"é{i}" for i in range(300)]})


# -- measurements from /proc ----------------------------------------------------------------------

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _sockets_to(port: int) -> set[str]:
    """Inodes of this process's established TCP connections to ``port``."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                    found.add(fields[9])
    return found


class _Monitor(threading.Thread):
    """Samples the connections to the server opened after it started (the soak client's); keeps the maximum.

    Connections other fixtures' clients keep alive to the same server are left out.
    """

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.peak, self.samples = port, 0, 0
        self.foreign = _sockets_to(port)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, len(_sockets_to(self.port) - self.foreign))
            self.samples += 1


# -- the workload ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixed(tiled_server):
    """A container of arrays, a table and metadata that readers check (written once, by tiled_core)."""
    import dask.array as da

    root = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        node = root.create_container(f"soak-{uuid.uuid4().hex[:8]}", metadata={"purpose": "soak"})
        for key, array in ARRAYS.items():
            data = da.from_array(array, chunks=CHUNKS[key]) if key in CHUNKS else array
            node.write_array(data, key=key, metadata={"key": key})
        assert node["grid"].chunks == CHUNKS["grid"]
        node.write_dataframe(TABLE, key="table", metadata={"rows": len(TABLE)})
        node.create_container("writes")
        return node.item["id"]
    finally:
        root.context.close()


def _reader(node, rng: random.Random, counts: Counter, seen: dict) -> None:
    op = rng.choice(["array", "block", "slice", "table", "partition", "metadata", "listing"])
    if op == "array":
        key = rng.choice(sorted(ARRAYS))
        np.testing.assert_array_equal(node[key].read(), ARRAYS[key])
    elif op == "block":
        block = (rng.randrange(4), rng.randrange(2))
        rows, cols = block[0] * 24, block[1] * 40
        np.testing.assert_array_equal(node["grid"].read_block(block), ARRAYS["grid"][rows:rows + 24, cols:cols + 40])
    elif op == "slice":
        start = rng.randrange(0, 4000)
        np.testing.assert_array_equal(node["ints"][start:start + 900:3], ARRAYS["ints"][start:start + 900:3])
    elif op == "table":
        pd.testing.assert_frame_equal(node["table"].read(), TABLE, check_dtype=False)
    elif op == "partition":
        assert node["table"].read_partition(0)["x"].tolist() == TABLE["x"].tolist()
    elif op == "metadata":
        key = rng.choice(sorted(ARRAYS))
        assert node[key].metadata["key"] == key
    else:
        assert sorted(node.keys()) == sorted([*ARRAYS, "table", "writes"])
        written = len(node["writes"])  # writers only add: the count never goes back
        assert written >= seen.get("written", 0)
        seen["written"] = written
    counts[op] += 1


def _writer(node, rng: random.Random, counts: Counter, name: str) -> None:
    writes = node["writes"]
    op = ["array", "table", "metadata"][sum(counts.values()) % 3]
    key = f"{name}-{uuid.uuid4().hex[:10]}"
    if op == "array":
        array = np.frombuffer(rng.randbytes(8 * 512), dtype="float64").reshape(8, 8, 8)
        written = writes.write_array(array, key=key, metadata={"n": 1})
        assert writes[key].read().tobytes() == array.tobytes() and written.shape == array.shape  # NaN bits too
    elif op == "table":
        frame = pd.DataFrame({"a": [rng.random() for _ in range(50)], "b": list(range(50))})
        writes.write_dataframe(frame, key=key)
        pd.testing.assert_frame_equal(writes[key].read(), frame, check_dtype=False)
    else:
        own = f"{name}-meta"
        if own not in writes:
            writes.create_container(own, metadata={"count": 0})
        target = writes[own]
        count = target.metadata["count"] + 1
        target.update_metadata({"count": count, "note": "é" * rng.randrange(50)})
        assert writes[own].metadata["count"] == count
    counts[f"write-{op}"] += 1


def _worker(kind, node, seed: int, stop: threading.Event, counts: Counter, errors: list) -> None:
    rng, seen = random.Random(seed), {}
    while not stop.is_set():
        try:
            if kind == "reader":
                _reader(node, rng, counts, seen)
            else:
                _writer(node, rng, counts, f"w{seed}")
        except BaseException:  # noqa: BLE001 - every failure is reported, not just the first thread's
            errors.append(traceback.format_exc())
            return


def test_soak(tiled_server, fixed):
    gc.collect()
    fds_before_client = _open_fds()
    monitor = _Monitor(tiled_server.port)
    monitor.start()
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, max_connections=MAX_CONNECTIONS)
    node = client[fixed]
    stop = threading.Event()
    counts: list[Counter] = [Counter() for _ in range(READERS + WRITERS)]
    errors: list[str] = []
    threads = [
        threading.Thread(target=_worker, args=("reader" if i < READERS else "writer", node, i, stop, counts[i], errors),
                         name=f"soak-{i}")
        for i in range(READERS + WRITERS)
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(WARM_UP)
        gc.collect()
        fds_warm, rss_warm = _open_fds(), _rss()
        time.sleep(DURATION - WARM_UP)
        gc.collect()
        fds_end, rss_end = _open_fds(), _rss()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    client.context.close()
    monitor.done.set()
    monitor.join()
    gc.collect()
    fds_after_close = _open_fds()

    total = sum(counts, Counter())
    print(
        f"\nsoak {DURATION:.0f} s: {sum(total.values())} operations {dict(sorted(total.items()))}"
        f"\nfds: {fds_before_client} before the client, {fds_warm} after warm-up, {fds_end} at the end, "
        f"{fds_after_close} after close"
        f"\nRSS: {rss_warm / 2**20:.1f} MiB after warm-up, {rss_end / 2**20:.1f} MiB at the end"
        f"\nconnections to the server: at most {monitor.peak} (limit {MAX_CONNECTIONS}, {monitor.samples} samples)"
    )
    assert not errors, f"{len(errors)} worker(s) failed; the first:\n{errors[0]}"
    assert not any(thread.is_alive() for thread in threads)
    assert all(sum(c.values()) > 0 for c in counts), "a worker did nothing"
    assert monitor.samples > 0 and monitor.peak >= 1
    assert monitor.peak <= MAX_CONNECTIONS
    assert fds_end - fds_warm <= FD_SLACK
    assert fds_after_close <= fds_before_client + 2
    assert rss_end - rss_warm <= RSS_SLACK
