"""Pickling a Context and its clients against the real server: everything travels but the secret.

The credential stays in this process behind a random token (``LocalCredential``):
a copy unpickled here (or in a fork) authenticates as before; in another
process it has no credential, and says how to give one.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from tiled_core.client import from_uri
from tiled_core.client.cache import Cache
from tiled_core.distributed._local import LocalCredential

from _checks import sends_no_request

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stored(ref_root):
    key = f"pickle-{uuid.uuid4().hex[:8]}"
    container = ref_root.create_container(key, metadata={"purpose": "pickle tests"})
    container.write_array(np.arange(12.0).reshape(3, 4), key="arr")
    return key


@pytest.fixture
def client(tiled_server, tmp_path, monkeypatch):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, max_connections=3,
                      headers={"X-Pipeline": "nightly", "X-Api-Token": "HEADERSECRET42"},
                      cache=Cache(tmp_path / "responses.db", capacity=7_000_000, max_item_size=70_000))
    yield client
    client.context.close()


def _secrets(tiled_server) -> list[bytes]:
    key = tiled_server.api_key
    return [key.encode(), key.encode("utf-16-le"), key[4:-4].encode(), b"HEADERSECRET42", b"Apikey"]


def test_pickles_carry_no_secret_and_round_trip_here(client, stored, tiled_server):
    node = client[stored]
    listed = dict(node.items())  # children from a listing (their structures deferred) pickle too
    looked_up = node["arr"]
    with sends_no_request(client):
        for obj in (client.context, client, node, looked_up, listed["arr"]):
            for dumps in (pickle.dumps, cloudpickle.dumps):
                blob = dumps(obj)
                assert not [s for s in _secrets(tiled_server) if s in blob]
    assert listed["arr"]._pending_structure.unfetched() is not None  # pickling fetched nothing
    copy = pickle.loads(pickle.dumps(client))
    context = copy.context
    assert context is not client.context and context.api_key == tiled_server.api_key
    assert context.max_connections == 3 and context.api_uri == client.context.api_uri
    assert context.http_client.headers["x-pipeline"] == "nightly"
    assert context.http_client.headers["x-api-token"] == "HEADERSECRET42"  # held here, not pickled
    cache = context.cache
    assert (cache.filepath, cache.capacity, cache.max_item_size) == (client.context.cache.filepath, 7_000_000, 70_000)
    assert context.session.retry == client.context.session.retry
    np.testing.assert_array_equal(copy[stored]["arr"].read(), np.arange(12.0).reshape(3, 4))
    again = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(listed["arr"]))))
    assert again.uri == listed["arr"].uri and again.structure().shape == (3, 4)
    np.testing.assert_array_equal(again[1], [4.0, 5.0, 6.0, 7.0])
    assert "(authenticated)" in repr(again.context)
    # One handle per credential: pickling again (or the copy) names the same one; a new key, a new one.
    first = pickle.loads(pickle.dumps(client.context))
    token = client.context._held[0].token
    assert first._held[0].token == token and copy.context._held[0].token == token
    client.context.api_key = tiled_server.api_key
    pickle.dumps(client.context)
    assert client.context._held[0].token != token
    for other in (copy.context, first, again.context):
        other.close()


def _in_fork(blob: bytes, queue) -> None:
    try:
        node = pickle.loads(blob)
        queue.put(node.read().tolist())
    except BaseException as error:  # reported to the parent
        queue.put(repr(error))


def test_a_fork_resolves_the_credential(client, stored):
    blob = pickle.dumps(client[stored]["arr"])
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_fork, args=(blob, queue))
    child.start()
    try:
        assert queue.get(timeout=120) == np.arange(12.0).reshape(3, 4).tolist()
    finally:
        child.join(60)
    assert child.exitcode == 0


_CHILD = textwrap.dedent("""
    import pickle, sys
    node = pickle.loads(sys.stdin.buffer.read())
    print("AUTHENTICATED" if node.context.authenticated else "ANONYMOUS")
    try:
        print(node.read().sum())
    except Exception as error:
        print(type(error).__name__, error)
""")


def _run_child(blob: bytes, tiled_server, **env) -> list[str]:
    child_env = {k: v for k, v in os.environ.items() if k != "TILED_API_KEY"}
    child_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), child_env.get("PYTHONPATH", "")])
    child_env.update(env)
    done = subprocess.run([sys.executable, "-c", _CHILD], input=blob, capture_output=True, env=child_env,
                          timeout=180)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode().strip().splitlines()


def test_another_process_has_no_credential_and_says_how_to_give_one(client, stored, tiled_server):
    blob = pickle.dumps(client[stored]["arr"])
    lines = _run_child(blob, tiled_server)
    assert lines[0] == "ANONYMOUS"
    assert lines[1].startswith("AuthenticationError")
    for hint in ("unpickled", "api_key", "TILED_API_KEY", "login"):
        assert hint in lines[1]
    assert tiled_server.api_key not in "\n".join(lines)
    # With TILED_API_KEY in that process, the copy uses it.
    assert _run_child(blob, tiled_server, TILED_API_KEY=tiled_server.api_key) == ["AUTHENTICATED", "66.0"]


def test_a_key_from_the_environment_travels_as_its_name(tiled_server, stored, monkeypatch):
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    client = from_uri(tiled_server.uri)
    monkeypatch.delenv("TILED_API_KEY")
    try:
        blob = pickle.dumps(client[stored]["arr"])
        assert tiled_server.api_key.encode() not in blob and b"TILED_API_KEY" in blob
        assert _run_child(blob, tiled_server, TILED_API_KEY=tiled_server.api_key) == ["AUTHENTICATED", "66.0"]
    finally:
        client.context.close()


def test_anonymous_and_unresolvable_handles(tiled_server, stored, client):
    assert LocalCredential("no-such-token").resolve() is None
    assert repr(LocalCredential("0123456789abcdef")) == "LocalCredential(01234567...)"
    state = client.context.__reduce__()[1][0]
    assert isinstance(state["credential"], LocalCredential) and state["had_credential"]
    assert "X-Api-Token" not in state["headers"] and state["headers"]["X-Pipeline"] == "nightly"
    with pytest.raises(TypeError, match="stays in its process"):
        pickle.dumps(client.context._held[1])
