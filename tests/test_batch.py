"""``Container.batch()``: many writes whose requests overlap, against a real server.

Order of children, data and metadata read back (also by the reference client),
the requests a batch sends, arguments refused at submit time, and a failure in
the middle: the batch stops, says how much was stored, and a rerun with
``on_conflict="skip"`` finishes it.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from tiled_core.client import from_uri
from tiled_core.client.batch import WriteBatch
from tiled_core.client.conflict import is_incomplete
from tiled_core.transport import Conflict, ServerError


def _frames(n: int):
    return [(f"f{i:03d}", np.arange(12, dtype="int32").reshape(3, 4) * i, {"index": i}) for i in range(n)]


def test_children_arrive_in_order_with_their_data(scratch, ref_scratch):
    frames = _frames(16)
    with scratch.batch(concurrency=4) as batch:
        assert isinstance(batch, WriteBatch)
        futures = [batch.write_array(data, key=key, metadata=md) for key, data, md in frames]
        table = batch.write_table(pd.DataFrame({"x": [1.5, 2.5], "y": ["a", "b"]}), key="summary")
    nodes = batch.results()
    assert [node.item["id"] for node in nodes] == [key for key, _, _ in frames] + ["summary"]
    assert [f.result().item["id"] for f in futures] == [key for key, _, _ in frames]
    assert table.result().read()["y"].tolist() == ["a", "b"]
    assert list(scratch.keys()) == [key for key, _, _ in frames] + ["summary"]
    for key, data, md in frames[::5]:
        np.testing.assert_array_equal(scratch[key].read(), data)
        np.testing.assert_array_equal(ref_scratch[key].read(), data)  # the reference client reads them too
        assert dict(ref_scratch[key].metadata) == md
    assert not any(is_incomplete(node) for node in scratch.values())


def test_a_batch_sends_what_single_writes_send(tiled_server, proxy, ref_root):
    parent = ref_root.create_container(f"t-{uuid.uuid4().hex[:12]}")
    client = from_uri(proxy.uri, api_key=tiled_server.api_key)
    try:
        container = client[parent.item["id"]]
        proxy.requests.clear()
        with container.batch() as batch:
            for key, data, md in _frames(10):
                batch.write_array(data, key=key, metadata=md)
        methods = [method for method, target, _ in proxy.requests if parent.item["id"] in target]
        assert methods.count("POST") == 10 and methods.count("PATCH") == 10 and len(methods) == 20
    finally:
        client.context.close()


def test_bad_writes_are_refused_at_submit_and_the_rest_go_on(scratch):
    with scratch.batch() as batch:
        batch.write_array(np.arange(3), key="a")
        with pytest.raises(ValueError, match="written twice in this batch"):
            batch.write_array(np.arange(3), key="a")
        with pytest.raises(ValueError, match="characters"):
            batch.write_array(np.arange(3), key="bad/key")
        with pytest.raises(TypeError, match="masked"):
            batch.write_array(np.ma.masked_array([1, 2], mask=[0, 1]), key="masked")
        with pytest.raises(ValueError, match="on_conflict"):
            batch.write_array(np.arange(3), key="b", on_conflict="overwrite")
        batch.write_array(np.arange(4), key="b")
    assert list(scratch.keys()) == ["a", "b"]
    with pytest.raises(RuntimeError, match="finished"):
        batch.write_array(np.arange(3), key="late")


def test_a_failure_stops_the_batch_and_a_rerun_with_skip_finishes(tiled_server, proxy, ref_root):
    parent = ref_root.create_container(f"t-{uuid.uuid4().hex[:12]}")
    client = from_uri(proxy.uri, api_key=tiled_server.api_key)
    frames = _frames(14)
    try:
        container = client[parent.item["id"]]
        proxy.respond(500, body=b'{"detail": "disk full"}', match=f"{parent.item['id']}/f005", method="PATCH")
        with pytest.raises(ServerError) as raised:
            with container.batch(concurrency=2) as batch:
                for key, data, md in frames:
                    batch.write_array(data, key=key, metadata=md)
        assert "rerun the same writes with on_conflict='skip'" in " ".join(raised.value.__notes__).lower()
        stored = list(container.keys())
        assert "f005" in stored and is_incomplete(container["f005"])  # created, never filled: looks so
        assert len(stored) < len(frames)  # creates stopped soon after the failure
        assert stored == [key for key, _, _ in frames[: len(stored)]]
        with container.batch() as batch:
            for key, data, md in frames:
                batch.write_array(data, key=key, metadata=md, on_conflict="skip")
        assert list(container.keys()) == [key for key, _, _ in frames]
        for key, data, _ in frames:
            np.testing.assert_array_equal(container[key].read(), data)
    finally:
        proxy.clear()
        client.context.close()


def test_a_conflict_is_raised_once_from_the_with_block(scratch):
    scratch.write_array(np.zeros(5), key="taken")
    with pytest.raises(Conflict):
        with scratch.batch() as batch:
            batch.write_array(np.arange(3), key="first")
            batch.write_array(np.arange(3), key="taken")
    assert "first" in scratch.keys()
    with pytest.raises(RuntimeError, match="failed"):
        batch.results()


def test_an_error_in_the_callers_loop_stops_the_batch(scratch):
    with pytest.raises(KeyError, match="from the caller"):
        with scratch.batch() as batch:
            batch.write_array(np.arange(3), key="kept")
            raise KeyError("from the caller")
    assert all(not is_incomplete(node) for node in scratch.values())
