"""The response cache against real servers: hits, 304 revalidation, keys, limits, damage, processes.

A loopback proxy (tests/_proxy.py) records every request and the status of
every answer, so revalidations (``If-None-Match`` -> 304) are seen from
outside the client. Each test has its own cache file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

from tiled_core.client import from_context, from_profile, from_uri
from tiled_core.client.cache import Cache, CacheWarning
from tiled_core.client.context import Context
from tiled_core.transport import ConnectionFailed, Session

from _proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[1]
DATA = np.arange(20_000, dtype="float64").reshape(100, 200)  # 160 kB
BIG = 1 << 20


@pytest.fixture(scope="module")
def dataset(ref_root):
    """A container with an array, written by the reference client."""
    key = f"cache-{uuid.uuid4().hex[:8]}"
    container = ref_root.create_container(key, metadata={"purpose": "cache tests"})
    container.write_array(DATA, key="arr")
    for i in range(5):
        container.create_container(f"child{i}", metadata={"i": i})
    return key


@pytest.fixture
def cache_file(tmp_path):
    return tmp_path / "responses.db"


@pytest.fixture
def cached(proxy, tiled_server, cache_file, monkeypatch):
    """``cached(**cache_kwargs)`` -> a tiled_core client through the proxy with a fresh Cache."""
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    clients = []

    def make(**kwargs):
        kwargs.setdefault("max_item_size", BIG)
        client = from_uri(proxy.uri, api_key=tiled_server.api_key, cache=Cache(cache_file, **kwargs))
        clients.append(client)
        proxy.clear()
        return client

    yield make
    for client in clients:
        client.context.close()


def _statuses(proxy: FaultProxy, fragment: str) -> list[int]:
    return [status for _, target, status in proxy.responses if fragment in target]


def _conditional(proxy: FaultProxy, fragment: str) -> list[bool]:
    return [any(k.lower() == "if-none-match" for k in headers) for _, target, headers in proxy.requests
            if fragment in target]


# ------------------------------------------------------------------ through the client


def test_hits_are_revalidated_with_304(cached, proxy, dataset):
    client = cached()
    np.testing.assert_array_equal(client[dataset]["arr"].read(), DATA)
    assert _statuses(proxy, "/array/full/") == [200]
    cache = client.context.cache
    stored = cache.count()
    assert stored >= 3 and cache.size() >= DATA.nbytes  # the node documents and the array
    proxy.clear()
    again = client[dataset]["arr"].read()
    np.testing.assert_array_equal(again, DATA)
    assert _statuses(proxy, "/array/full/") == [304]  # no body travelled
    assert _statuses(proxy, "/metadata/") == [304, 304]
    assert all(_conditional(proxy, "/"))
    assert cache.count() == stored


def test_listing_is_cached(cached, proxy, dataset):
    client = cached()
    first = [(k, dict(v.metadata)) for k, v in client[dataset].items()]
    proxy.clear()
    assert [(k, dict(v.metadata)) for k, v in client[dataset].items()] == first
    assert _statuses(proxy, "/search/") == [304]


def test_changed_data_is_refetched(cached, proxy, root, tiled_server):
    key = f"chg-{uuid.uuid4().hex[:8]}"
    root.write_array(np.zeros(10), key=key)
    client = cached()
    np.testing.assert_array_equal(client[key].read(), np.zeros(10))
    root[key].write(np.ones(10))  # changed by someone else
    proxy.clear()
    np.testing.assert_array_equal(client[key].read(), np.ones(10))
    assert _statuses(proxy, "/array/full/") == [200]  # the stored ETag no longer matched
    proxy.clear()
    np.testing.assert_array_equal(client[key].read(), np.ones(10))
    assert _statuses(proxy, "/array/full/") == [304]  # and the new version was stored


def test_max_age_skips_revalidation_within_it(cached, proxy, root):
    key = f"age-{uuid.uuid4().hex[:8]}"
    root.write_array(np.zeros(10), key=key)
    client = cached(max_age=3600)
    node = client[key]
    node.read()
    proxy.clear()
    root[key].write(np.ones(10))
    np.testing.assert_array_equal(node.read(), np.zeros(10))  # trusted: the change is not seen
    assert proxy.requests == []  # not even a revalidation
    client.context.cache = Cache(client.context.cache.filepath, max_item_size=BIG, max_age=0)
    np.testing.assert_array_equal(node.read(), np.ones(10))
    assert _statuses(proxy, "/array/full/") == [200]
    with pytest.raises(ValueError, match="max_age"):
        Cache(client.context.cache.filepath, max_age=-1)


def test_accept_headers_never_mix(tiled_server, dataset, cache_file):
    cache = Cache(cache_file)
    with Session(tiled_server.uri, api_key=tiled_server.api_key, cache=cache) as session:
        path = f"array/full/{dataset}/arr"
        params = [("slice", "0:2,0:3")]
        csv = session.get_bytes(path, params, accept="text/csv")
        raw = session.get_bytes(path, params, accept="application/octet-stream")
        assert csv != raw and cache.count() == 2
        assert session.get_bytes(path, params, accept="text/csv") == csv  # 304s, each its own body
        assert session.get_bytes(path, params, accept="application/octet-stream") == raw
        assert cache.count() == 2


def test_users_never_mix(auth_server, tmp_path, monkeypatch):
    """alice and bob read the same node through one cache file: bob never gets alice's entry."""
    monkeypatch.setenv("TILED_CACHE_DIR", str(tmp_path / "tokens"))
    cache_path = tmp_path / "shared.db"
    with FaultProxy("127.0.0.1", auth_server.port) as proxy:
        contexts = {}
        for user in ("alice", "bob"):
            context = Context(proxy.uri, cache=Cache(cache_path, max_item_size=BIG))
            context.login(username=user, password=auth_server.passwords[user], remember_me=False)
            contexts[user] = context
        try:
            key = f"u-{uuid.uuid4().hex[:8]}"
            from_context(contexts["alice"]).write_array(np.arange(4.0), key=key)
            alice = from_context(contexts["alice"])[key]
            alice.read()
            count = contexts["alice"].cache.count()
            proxy.clear()
            bob = from_context(contexts["bob"])[key]
            np.testing.assert_array_equal(bob.read(), np.arange(4.0))
            assert _conditional(proxy, "/array/full/") == [False]  # nothing of alice's was offered
            assert contexts["bob"].cache.count() > count
            # Keys are per user, not per token: after a refresh, bob still hits his own entry.
            contexts["bob"].force_auth_refresh()
            proxy.clear()
            bob.read()
            assert _statuses(proxy, "/array/full/") == [304]
        finally:
            for context in contexts.values():
                context.close()


def test_items_over_max_item_size_are_not_stored(cached, proxy, dataset):
    client = cached(max_item_size=DATA.nbytes - 1, capacity=10 * BIG)
    client[dataset]["arr"].read()
    cache = client.context.cache
    assert cache.size() < DATA.nbytes  # documents only
    proxy.clear()
    client[dataset]["arr"].read()
    assert _conditional(proxy, "/array/full/") == [False] and _statuses(proxy, "/array/full/") == [200]


def test_bulk_and_httpx_paths_both_use_the_cache(tiled_server, dataset, cache_file):
    """``read_into`` over the bulk (http.client) path and over httpx (a given client) share entries."""
    cache = Cache(cache_file, max_item_size=BIG)
    path, params = f"array/full/{dataset}/arr", []
    with Session(tiled_server.uri, api_key=tiled_server.api_key, cache=cache) as bulk, \
            Session(tiled_server.uri, api_key=tiled_server.api_key, cache=cache, http_client=httpx.Client()) as plain:
        assert bulk._bulk is not None and plain._bulk is None
        for session in (bulk, plain, bulk):
            out = np.empty_like(DATA)
            before = session.request_count
            session.read_into(path, params, accept="application/octet-stream", out=memoryview(out).cast("B"))
            np.testing.assert_array_equal(out, DATA)
            assert session.request_count - before == 1
        assert cache.count() == 1


def test_readonly_cache_reads_but_never_writes(cached, proxy, dataset, cache_file, tiled_server):
    cached()[dataset]["arr"].read()  # a writer fills the file
    count, size = Cache(cache_file).count(), Cache(cache_file).size()
    readonly = Cache(cache_file, readonly=True, max_item_size=BIG)
    assert readonly.readonly and not readonly.write_safe()
    client = from_uri(proxy.uri, api_key=tiled_server.api_key, cache=readonly)
    try:
        proxy.clear()
        np.testing.assert_array_equal(client[dataset]["arr"].read(), DATA)
        assert _statuses(proxy, "/array/full/") == [304]
        client[dataset]["child0"]  # not cached yet: fetched, not stored
        assert (readonly.count(), readonly.size()) == (count, size)
        request = httpx.Request("GET", "http://h/x")
        for call in (readonly.clear, lambda: readonly.delete(request),
                     lambda: readonly.set(request=request, response=httpx.Response(200, content=b"x"))):
            with pytest.raises(RuntimeError, match="read"):
                call()
    finally:
        client.context.close()


def test_offline_reads_need_opting_in(tiled_server, dataset, cache_file, monkeypatch):
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("TILED_RETRY_TIMEOUT", "5")
    key = tiled_server.api_key
    with FaultProxy("127.0.0.1", tiled_server.port) as proxy:
        warm = from_uri(proxy.uri, api_key=key, cache=Cache(cache_file, max_item_size=BIG))
        warm[dataset]["arr"].read()
        warm.context.close()
        uri = proxy.uri
    # The proxy is gone: nothing listens there any more.
    with pytest.raises(ConnectionFailed):
        from_uri(uri, api_key=key, cache=Cache(cache_file, max_item_size=BIG))
    offline = Cache(cache_file, max_item_size=BIG, allow_offline=True)
    with pytest.warns(CacheWarning, match="unreachable"):
        client = from_uri(uri, api_key=key, cache=offline)
    try:
        np.testing.assert_array_equal(client[dataset]["arr"].read(), DATA)
        with pytest.raises(ConnectionFailed):
            client[dataset]["child3"]  # never fetched: nothing to answer with
    finally:
        client.context.close()


def test_cache_from_profile_and_mapping(tiled_server, dataset, cache_file, tmp_path, monkeypatch):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "p.yml").write_text(
        f"p:\n  uri: {tiled_server.uri}\n  cache:\n    filepath: {cache_file}\n"
        f"    capacity: 5000000\n    max_item_size: {BIG}\n    max_age: 60\n    allow_offline: true\n"
    )
    monkeypatch.setenv("TILED_PROFILES", str(profiles))
    monkeypatch.setenv("TILED_SITE_PROFILES", str(tmp_path / "no-site-profiles"))
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    client = from_profile("p")
    try:
        cache = client.context.cache
        assert isinstance(cache, Cache) and cache.filepath == cache_file
        assert (cache.capacity, cache.max_item_size, cache.max_age, cache.allow_offline) == (5_000_000, BIG, 60, True)
        client[dataset]["arr"].read()
        assert cache.size() >= DATA.nbytes
    finally:
        client.context.close()
    with pytest.raises(TypeError, match="Cache"):
        from_uri(tiled_server.uri, cache="yes")


# ------------------------------------------------------------------ the Cache itself


def _pair(url: str, body: bytes, etag: str = '"v1"', accept: str = "application/json"):
    request = httpx.Request("GET", url, headers={"accept": accept})
    response = httpx.Response(200, headers={"etag": etag, "content-type": accept}, content=body, request=request)
    return request, response


def test_cache_api(cache_file):
    cache = Cache(cache_file, capacity=10_000, max_item_size=5_000)
    assert (cache.filepath, cache.capacity, cache.max_item_size, cache.readonly) == (cache_file, 10_000, 5_000, False)
    assert cache.write_safe() and cache.count() == 0 and cache.size() == 0
    request, response = _pair("http://h/api/v1/a?x=1", b"hello")
    assert cache.set(request=request, response=response)
    got = cache.get(httpx.Request("GET", "http://h/api/v1/a?x=1", headers={"accept": "application/json"}))
    assert got.status_code == 200 and got.content == b"hello" and got.headers["etag"] == '"v1"'
    assert cache.get(httpx.Request("GET", "http://h/api/v1/a?x=1", headers={"accept": "text/csv"})) is None
    assert cache.get(httpx.Request("GET", "http://h/api/v1/a?x=1", headers={
        "accept": "application/json", "authorization": "Apikey other"})) is None
    assert (cache.count(), cache.size()) == (1, 5)
    assert not cache.set(request=request, response=httpx.Response(200, content=b"x" * 5_001))  # too big
    cache.delete(request)
    assert cache.count() == 0
    cache.set(request=request, response=response)
    cache.clear()
    assert cache.count() == 0
    cache.close()
    cache.set(request=request, response=response)  # reopens
    assert pickle.loads(pickle.dumps(cache)).get(request).content == b"hello"
    assert repr(cache) == f"<Cache {str(cache_file)!r}>"
    cache.capacity, cache.max_item_size = 20_000, 1_000
    with pytest.raises(ValueError):
        cache.max_item_size = 0
    cache.capacity = 4  # below max_item_size, as the reference allows: a body larger than either is not stored
    assert not cache.set(request=request, response=_pair("http://h/api/v1/a?x=1", b"hello")[1])
    assert cache.set(request=request, response=_pair("http://h/api/v1/a?x=1", b"hey")[1])
    assert (cache.count(), cache.size()) == (1, 3)
    assert pickle.loads(pickle.dumps(cache)).capacity == 4
    with pytest.raises(ValueError, match="greater than max_item_size"):
        Cache(cache_file, capacity=100, max_item_size=100)
    with pytest.raises(TypeError):
        Cache(cache_file, capacity="big")


def test_least_recently_used_entries_go_first(cache_file):
    cache = Cache(cache_file, capacity=10_000, max_item_size=4_000)
    pairs = {name: _pair(f"http://h/{name}", name.encode() * 3_000) for name in "abc"}
    for request, response in pairs.values():
        assert cache.set(request=request, response=response)
    assert cache.count() == 3 and cache.size() == 9_000
    assert cache.get(pairs["a"][0]) is not None  # a is now the most recently used
    request, response = _pair("http://h/d", b"d" * 3_000)
    cache.set(request=request, response=response)
    assert cache.size() <= cache.capacity
    assert [cache.get(pairs[name][0]) is not None for name in "abc"] == [True, False, True]
    assert cache.get(request) is not None


def test_a_replaced_entry_is_not_served_for_an_old_etag(cache_file):
    from tiled_core.transport._cache import cache_key

    cache = Cache(cache_file)
    key = cache_key("GET", "http://h/x", "application/json", "anonymous")
    cache.store(key, 200, httpx.Headers({"etag": '"1"'}), b"old")
    entry = cache.lookup(key)
    Cache(cache_file).store(key, 200, httpx.Headers({"etag": '"2"'}), b"new")  # another process, say
    assert cache.read_body(entry) is None  # the 304 was for "1": "new" must not be served for it
    assert cache.read_body(cache.lookup(key)) == b"new"


def test_corrupt_or_foreign_file_means_no_caching(tiled_server, dataset, tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE precious (x)")
    for path in (garbage, foreign):
        before = path.read_bytes()
        with pytest.warns(CacheWarning, match="disabled"):
            cache = Cache(path, max_item_size=BIG)
        assert not cache.usable and cache.count() == 0
        client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, cache=cache)
        try:
            np.testing.assert_array_equal(client[dataset]["arr"].read(), DATA)
        finally:
            client.context.close()
        assert path.read_bytes() == before  # never "repaired" into someone else's file


def test_file_damaged_while_in_use(tiled_server, dataset, cache_file):
    cache = Cache(cache_file, max_item_size=BIG)
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, cache=cache)
    try:
        client[dataset]["arr"].read()
        cache.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{cache_file}{suffix}").unlink(missing_ok=True)
        cache_file.write_bytes(os.urandom(65536))
        with pytest.warns(CacheWarning):
            np.testing.assert_array_equal(client[dataset]["arr"].read(), DATA)
        assert not cache.usable
    finally:
        client.context.close()


def test_locked_file_means_no_caching(tiled_server, dataset, cache_file):
    cache = Cache(cache_file, max_item_size=BIG)
    cache._busy_timeout = 0.2
    cache.close()
    holder = sqlite3.connect(cache_file, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM responses")  # holds the write lock, and (exclusive mode) keeps others out
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, cache=cache)
            np.testing.assert_array_equal(client[dataset]["arr"].read(), DATA)
            client.context.close()
        assert any(issubclass(w.category, CacheWarning) and "locked" in str(w.message) for w in seen)
        assert not cache.usable
    finally:
        holder.execute("ROLLBACK")
        holder.close()


_WRITER = textwrap.dedent("""
    import hashlib, sys
    import httpx
    from tiled_core.client.cache import Cache
    path, me, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cache = Cache(path, capacity=3_000_000, max_item_size=200_000)
    for i in range(n):
        for url in (f"http://h/own/{me}/{i}", f"http://h/shared/{i % 7}"):
            digest = hashlib.sha256(url.encode()).digest()
            body = digest * (100 + (i * 997) % 3000)  # shared URLs: each process writes other lengths
            request = httpx.Request("GET", url, headers={"accept": "application/octet-stream"})
            response = httpx.Response(200, headers={"etag": url}, content=body)
            cache.set(request=request, response=response)
            got = cache.get(request)
            # Evicted, or replaced by another process, is fine; another URL's bytes or a torn body is not.
            assert got is None or got.content == digest * (len(got.content) // 32) and len(got.content) % 32 == 0, url
    print("OK")
""")


def test_concurrent_writers_in_several_processes(cache_file):
    """Four processes write, overwrite, evict and read one file at once: no errors, no mixed bodies."""
    Cache(cache_file)  # created once, so the writers race on entries rather than on the schema
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    children = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(cache_file), str(me), "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for me in range(4)
    ]
    try:
        for child in children:
            out, err = child.communicate(timeout=300)
            assert child.returncode == 0 and out.strip() == "OK", err
            assert "CacheWarning" not in err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    cache = Cache(cache_file, capacity=3_000_000, max_item_size=200_000)
    assert 0 < cache.size() <= cache.capacity
    with sqlite3.connect(cache_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT etag, body FROM responses JOIN bodies ON bodies.id = body_id").fetchall()
        assert conn.execute("SELECT COUNT(*) FROM bodies").fetchone() == (len(rows),)  # no orphans
    assert len(rows) == cache.count()
    for url, body in rows:  # every body is the one written for its URL (the ETag here)
        digest = hashlib.sha256(url.encode()).digest()
        assert body == digest * (len(body) // len(digest))
