"""Writes under injected faults: the node ends complete, or recognisably incomplete and repaired by a rerun.

Each write (create_container, write_array in one request and in blocks,
write_table, write_block, update_metadata, replace_metadata) meets every
fault kind of tests/_faults.py at each kind of request it sends (the create
POST, a data PUT or PATCH, the PUT that clears the incomplete mark), once
(transient); the retried PUTs also persistently. Then:

* the node, as the reference client sees it, is honest: absent, marked or
  reserved incomplete, or complete with exactly the right data (metadata:
  the old or the new version, nothing in between);
* a failure was reported as a TiledError, and only a non-idempotent request
  (a PATCH of metadata) or a persistent fault can cause one: PUTs are retried,
  and a create (or a reserved array's one PATCH) whose answer was lost is
  resolved by looking at the server (the key; the array's shape);
* a non-idempotent request reached the server at most once, unless it was
  refused with 429 (not acted on, so resent) or a look showed it had not
  arrived;
* rerunning the same call with ``on_conflict="skip"`` leaves the node complete
  and exactly right.

A real server is also killed during an upload and restarted: a patient
client's upload rides through; a write attempted while it is down fails
clearly and its rerun completes it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable

import dask.array
import dask.dataframe
import numpy as np
import pandas as pd
import pytest
from tiled.client import from_uri as ref_from_uri

from _faults import FAULTS, FORWARDED, PERSISTENT, STALL, Crash, arm, expected_error, fast_client, timeout_for
from _faults import clients  # noqa: F401  (a fixture)
from _checks import running
from _proxy import FaultProxy
from tiled_core.client import from_uri
from tiled_core.client.conflict import INCOMPLETE_SPEC
from tiled_core.transport import ConnectionFailed, RetryPolicy, TiledError

ARRAY = np.arange(4000, dtype="float64").reshape(40, 100)
TABLE = pd.DataFrame({"x": np.arange(12), "y": np.linspace(0, 1, 12)})
OLD_METADATA = {"a": 1, "b": {"c": 2}}
NEW_METADATA = {"a": 1, "b": {"c": 3}, "d": 4}  # update_metadata({"b": {"c": 3}, "d": 4})
REPLACED = {"z": [1, 2]}
BLOCK = np.full((20, 50), 7.0)
WITH_BLOCK = np.zeros((40, 100))
WITH_BLOCK[20:, 50:] = BLOCK
NON_IDEMPOTENT = ("POST", "PATCH")


def _array_is(expected):
    def verify(ref_node):
        np.testing.assert_array_equal(ref_node.read(), expected)
    return verify


def _table_is(ref_node):
    pd.testing.assert_frame_equal(ref_node.read().reset_index(drop=True), TABLE, check_dtype=False)


def _metadata_is(expected):
    def verify(ref_node):
        assert dict(ref_node.metadata) == expected
    return verify


@dataclasses.dataclass
class Op:
    run: Callable  # (container, key, on_conflict) -> None
    verify: Callable  # (reference client node) -> None, raises when the data is not exactly right
    steps: dict  # step -> (route, method, skip): the request the fault strikes
    prepare: Callable | None = None  # (container, key): an existing node to write into
    before: Callable | None = None  # for in-place writes: the state before the write, also honest
    created: str = "complete"  # the state after the create alone
    pending: str = "unchanged"  # the state when the data request failed without the server acting


def _existing_array(top, key):
    top.write_array(dask.array.zeros((40, 100), chunks=(20, 50)), key=key)


def _existing_container(top, key):
    top.create_container(key, metadata=OLD_METADATA)


OPS = {
    "create_container": Op(
        lambda top, key, oc: top.create_container(key, metadata=OLD_METADATA, on_conflict=oc),
        _metadata_is(OLD_METADATA), {"create": ("metadata", "POST", 0)}),
    "array_one_request": Op(
        lambda top, key, oc: top.write_array(ARRAY, key=key, on_conflict=oc),
        _array_is(ARRAY), {"create": ("metadata", "POST", 0), "data": ("array/full", "PATCH", 0)},
        created="reserved", pending="reserved"),
    "array_blocks": Op(  # uneven chunks: created marked, six PUTs of blocks, then the mark is cleared
        lambda top, key, oc: top.write_array(dask.array.from_array(ARRAY, chunks=(15, 50)), key=key, on_conflict=oc),
        _array_is(ARRAY), {"create": ("metadata", "POST", 0), "data": ("array/block", "PUT", 2),
                           "mark": ("metadata", "PUT", 0)}, created="marked", pending="marked"),
    "table_partitions": Op(
        lambda top, key, oc: top.write_table(dask.dataframe.from_pandas(TABLE, npartitions=2), key=key, on_conflict=oc),
        _table_is, {"create": ("metadata", "POST", 0), "data": ("table/partition", "PUT", 1),
                    "mark": ("metadata", "PUT", 0)}, created="marked", pending="marked"),
    "write_block": Op(
        lambda top, key, oc: top[key].write_block(BLOCK, (1, 1)),
        _array_is(WITH_BLOCK), {"data": ("array/block", "PUT", 0)},
        prepare=_existing_array, before=_array_is(np.zeros((40, 100)))),
    "update_metadata": Op(
        lambda top, key, oc: top[key].update_metadata({"b": {"c": 3}, "d": 4}),
        _metadata_is(NEW_METADATA), {"data": ("metadata", "PATCH", 0)},
        prepare=_existing_container, before=_metadata_is(OLD_METADATA)),
    "replace_metadata": Op(
        lambda top, key, oc: top[key].replace_metadata(REPLACED),
        _metadata_is(REPLACED), {"data": ("metadata", "PUT", 0)},
        prepare=_existing_container, before=_metadata_is(OLD_METADATA)),
}

#: Every request kind of every write, once: the blocks' create and mark-clearing PUT are the table's again.
#: A write's answer is a few bytes: a stall after its headers is, to the client, the stall before them.
WRITE_FAULTS = [fault for fault in FAULTS if fault != "stall_mid"]
CASES = [(op, step) for op, spec in OPS.items() for step in spec.steps
         if (op, step) not in (("array_blocks", "create"), ("array_blocks", "mark"))]
#: Non-idempotent requests whose lost answer the client resolves by looking (the key; the reserved shape).
RESOLVED = {(op, "create") for op in OPS} | {("array_one_request", "data")}
#: Retried PUTs under a persistent fault: data missing, or data complete but the mark left on.
PERSISTENT_CASES = [("array_blocks", "data"), ("table_partitions", "mark")]


def _target(top_key: str, key: str, route: str, method: str) -> str:
    # A create is POSTed to the parent; every other request names the node itself.
    return f"/{route}/{top_key}" + ("" if method == "POST" else f"/{key}")


def _honest(op: Op, ref_root, top_key: str, key: str) -> str:
    """How the node looks after a possibly failed write; raises if it looks complete but is not."""
    try:
        node = ref_root[f"{top_key}/{key}"]
    except KeyError:
        return "absent"
    if INCOMPLETE_SPEC in [spec.name for spec in node.specs]:
        return "marked"
    if node.structure_family == "array" and node.shape[0] == 0:
        return "reserved"
    try:
        op.verify(node)
        return "complete"
    except AssertionError:
        if op.before is None:
            raise
        op.before(node)  # an in-place write that did not happen: the old state, whole
        return "unchanged"


@pytest.fixture(scope="module")
def top_key(ref_root):
    return ref_root.create_container(f"writes-{uuid.uuid4().hex[:8]}").item["id"]


@pytest.fixture(scope="module")
def rerun_top(proxy, tiled_server, top_key):
    """Prepares nodes and reruns writes: a client with default timeouts and retries, as a new process would."""
    client = from_uri(proxy.uri, api_key=tiled_server.api_key)
    yield client[top_key]
    client.context.close()


@pytest.fixture
def top(request, clients, proxy, top_key):
    """The client whose write meets the fault (a short timeout only for stalls)."""
    yield clients.node(top_key, timeout_for(request.node.callspec.params["fault"]))
    proxy.clear()


def _write_under_fault(op_name, step, fault, times, top, rerun_top, ref_root, top_key, proxy):
    op = OPS[op_name]
    key = f"{op_name}-{uuid.uuid4().hex[:6]}"
    if op.prepare is not None:
        op.prepare(rerun_top, key)
    route, method, skip = op.steps[step]
    match = _target(top_key, key, route, method)
    proxy.clear()
    arm(proxy, fault, times=times, match=match, method=method, skip=skip)
    try:
        op.run(top, key, "error")
        error = None
    except TiledError as exc:
        error = exc
    assert proxy.faults_applied >= 1, "the fault never struck"
    sent = [target for m, target, _ in proxy.requests if m == method and match in target]
    resolved = (op_name, step) in RESOLVED
    if method in NON_IDEMPOTENT and fault != "429":
        # Never blindly retried: a create (or a reserved array's PATCH) is sent again only after a
        # look showed that the first one did not arrive (the fault did not forward it).
        again = 1 if resolved and fault not in FORWARDED else 0
        assert len(sent) == 1 + skip + again, f"a {method} was resent: {sent}"
    if times == 1 and (method not in NON_IDEMPOTENT or fault == "429" or resolved):
        assert error is None, f"a transient fault on a retried {method} failed the write: {error!r}"
    if error is not None:
        assert isinstance(error, expected_error(fault)), repr(error)
    state = _honest(op, ref_root, top_key, key)
    if error is None:
        assert state == "complete"
    proxy.clear()
    op.run(rerun_top, key, "skip")  # the rerun
    if state == "complete" and op.before is None:  # nothing left to do: the rerun must write nothing
        assert [m for m, _, _ in proxy.requests if m != "GET"] == []
    else:
        assert _honest(op, ref_root, top_key, key) == "complete"
    return error, state


@pytest.mark.parametrize("fault", WRITE_FAULTS)
@pytest.mark.parametrize("op_name, step", CASES)
def test_transient_fault(op_name, step, fault, top, rerun_top, ref_root, top_key, proxy):
    error, state = _write_under_fault(op_name, step, fault, 1, top, rerun_top, ref_root, top_key, proxy)
    if error is not None:  # a PATCH of metadata, not resent: the state shows whether the server acted
        assert (op_name, step) not in RESOLVED
        assert state == ("complete" if fault in FORWARDED else OPS[op_name].pending)


@pytest.mark.parametrize("fault", WRITE_FAULTS)
@pytest.mark.parametrize("op_name, step", PERSISTENT_CASES)
def test_persistent_fault_on_retried_request(op_name, step, fault, top, rerun_top, ref_root, top_key, proxy):
    top.context.session.retry = PERSISTENT
    error, state = _write_under_fault(op_name, step, fault, None, top, rerun_top, ref_root, top_key, proxy)
    assert error is not None
    # The data PUT kept failing: the mark stays. The mark-clearing PUT kept failing: the mark stays,
    # unless the server acted on it each time and only the answers were lost.
    acted = step == "mark" and fault in FORWARDED
    assert state == ("complete" if acted else "marked")


# ---------------------------------------------------------------- a crash of the server itself


@pytest.fixture(scope="module")
def crashing(killable_server):
    """The session's killable server (it gets killed here), its proxy, a container and a reference client."""
    server = running(killable_server)
    with FaultProxy("127.0.0.1", server.port) as proxy:
        ref = ref_from_uri(server.uri, api_key=server.api_key)
        key = ref.create_container(f"crash-top-{uuid.uuid4().hex[:8]}").item["id"]
        yield server, proxy, key, ref
        ref.context.close()


def test_server_killed_mid_upload_then_restarted(crashing):
    """The server dies at the third block of an upload and comes back.

    The uploading client (patient: its PUTs are retried through the outage)
    finishes with the node complete. A table written while the server is
    down fails with ConnectionFailed (its create is not resent blindly);
    rerun with ``on_conflict="skip"`` once the server is back, it completes.
    """
    server, proxy, top_key, ref = crashing
    patient = fast_client(proxy.uri, server.api_key, RetryPolicy(attempts=1000, deadline=120.0, max_backoff=0.5))
    impatient = fast_client(proxy.uri, server.api_key, PERSISTENT)
    top, impatient_top = patient[top_key], impatient[top_key]
    proxy.clear()
    crash = Crash(server, proxy, match=f"/array/block/{top_key}/big", method="PUT", skip=2, restart=False)
    failures: list[BaseException] = []

    def upload():
        try:
            OPS["array_blocks"].run(top, "big", "error")
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert crash.down.wait(60)
        with pytest.raises(ConnectionFailed):
            OPS["table_partitions"].run(impatient_top, "tab", "error")
    finally:
        if crash.down.is_set():
            crash.restart_now()
            crash.wait()
        thread.join(120)
    assert failures == []
    assert _honest(OPS["array_blocks"], ref, top_key, "big") == "complete"
    assert _honest(OPS["table_partitions"], ref, top_key, "tab") in ("absent", "marked")
    OPS["table_partitions"].run(impatient_top, "tab", "skip")
    assert _honest(OPS["table_partitions"], ref, top_key, "tab") == "complete"
    patient.context.close()
    impatient.context.close()


def test_chaos_writes_complete_by_rerun(proxy, tiled_server, top_key, rerun_top, ref_root):
    """A seeded random fault on 30% of requests: each write completes, at the latest when rerun with "skip"."""
    keys = {name: f"chaos-{name}-{uuid.uuid4().hex[:6]}" for name in OPS}
    for name, op in OPS.items():
        if op.prepare is not None:
            op.prepare(rerun_top, keys[name])
    client = fast_client(proxy.uri, tiled_server.api_key, timeout=timeout_for("chaos"))
    top = client[top_key]
    proxy.clear()
    proxy.chaos(seed=11, rate=0.3, stall=3.0)
    runs = {}
    for name, op in OPS.items():
        key = keys[name]
        for runs[name] in range(1, 11):  # a pipeline rerun by hand, not a retry loop in the library
            try:
                op.run(top, key, "skip")
                break
            except TiledError:
                continue
        assert _honest(op, ref_root, top_key, key) == "complete", name
    client.context.close()
    assert proxy.faults_applied >= 5
    # Faults struck creates or PATCHes too: resolved by looking (or finished by a rerun), never resent blindly.
    assert any(method in NON_IDEMPOTENT for _, method, _ in proxy.applied), proxy.applied


def test_create_waiting_for_a_pooled_connection_is_retried(proxy, tiled_server, top_key, ref_root):
    """With one pooled connection held by a stalled read, a create times out in the pool, unsent: it is retried."""
    client = from_uri(proxy.uri, api_key=tiled_server.api_key, max_connections=1,
                      timeout={"connect": 5.0, "read": 1.5, "write": 5.0, "pool": 0.3})
    client.context.session.retry = RetryPolicy(attempts=30, deadline=15.0, backoff=0.05, max_backoff=0.3)
    top = client[top_key]
    key = f"pooled-{uuid.uuid4().hex[:6]}"
    proxy.clear()
    proxy.stall(STALL, match=f"/metadata/{top_key}", method="GET")  # holds the only connection ~1.5 s
    reader = threading.Thread(target=top.refresh)
    reader.start()
    assert _wait_for(lambda: proxy.faults_applied == 1)
    top.create_container(key, metadata=OLD_METADATA)  # waits in the pool: PoolTimeout, retried
    reader.join(30)
    assert [m for m, t, _ in proxy.requests if m == "POST"] == ["POST"]  # sent once, when a connection was free
    assert _honest(OPS["create_container"], ref_root, top_key, key) == "complete"
    client.context.close()


def _wait_for(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
