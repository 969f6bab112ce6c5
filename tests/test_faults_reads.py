"""Reads under injected faults: identical data after retries, or a clear error; never wrong or partial data.

Every read operation (array full and block, table partition, listing pages,
metadata) meets every fault kind of tests/_faults.py twice: once transient
(one request hit: the read must succeed with data equal to what was written)
and once persistent (every matching request hit: the read must raise the
fault's error after a bounded number of attempts). A real server is also
killed in the middle of reads and restarted: the reads ride through it, and
while it is down they fail clearly.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pandas as pd
import pytest
from tiled.client import from_uri as ref_from_uri

from _faults import FAULTS, PERSISTENT, Crash, arm, check_status, expected_error, fast_client, gave_up_after, timeout_for
from _faults import clients  # noqa: F401  (a fixture)
from _checks import running
from _proxy import FaultProxy
from tiled_core.transport import ConnectionFailed, RetryPolicy

ARRAY = np.arange(4000, dtype="float64").reshape(40, 100)
TABLE = pd.DataFrame({"x": np.arange(12), "y": np.linspace(0, 1, 12)})
CHILDREN = 7  # listed three at a time: three pages
STALL_TIMEOUT = 0.5  # reads are retried, so a busy machine's slow answer only costs a retry


def seed(ref_root) -> str:
    """Write the test data with the reference client; return the container's key."""
    import dask.array
    import dask.dataframe

    key = f"reads-{uuid.uuid4().hex[:8]}"
    top = ref_root.create_container(key)
    top.write_array(dask.array.from_array(ARRAY, chunks=(20, 50)), key="arr")
    top.write_table(dask.dataframe.from_pandas(TABLE, npartitions=2), key="tab")
    listing = top.create_container("listing")
    for i in range(CHILDREN):
        listing.create_container(f"c{i}", metadata={"i": i})
    top.update_metadata({"purpose": "fault matrix", "nested": {"a": [1, 2, 3]}})
    return key


# operation -> (read(container) -> value, check(value), the request target the fault strikes)
def _listing(top):
    return [(key, child.metadata["i"]) for key, child in top["listing"].items().page_size(3)]


OPERATIONS = {
    "array_full": (lambda top: top["arr"].read(), lambda v: np.testing.assert_array_equal(v, ARRAY), "/array/full/"),
    "array_block": (lambda top: top["arr"].read_block((1, 0)),
                    lambda v: np.testing.assert_array_equal(v, ARRAY[20:, :50]), "/array/block/"),
    "table_partition": (lambda top: top["tab"].read_partition(1),
                        lambda v: pd.testing.assert_frame_equal(v, TABLE.iloc[6:]), "/table/partition/"),
    "listing_pages": (_listing, lambda v: (v == [(f"c{i}", i) for i in range(CHILDREN)]) or _fail(v), "/search/"),
    "metadata": (lambda top: top.refresh().metadata,
                 lambda v: (dict(v) == {"purpose": "fault matrix", "nested": {"a": [1, 2, 3]}}) or _fail(v),
                 "/metadata/"),
}


def _fail(value):
    raise AssertionError(f"wrong data: {value!r}")


@pytest.fixture(scope="module")
def key(ref_root):
    return seed(ref_root)


@pytest.fixture
def top(request, clients, proxy, key):
    """The seeded container through the proxy, loaded before any fault is armed."""
    callspec = getattr(request.node, "callspec", None)
    fault = callspec.params.get("fault") if callspec else "chaos"
    node = clients.node(key, timeout_for(fault, STALL_TIMEOUT))
    proxy.clear()
    yield node
    proxy.clear()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_transient_fault_is_retried_to_identical_data(top, proxy, operation, fault):
    read, check, match = OPERATIONS[operation]
    arm(proxy, fault, times=1, match=match, skip=1 if operation == "listing_pages" else 0)  # listing: page 2
    check(read(top))
    assert [kind for kind, _, _ in proxy.applied] == [fault.split("_")[0]]
    faulted = proxy.applied[0][2]
    assert proxy.targets().count(faulted) >= 2  # the faulted request was sent again


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_persistent_fault_is_a_clear_bounded_error(top, proxy, operation, fault):
    read, _, match = OPERATIONS[operation]
    top.context.session.retry = PERSISTENT
    arm(proxy, fault, times=None, match=match)
    with pytest.raises(expected_error(fault)) as info:
        read(top)
    check_status(fault, info.value)
    attempts = gave_up_after(info.value)  # a stall may use up the deadline in one attempt
    assert attempts is not None and (1 if fault.startswith("stall") else 2) <= attempts <= PERSISTENT.attempts
    # One fault per attempt: nothing slipped through as data.
    assert proxy.faults_applied == attempts, proxy.applied
    assert match in str(info.value)  # the error names the request


def test_chaos_reads_stay_exact(top, proxy):
    """A seeded random fault on 30% of all requests: every read still returns exactly the written data."""
    proxy.chaos(seed=9, rate=0.3, stall=3.0)
    for _ in range(3):
        for read, check, _ in OPERATIONS.values():
            check(read(top))
    assert proxy.faults_applied >= 5
    assert len({kind for kind, _, _ in proxy.applied}) >= 3


# ---------------------------------------------------------------- a crash of the server itself


@pytest.fixture(scope="module")
def crashing(killable_server):
    """The session's killable server (it gets killed here), its proxy, and the seeded key."""
    server = running(killable_server)
    with FaultProxy("127.0.0.1", server.port) as proxy:
        ref = ref_from_uri(server.uri, api_key=server.api_key)
        key = seed(ref)
        ref.context.close()
        yield server, proxy, key


def test_server_killed_mid_reads_then_restarted(crashing):
    """Kill the server in the middle of the listing's pages, with every other read in flight.

    While it is down, fresh reads fail with ConnectionFailed after bounded
    retries; the reads already running keep retrying (long deadline) and
    finish with the right data once it is back.
    """
    server, proxy, key = crashing
    patient = fast_client(proxy.uri, server.api_key, RetryPolicy(attempts=1000, deadline=120.0, max_backoff=0.5))
    impatient = fast_client(proxy.uri, server.api_key, PERSISTENT)
    tops = {name: patient[key] for name in OPERATIONS}
    impatient_top = impatient[key]
    proxy.clear()
    crash = Crash(server, proxy, match="/search/", skip=1, restart=False)  # at the second listing page
    results: dict[str, object] = {}
    errors: dict[str, BaseException] = {}

    def run(name):
        try:
            results[name] = OPERATIONS[name][0](tops[name])
        except BaseException as exc:  # reported below
            errors[name] = exc

    threads = {name: threading.Thread(target=run, args=(name,)) for name in OPERATIONS}
    threads["listing_pages"].start()
    try:
        assert crash.down.wait(60)
        for name, thread in threads.items():
            if name != "listing_pages":
                thread.start()
        for name, (read, _, _) in OPERATIONS.items():  # while down: a clear error, after bounded attempts
            with pytest.raises(ConnectionFailed) as info:
                read(impatient_top)
            assert 2 <= gave_up_after(info.value) <= PERSISTENT.attempts, name
    finally:
        if crash.down.is_set():
            crash.restart_now()
            crash.wait()
    for thread in threads.values():
        thread.join(120)
    assert errors == {}
    for name, (_, check, _) in OPERATIONS.items():
        check(results[name])
    patient.context.close()
    impatient.context.close()
