"""sync.copy interrupted by faults, then rerun: the destination ends identical to the source.

Each case stops a copy part-way on purpose and checks that it failed clearly
(``CopyError``) and that what it left looks complete only where it is
(unfinished work is missing, marked, or under a marked container); then the
fault goes and the copy is rerun with ``on_conflict="skip"``, after which the
reference client finds the destination identical to the source (keys in the
source's order, metadata, specs, structures, data): nothing missing, nothing
twice, no node still marked. Every case runs with the copy's own threads
("local") and with its data moved by the workers of the session's 2-worker
LocalCluster ("cluster"); the chaos and source-restart cases, on the cluster
only (their driver side is that of the others).

The interruptions are deterministic: a progress callback (:class:`Tripwire`)
turns a fault on once a few nodes are done, or a fault is aimed at one
request; only the chaos case draws its faults (from fixed seeds).
"""

from __future__ import annotations

import threading
import time
import uuid

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from tiled_core.client import from_uri
from tiled_core.client.conflict import INCOMPLETE_SPEC
from tiled_core.client.sync import CopyError, copy
from tiled_core.server import LocalTiledServer

from _checks import running
from _copy_helpers import assert_same_tree, count_nodes, node_entry, read_table, snapshot, write_tree
from _proxy import FaultProxy

TRIP_AFTER = 3  # nodes done before the fault strikes: early, most of the copy is still to do
SMALL = 2  # small arrays under "runs", each covered by the mark of "runs" while it is copied
RERUN = "Rerun with on_conflict='skip'"


# -- the source tree ----------------------------------------------------------------------
def build_small_tree(ref_parent) -> None:
    """Eleven small nodes: chunked arrays, tables (partitioned, appendable), nested containers, metadata, specs.

    Deterministic (fixed seed): every call writes the same tree.
    """
    import dask.dataframe as dd
    import pyarrow as pa
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import DataSource
    from tiled.structures.table import TableStructure

    rng = np.random.default_rng(9)
    ref_parent.write_array(da.from_array(rng.random((30, 20)), chunks=(10, 8)), key="arr",
                           metadata={"units": "mm", "nested": {"a": [1, 2]}}, specs=["alpha"])
    runs = ref_parent.create_container("runs", metadata={"facility": "x"})
    for i in range(SMALL):
        runs.write_array(rng.random(6) + 1, key=f"small{i}", metadata={"i": i})
    nested = ref_parent.create_container("nested", metadata={"level": 1}, specs=["grp"])
    deeper = nested.create_container("deeper", metadata={"level": 2})
    deeper.write_array(da.from_array(np.arange(48, dtype="i2").reshape(6, 8), chunks=(3, 4)), key="leaf",
                       metadata={"x": 1.5})
    deeper.create_container("hollow", metadata={"empty": True})
    ddf = dd.from_pandas(pd.DataFrame({"i": np.arange(9), "f": np.linspace(0, 1, 9)}), npartitions=3)
    parted = ref_parent.new(StructureFamily.table, [DataSource(structure=TableStructure.from_dask_dataframe(ddf),
                                                               structure_family=StructureFamily.table)], key="parted")
    for i in range(3):
        parted.write_partition(i, ddf.partitions[i].compute())
    group = ref_parent.create_container("sqlgroup")
    table = group.create_appendable_table(pa.schema([("a", pa.int64()), ("b", pa.string())]), npartitions=2, key="sql")
    table.append_partition(0, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    table.append_partition(1, pa.table({"a": [3], "b": ["z"]}))


class Tripwire:
    """A progress callback that runs ``action`` once, as soon as ``after`` nodes are done."""

    def __init__(self, after: int, action) -> None:
        self.after, self.action = after, action
        self.fired = threading.Event()

    def __call__(self, progress) -> None:
        if progress.nodes_done >= self.after and not self.fired.is_set():
            self.fired.set()
            self.action()


def check_what_is_left(expected: dict, ref_dest) -> list[str]:
    """After a failed copy: what looks complete is complete; returns the paths still to do.

    A node neither marked nor under a marked container must equal its
    source (``expected``: the source's snapshot), and a marked node may sit
    only under a marked container or at the top. Paths still to do: missing,
    marked, or under a mark.
    """
    todo, seen = [], set()

    def walk(container, prefix: str, under_mark: bool, top: bool) -> list[str]:
        keys = []
        for key, node in container.items():
            keys.append(key)
            path = f"{prefix}{key}"
            seen.add(path)
            marked = INCOMPLETE_SPEC in [s.name for s in node.specs]
            assert not marked or under_mark or top, f"/{path} is marked under a container that is not"
            children = None
            if node.structure_family == "container":
                children = walk(node, f"{path}/", under_mark or marked, False)
            if under_mark or marked:
                todo.append(path)
            else:
                assert node_entry(node, children) == expected[path], f"/{path} looks complete but is not"
        return keys

    walk(ref_dest, "", False, True)
    return sorted(todo + [path for path in expected if path and path not in seen])


def ref_open(server):
    """The reference client on ``server``'s root (close it after use)."""
    from tiled.client import from_uri as ref_from_uri

    return ref_from_uri(server.uri, api_key=server.api_key)


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def fast_failures(monkeypatch):
    """Sessions opened here give up after 2 attempts: a persistent fault stops a copy within moments.

    (Dask workers keep their own sessions and the default budget, a few seconds of backoff.)
    """
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "2")


@pytest.fixture(params=["local", "cluster"])
def dask_runner(request):
    """The copy's ``dask_client=``: None (its own threads) or the session's 2-worker LocalCluster."""
    return request.getfixturevalue("dask_client") if request.param == "cluster" else None


@pytest.fixture(scope="module")
def source_key(ref_root):
    return write_tree(ref_root, build_small_tree, "cf-src")


@pytest.fixture(scope="module")
def expected(ref_root, source_key):
    """The source as the reference client reads it (both sources of this module hold this tree)."""
    return snapshot(ref_root[source_key])


@pytest.fixture(scope="module")
def ref_second(second_server):
    client = ref_open(second_server)
    yield client
    client.context.close()


@pytest.fixture(scope="module")
def dest_proxy(second_server):
    with FaultProxy("127.0.0.1", second_server.port) as p:
        yield p


@pytest.fixture
def proxies(proxy, dest_proxy):
    """(proxy in front of the source server, proxy in front of the destination), without old faults."""
    proxy.clear()
    dest_proxy.clear()
    yield proxy, dest_proxy
    proxy.clear()
    dest_proxy.clear()


@pytest.fixture(scope="module")
def spare(killable_server):
    """The session's killable server (its directory survives restarts): the tests kill and restart it."""
    return running(killable_server)


@pytest.fixture
def live_spare(spare):
    """The spare server, started again if an earlier test left it down."""
    return running(spare)


@pytest.fixture(scope="module")
def spare_proxy(spare):
    with FaultProxy("127.0.0.1", spare.port) as p:  # restart() keeps the port: the proxy stays valid
        yield p


@pytest.fixture(scope="module")
def spare_source_key(spare):
    ref = ref_open(spare)
    try:
        return write_tree(ref, build_small_tree, "cf-src")
    finally:
        ref.context.close()


@pytest.fixture
def connect():
    """``connect(uri, server, key=None, **options)``: a tiled_core client (closed after the test)."""
    opened = []

    def open_client(uri: str, server, key: str | None = None, **options):
        client = from_uri(uri, api_key=server.api_key, **options)
        opened.append(client)
        return client[key] if key else client

    yield open_client
    for client in opened:
        client.context.close()


def fresh_container(client):
    return client.create_container(f"cf-dst-{uuid.uuid4().hex[:8]}")


def interrupted_then_rerun(runs, rerun, expected: dict, ref_dest_root, dest_path: str) -> None:
    """Each of ``runs`` must fail clearly and leave nothing that looks complete but is not; ``rerun()`` finishes."""
    for run in runs:
        with pytest.raises(CopyError, match=RERUN) as caught:
            run()
        assert caught.value.summary.failed >= 1 and caught.value.summary.errors
        check_what_is_left(expected, ref_dest_root[dest_path])  # may be nothing: a write stored, its answer lost
    summary = rerun()
    assert summary.failed == 0
    assert_same_tree(None, ref_dest_root[dest_path], expected=expected)
    assert summary.nodes + summary.skipped == len(expected) - 1  # each node kept or (re)made, once


# -- faults at the proxies -------------------------------------------------------------------
PROXY_FAULTS = {
    # Connections reset (TCP RST) after the server did the work: source reads and destination data
    # writes retried, then given up; destination creates not retried, so nodes exist that the copy
    # never heard of. (Every method on both sides: a copy far along may have only data writes left.)
    "reset": lambda src, dst, skip: (src.reset(times=None, skip=skip), dst.reset(times=None, skip=skip)),
    # Answers cut short, headers intact: every source answer at half its body; destination writes
    # (blocks, marks) stored but answered with no body at all. Retried, then given up.
    "truncated": lambda src, dst, skip: (src.cut(0.5, times=None, skip=skip),
                                         dst.cut(0, method="PUT", times=None, skip=skip)),
    # Connections closed unanswered, nothing forwarded, on both sides.
    "dropped": lambda src, dst, skip: (src.drop(times=None, skip=skip), dst.drop(times=None, skip=skip)),
    # Both servers answer 503 (Retry-After: 0) to everything: the retries run out at once.
    "503-storm": lambda src, dst, skip: (src.status(503, retry_after=0, times=None, skip=skip),
                                         dst.status(503, retry_after=0, times=None, skip=skip)),
}


# Each pair of faults once, each on one runner: the engine's handling is the same on both,
# and what differs (workers' own sessions) is exercised by each runner once.
@pytest.mark.parametrize(("faults", "dask_runner"), [(("reset", "truncated"), "local"),
                                                     (("dropped", "503-storm"), "cluster")],
                         ids=["reset-then-truncated-local", "dropped-then-503-storm-cluster"], indirect=["dask_runner"])
def test_proxy_faults_mid_copy_and_mid_rerun_then_rerun(faults, dask_runner, proxies, connect, tiled_server,
                                                        second_server, source_key, expected, ref_second):
    """The copy is interrupted by one fault, its rerun by another; a last rerun completes it.

    The first fault starts once a few nodes are done; the second strikes the
    rerun's first source request (a rerun may have nothing left to write, but
    it always lists the source), so each run meets its fault however far the
    one before it got.
    """
    src_proxy, dst_proxy = proxies
    source = connect(src_proxy.uri, tiled_server, source_key)
    dest = fresh_container(connect(dst_proxy.uri, second_server))
    trip = Tripwire(TRIP_AFTER, lambda: PROXY_FAULTS[faults[0]](src_proxy, dst_proxy, 0))

    def run(on_conflict, progress):
        try:
            copy(source, dest, on_conflict=on_conflict, progress=progress, dask_client=dask_runner)
        finally:
            src_proxy.clear()
            dst_proxy.clear()

    def rerun_with_fault():
        PROXY_FAULTS[faults[1]](src_proxy, dst_proxy, 0)
        run("skip", False)

    interrupted_then_rerun(
        [lambda: run("error", trip), rerun_with_fault],
        lambda: copy(source, dest, on_conflict="skip", progress=False, dask_client=dask_runner),
        expected, ref_second, dest.path)
    assert trip.fired.is_set()


@pytest.mark.parametrize("dask_runner", ["cluster"], indirect=True)  # where faults reach the workers too
def test_seeded_chaos_then_rerun(dask_runner, proxies, connect, tiled_server, second_server, source_key, expected,
                                 ref_second):
    """Random faults of every kind (fixed seeds) on 30 % of the requests on both sides, then a clean rerun.

    Stalls outlast the client's 1 s read timeout; 429/503 come with Retry-After: 0.
    """
    src_proxy, dst_proxy = proxies
    source = connect(src_proxy.uri, tiled_server, source_key, timeout={"read": 1.0})
    dest = fresh_container(connect(dst_proxy.uri, second_server, timeout={"read": 1.0}))

    def chaos_run():
        src_proxy.chaos(seed=11, rate=0.3, stall=1.5)
        dst_proxy.chaos(seed=12, rate=0.3, stall=1.5)
        try:
            copy(source, dest, progress=False, dask_client=dask_runner)
        finally:
            assert src_proxy.faults_applied + dst_proxy.faults_applied >= 1
            src_proxy.clear()
            dst_proxy.clear()

    patient_source = connect(src_proxy.uri, tiled_server, source_key)  # default timeouts for the rerun
    patient_dest = connect(dst_proxy.uri, second_server, dest.path)
    interrupted_then_rerun(
        [chaos_run],
        lambda: copy(patient_source, patient_dest, on_conflict="skip", progress=False, dask_client=dask_runner),
        expected, ref_second, dest.path)


# -- servers killed or restarted mid-copy ----------------------------------------------------
def kill_outside_creates(proxy: FaultProxy, server: LocalTiledServer) -> None:
    """SIGKILL ``server`` at a moment when none of its creates is under way.

    A 0.2.20 server killed inside a create of array storage keeps the new
    zarr directory but not the catalog row, and then answers 500
    (``ContainsArrayError``) to every create of that key: no rerun could
    finish the copy, only removing the directory on the server. So creates
    arriving now are held at the proxy, those already forwarded are
    answered, and only then is the server killed; the held ones fail after.
    """
    gate = threading.Event()
    proxy.hook(lambda method, target: gate.wait(60), method="POST", times=None)

    def creates_in_server() -> int:
        seen = sum(1 for method, _, _ in list(proxy.requests) if method == "POST")
        held = sum(1 for kind, method, _ in list(proxy.applied) if kind == "hook")
        answered = sum(1 for method, _, _ in list(proxy.responses) if method == "POST")
        return seen - held - answered

    deadline = time.monotonic() + 60
    while creates_in_server() and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    gate.set()


@pytest.mark.parametrize("dask_runner", ["local"], indirect=True)  # the source restart covers workers
def test_dest_server_killed_mid_copy_then_rerun(dask_runner, live_spare, spare_proxy, connect, tiled_server,
                                                source_key, expected):
    spare_proxy.clear()
    source = connect(tiled_server.uri, tiled_server, source_key)
    dest = fresh_container(connect(spare_proxy.uri, live_spare))
    trip = Tripwire(TRIP_AFTER, lambda: kill_outside_creates(spare_proxy, live_spare))

    def first():
        try:
            copy(source, dest, progress=trip, dask_client=dask_runner)
        finally:
            spare_proxy.clear()
            live_spare.restart()

    def rerun():
        # New connections: the proxy's pooled ones still lead to the killed process.
        again = connect(spare_proxy.uri, live_spare, dest.path)
        return copy(source, again, on_conflict="skip", progress=False, dask_client=dask_runner)

    ref_dest = ref_open(live_spare)
    try:
        interrupted_then_rerun([first], rerun, expected, ref_dest, dest.path)
    finally:
        ref_dest.context.close()
    assert trip.fired.is_set()


@pytest.mark.parametrize("dask_runner", ["cluster"], indirect=True)  # workers' sessions see the restart too
def test_source_server_restarted_mid_copy_is_waited_out(dask_runner, live_spare, spare_source_key, connect,
                                                        second_server, expected, ref_second):
    """The source restarts mid-copy: the driver and the workers wait for it (a server that answered
    before and now refuses connections is restarting; see docs/reliability.md), so the copy finishes
    whole, and a rerun keeps every node."""
    source = connect(live_spare.uri, live_spare, spare_source_key)
    dest = fresh_container(connect(second_server.uri, second_server))
    restarting = threading.Thread(target=live_spare.restart)  # a graceful stop, then a start: down for seconds
    trip = Tripwire(TRIP_AFTER, restarting.start)
    try:
        summary = copy(source, dest, progress=trip, dask_client=dask_runner)
    finally:
        if trip.fired.is_set():
            restarting.join()
    assert trip.fired.is_set() and summary.failed == 0
    assert_same_tree(None, ref_second[dest.path], expected=expected)
    again = copy(source, dest, on_conflict="skip", progress=False, dask_client=dask_runner)
    assert again.failed == 0 and again.nodes == 0 and again.skipped == len(expected) - 1


# -- half-written nodes are repaired, not skipped ----------------------------------------------
@pytest.mark.parametrize("dask_runner", ["local"], indirect=True)  # repair is the engine's, runner-agnostic
def test_half_written_nodes_are_repaired_by_the_rerun(dask_runner, proxies, connect, tiled_server, second_server,
                                                      source_key, ref_root, expected, ref_second, monkeypatch):
    """Runs interrupted by refused writes leave three nodes half-written; the last run repairs them.

    Until each has been seen half-written, every run meets these faults:

    - ``arr`` (9 blocks, marked): block (1, 1) refused, block (0, 0) stored;
    - ``runs/small1`` (one block, covered by the mark of ``runs``): created, its block refused;
    - ``sqlgroup/sql`` (appendable, marked): partition 0 appended, partition 1 refused.

    A run stops at the first of them it meets (so several runs are needed);
    a node once seen half-written loses its fault. Marks record progress
    after every stored block ("units:<k>"), so reruns resume from them.
    """
    from tiled_core.copy import _engine as _copy_engine

    monkeypatch.setattr(_copy_engine, "CHECKPOINT_SECONDS", 0.0)
    _, dst_proxy = proxies
    source = connect(tiled_server.uri, tiled_server, source_key)
    dest = fresh_container(connect(dst_proxy.uri, second_server))
    at = f"{dest.path}/"
    refuse = {"retry_after": 0, "times": None}
    aims = {
        "arr": lambda: dst_proxy.status(503, method="PUT", match=f"array/block/{at}arr?block=1%2C1", **refuse),
        "runs/small1": lambda: dst_proxy.status(503, method="PUT", match=f"array/block/{at}runs/small1?", **refuse),
        "sqlgroup/sql": lambda: dst_proxy.status(503, method="PATCH", match=f"partition/{at}sqlgroup/sql?partition=1",
                                                 **refuse),
    }
    source_arr = ref_root[source_key]["arr"].read()
    runs = 0
    while aims and runs < 3:
        for aim in aims.values():
            aim()
        try:
            with pytest.raises(CopyError, match=RERUN) as caught:
                copy(source, dest, on_conflict="skip" if runs else "error", progress=False, dask_client=dask_runner)
        finally:
            dst_proxy.clear()
        runs += 1
        hit = {p.removeprefix(at) for p, _ in caught.value.summary.errors} & set(aims)
        assert hit, caught.value.summary.errors  # only the aimed-at writes fail
        check_what_is_left(expected, ref_second[dest.path])
        for path in hit:
            del aims[path]
            half = ref_second[dest.path][path]
            if path == "arr":  # marked; block (0, 0) stored, block (1, 1) still the fill value
                (mark,) = [s.version for s in half.specs if s.name == INCOMPLETE_SPEC]
                assert mark is None or int(mark.removeprefix("units:")) <= 4  # (1, 1) is unit 4: never counted
                np.testing.assert_array_equal(half.read()[:10, :8], source_arr[:10, :8])
                assert not half.read()[10:20, 8:16].any()
            elif path == "sqlgroup/sql":  # marked; the rows of partition 0 only
                assert INCOMPLETE_SPEC in [s.name for s in half.specs]
                assert read_table(half)["a"].tolist() == [1, 2]
            else:  # not marked itself, but under the still-marked "runs": not to be trusted
                assert INCOMPLETE_SPEC in [s.name for s in ref_second[dest.path]["runs"].specs]
                assert not half.read().any()  # the source's values are all >= 1
    assert not aims, f"never seen half-written: {sorted(aims)}"

    summary = copy(source, dest, on_conflict="skip", progress=False, dask_client=dask_runner)
    assert summary.failed == 0
    assert_same_tree(None, ref_second[dest.path], expected=expected)
    assert summary.nodes + summary.skipped == len(expected) - 1
    assert count_nodes(ref_second[dest.path]) == len(expected) - 1




def test_a_refused_region_write_leaves_a_checkpoint_the_rerun_resumes_from(proxies, connect, tiled_server,
                                                                            second_server, ref_root, ref_second,
                                                                            monkeypatch):
    """An evenly chunked array moves in regions of several chunks (one PATCH each); one refused mid-array
    fails the copy clearly, the mark's checkpoint counts chunks stored in order, and the rerun sends
    only the chunks from there on (a region it falls inside chunk by chunk)."""
    from tiled_core.copy import _engine as _copy_engine

    monkeypatch.setattr(_copy_engine, "CHECKPOINT_SECONDS", 0.0)
    _, dst_proxy = proxies
    values = np.random.default_rng(4).random((64, 48))  # 8 x 3 chunks of 8 x 16: 3 KiB a row of chunks
    key = f"grid-{uuid.uuid4().hex[:8]}"
    ref_root.write_array(da.from_array(values, chunks=(8, 16)), key=key, metadata={"grid": True})
    source = connect(tiled_server.uri, tiled_server, key)
    dest = fresh_container(connect(dst_proxy.uri, second_server))
    # 32 KiB in flight in 4 regions: regions of 2 rows of chunks (6 chunks, 6 KiB); the third is refused.
    dst_proxy.status(503, method="PATCH", match=f"array/full/{dest.path}/grid?offset=32%2C0", retry_after=0,
                     times=None)
    with pytest.raises(CopyError, match=RERUN):
        copy({"grid": source}, dest, progress=False, max_memory=32 * 1024)
    dst_proxy.clear()
    half = ref_second[dest.path]["grid"]
    (mark,) = [s.version for s in half.specs if s.name == INCOMPLETE_SPEC]
    stored = int(mark.removeprefix("units:")) if mark else 0  # (a checkpoint in flight at the failure is dropped)
    assert stored in (0, 6, 12)  # whole regions, in order: never past the refused one
    assert not half.read()[32:40].any()  # the refused region holds the fill value
    np.testing.assert_array_equal(half.read()[:stored // 3 * 8], values[:stored // 3 * 8])
    assert half.structure().shape == values.shape  # a region write keeps the node's shape

    # Resume inside a region: a checkpoint of 8 chunks leaves 4 of the second region, then 2 regions.
    dest.context.session.send("PUT", f"metadata/{dest.path}/grid",
                              json={"specs": [{"name": INCOMPLETE_SPEC, "version": "units:8"}]})
    before = dst_proxy.requests[:]
    summary = copy({"grid": source}, dest, on_conflict="skip", progress=False, max_memory=32 * 1024)
    assert summary.failed == 0 and summary.bytes == values.nbytes - 8 * 8 * 16 * 8
    writes = [(m, t) for m, t, _ in dst_proxy.requests[len(before):] if "/array/" in t]
    assert sorted(m for m, _ in writes) == ["PATCH"] * 2 + ["PUT"] * 4, writes  # (sent side by side)
    np.testing.assert_array_equal(ref_second[dest.path]["grid"].read(), values)
    assert INCOMPLETE_SPEC not in [s.name for s in ref_second[dest.path]["grid"].specs]
    assert dict(ref_second[dest.path]["grid"].metadata) == {"grid": True}
