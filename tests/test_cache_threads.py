"""The response cache's reference-client surface against a real server: ``CachedResponse`` in
``record_history()``, limits changed on a live cache (LRU eviction), the thread rules
(``ThreadingMode``, ``write_safe``), ``SerializableLock`` and ``with_thread_lock``.
"""

from __future__ import annotations

import concurrent.futures
import pickle
import sqlite3
import threading
import time
import uuid
from contextlib import closing

import httpx
import numpy as np
import pytest

from tiled_core.client import from_uri, record_history
from tiled_core.client.cache import Cache, CachedResponse, SerializableLock, ThreadingMode, with_thread_lock

BIG = 1 << 20


@pytest.fixture(scope="module")
def stored(ref_root):
    """A container (written by the reference client) with an array and ten small children."""
    key = f"cachethr-{uuid.uuid4().hex[:8]}"
    container = ref_root.create_container(key)
    container.write_array(np.arange(50_000, dtype="float64"), key="arr")
    for i in range(10):
        container.create_container(f"c{i}", metadata={"i": i, "pad": "x" * 200})
    return key


@pytest.fixture
def client(tiled_server, tmp_path, monkeypatch):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key,
                      cache=Cache(tmp_path / "responses.db", max_item_size=BIG))
    yield client
    client.context.close()


def test_revalidated_answers_show_as_cached_responses(client, stored):
    cache = client.context.cache
    with record_history() as first:
        node = client[stored]
        np.testing.assert_array_equal(node["arr"].read(), np.arange(50_000.0))
        keys = list(node)
    assert first.responses and not any(isinstance(r, CachedResponse) for r in first.responses)
    assert cache.count() >= 3
    with record_history() as second:
        node = client[stored]
        np.testing.assert_array_equal(node["arr"].read(), np.arange(50_000.0))
        assert list(node) == keys
    assert len(second.responses) == len(second.requests) == len(first.responses)
    assert all(isinstance(r, CachedResponse) and r.status_code == 200 for r in second.responses)
    assert any("/array/full/" in str(r.request.url) for r in second.responses)  # the data read too
    documents = [r for r in second.responses if "/metadata/" in str(r.request.url)]
    assert documents and documents[-1].json()["data"]["id"] in (stored, "arr")  # msgpack, decoded
    client.context.cache = None
    with record_history() as uncached:
        client[stored]["arr"].read()
    assert uncached.responses and not any(isinstance(r, CachedResponse) for r in uncached.responses)


def test_limits_changed_on_a_live_cache(client, stored):
    cache = client.context.cache
    cache.capacity = 3_000  # below max_item_size: allowed, as with the reference client
    node = client[stored]
    for i in range(10):
        node[f"c{i}"]
    assert 0 < cache.count() < 10 and cache.size() <= 3_000
    with record_history() as recent:
        node["c9"]
    assert recent.responses and all(isinstance(r, CachedResponse) for r in recent.responses)
    with record_history() as oldest:
        node["c0"]  # evicted to make room
    assert oldest.responses and not any(isinstance(r, CachedResponse) for r in oldest.responses)
    cache.max_item_size = 10
    cache.clear()
    for _ in range(2):
        with record_history() as history:
            node["c1"]
        assert not any(isinstance(r, CachedResponse) for r in history.responses)
    assert cache.count() == 0


def test_other_threads_write_unless_sqlite_is_single_threaded(client, stored, monkeypatch):
    cache = client.context.cache
    request = httpx.Request("GET", "http://h/x", headers={"accept": "application/json"})
    response = httpx.Response(200, headers={"etag": '"1"'}, content=b"body")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(cache.write_safe).result() is True
        assert pool.submit(lambda: cache.set(request=request, response=response)).result() is True
        pool.submit(cache.clear).result()
        client[stored]["c2"]  # the client's own requests, stored from a worker thread
        assert pool.submit(lambda: client[stored]["c3"]).result() is not None
        assert cache.count() >= 2
        monkeypatch.setattr(sqlite3, "threadsafety", ThreadingMode.SINGLE_THREAD)
        assert pool.submit(cache.write_safe).result() is False and cache.write_safe()
        for call in (cache.clear, lambda: cache.delete(request),
                     lambda: cache.set(request=request, response=response)):
            with pytest.raises(RuntimeError, match="different thread"):
                pool.submit(call).result()
        before = cache.count()
        pool.submit(lambda: client[stored]["c4"]).result()  # read from there, not stored
        assert cache.count() == before
        cache.clear()  # the owner thread still may
        assert cache.count() == 0


def test_lock_survives_pickling_and_readonly_connection_refuses_writes(tmp_path):
    cache = Cache(tmp_path / "responses.db")
    once = pickle.loads(pickle.dumps(cache))
    twice = pickle.loads(pickle.dumps(once))
    assert cache._lock.lock is once._lock.lock is twice._lock.lock
    assert isinstance(cache._lock.lock, type(threading.Lock()))
    assert Cache(tmp_path / "other.db")._lock.lock is not cache._lock.lock
    assert SerializableLock("t1").lock is SerializableLock("t1").lock
    readonly = Cache(tmp_path / "responses.db", readonly=True)
    with closing(readonly._conn.cursor()) as cursor:
        assert cursor.execute("SELECT COUNT(*) FROM responses").fetchone() == (0,)
        with pytest.raises(sqlite3.OperationalError):
            cursor.execute("DELETE FROM responses")
    readonly.close()


def test_with_thread_lock_serializes_calls():
    class Counter:
        def __init__(self) -> None:
            self._lock = SerializableLock()
            self.active = self.most = 0

        @with_thread_lock
        def work(self) -> None:
            self.active += 1
            self.most = max(self.most, self.active)
            time.sleep(0.01)
            self.active -= 1

    counter = Counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: counter.work(), range(12)))
    assert counter.most == 1 and not counter._lock.locked()
