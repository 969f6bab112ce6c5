"""A real persistent server SIGKILLed and restarted on its port, with the default retry policy.

* mid-read of a 96 MiB array and mid-``write_array`` of a 96 MiB dask array:
  both calls return, with the right data, once the server is back;
* a client kept alive through the fault proxy (tests/_proxy.py) across the
  restart: the proxy's dead upstream connection is replaced, not reused;
* mid-create of an array: the server leaves the key's storage directory
  behind without a node, so every later create of that key fails; the error
  says so, and ``on_conflict="replace"`` clears it and writes the array.

One server (its catalog and data on disk) serves the module.
"""

from __future__ import annotations

import threading
import time
import uuid

import dask.array
import numpy as np
import pytest

from _checks import running
from _proxy import FaultProxy
from tiled_core.client import from_uri
from tiled_core.client.conflict import is_incomplete
from tiled_core.transport import RetryPolicy, ServerError

ROWS, COLUMNS = 96, 131072  # float64: 96 MiB
DOWN_SECONDS = 3.0


@pytest.fixture
def persistent(killable_server):
    """The session's killable server: its directory survives the kills and restarts here."""
    return running(killable_server)


@pytest.fixture
def default_retries(monkeypatch):
    monkeypatch.delenv("TILED_RETRY_ATTEMPTS", raising=False)
    monkeypatch.delenv("TILED_RETRY_TIMEOUT", raising=False)


def _connect(server):
    client = from_uri(server.uri, api_key=server.api_key)
    assert client.context.session.retry == RetryPolicy()  # the defaults, as a pipeline gets them
    return client


def _restart_later(server, delay: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), server.restart()), name="restart", daemon=True)
    thread.start()
    return thread


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_read_and_write_in_flight_survive_a_restart(persistent, default_retries):
    data = np.random.default_rng(5).random((ROWS, COLUMNS))
    reader, writer = _connect(persistent), _connect(persistent)
    top = f"restart-{uuid.uuid4().hex[:6]}"
    reader.create_container(top)
    stored = reader[top].write_array(data, key="stored")
    source = dask.array.from_array(data[::-1].copy(), chunks=(8, COLUMNS))  # 12 blocks of 8 MiB, then the mark
    results, errors = {}, {}

    def run(name, call):
        try:
            results[name] = call()
        except BaseException as exc:  # reported below
            errors[name] = exc

    # A client through the fault proxy with a kept-alive connection across the restart (see the end).
    proxy = FaultProxy("127.0.0.1", persistent.port)
    proxied = from_uri(proxy.uri, api_key=persistent.api_key)
    proxied[top]

    read_session, write_session = reader.context.session, writer.context.session
    read_start, write_start = read_session.request_count, write_session.request_count
    threads = [threading.Thread(target=run, args=("read", stored.read)),
               threading.Thread(target=run, args=("write", lambda: writer[top].write_array(source, key="written")))]
    for thread in threads:
        thread.start()
    # In flight: the read's parts are asked for; the write's node is created and blocks are going.
    _wait_for(lambda: read_session.request_count > read_start and write_session.request_count >= write_start + 4)
    persistent.kill()
    assert not persistent.has_crashed()  # killed on purpose: not a crash
    assert not results, "a call finished before the server was killed: nothing was in flight"
    killed = time.monotonic()
    restarter = _restart_later(persistent, DOWN_SECONDS)
    for thread in threads:
        thread.join(120)
    restarter.join(120)
    assert errors == {}
    assert time.monotonic() - killed >= DOWN_SECONDS  # they did wait for the restart
    np.testing.assert_array_equal(results["read"], data)
    written = reader[top]["written"]
    assert not is_incomplete(written)
    np.testing.assert_array_equal(written.read(), data[::-1])
    # The proxy's upstream connection died with the server: its next request goes to the new one.
    proxied.context.session.retry = RetryPolicy(attempts=1)
    assert proxied[top]["written"].shape == (ROWS, COLUMNS)
    proxied.context.close()
    proxy.close()
    reader.context.close()
    writer.context.close()


def test_storage_left_behind_by_a_kill_mid_create(persistent, default_retries):
    """The kill lands after the server made the array's storage, before it committed the node."""
    client = _connect(persistent)
    top = f"left-{uuid.uuid4().hex[:6]}"
    client.create_container(top)
    # Many chunks: the server hashes the structure after making the storage, which widens the window.
    n = 200_000
    array = dask.array.zeros((n,), chunks=1, dtype="uint8")
    key = _left_behind_key(persistent, client, top, array)
    with pytest.raises(ServerError) as info:
        client[top].write_array(np.arange(n, dtype="uint8"), key=key)
    message = str(info.value)
    assert "no node has that key" in message and "on_conflict='replace'" in message
    written = client[top].write_array(np.arange(n, dtype="uint8"), key=key, on_conflict="replace")
    np.testing.assert_array_equal(written.read(), np.arange(n, dtype="uint8"))
    client.context.close()


def _left_behind_key(server, client, top: str, array, tries: int = 3) -> str:
    """Kill the server mid-create until it leaves a key's storage without a node; restart it; the key."""
    for _ in range(tries):
        key = f"k{uuid.uuid4().hex[:6]}"
        storage = server.directory / "data" / top / key / "zarr.json"  # the array's storage, once made
        creator = threading.Thread(target=_attempt_create, args=(server, top, key, array), daemon=True)
        creator.start()
        _wait_for(lambda: storage.exists() or not creator.is_alive())
        server.kill()
        server.restart()
        creator.join(60)
        if storage.exists() and client[top].get(key) is None:
            return key
    pytest.fail(f"no kill in {tries} tries landed between the storage and the commit")


def _attempt_create(server, top: str, key: str, array) -> None:
    client = from_uri(server.uri, api_key=server.api_key)
    client.context.session.retry = RetryPolicy(attempts=1)
    try:
        client[top].new("array", [_source(array)], key=key)
    except Exception:  # the server dies under it
        pass
    finally:
        client.context.close()


def _source(array) -> dict:
    from tiled_core.client.writing._upload import array_data_source

    return array_data_source(array)[1]

