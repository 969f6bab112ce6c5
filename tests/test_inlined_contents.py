"""Listing children the server inlined in a node's structure: no request for them.

A real ``tiled serve config`` of tiled's small example tree, whose ``D`` is an
xarray dataset: the server puts its children (``temperature``, ``time``) in the
dataset's own structure (a catalog's containers never do).
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from tiled_core.client import from_uri, record_history
from tiled_core.queries import Eq
from tiled_core.server import ConfiguredTiledServer

from _checks import sends_no_request

_KEY = "EXAMPLEKEY" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def example():
    config = {"authentication": {"single_user_api_key": "${TILED_CORE_EXAMPLE_KEY}"},
              "trees": [{"path": "/", "tree": "tiled.examples.generated_minimal:tree"}]}
    with ConfiguredTiledServer(config, secrets={"TILED_CORE_EXAMPLE_KEY": _KEY}) as server:
        client = from_uri(server.uri, api_key=_KEY)
        yield client
        client.context.close()


def test_inlined_children_are_listed_without_requests(example):
    with record_history() as history:
        dataset = example["D"]
    assert len(history.requests) == 1  # the lookup itself
    assert list(dataset.item["attributes"]["structure"]["contents"]) == ["temperature", "time"]
    with record_history() as history, sends_no_request(dataset):
        assert list(dataset) == ["temperature", "time"] and len(dataset) == 2
        assert dataset.keys()[:] == ["temperature", "time"]
        assert dataset.keys().first() == "temperature" and dataset.keys().last() == "time"
        assert list(dataset.keys()[::-1]) == ["time", "temperature"]
        items = dict(dataset.items())
        assert dataset.items().first()[0] == "temperature" and dataset.values().last().item["id"] == "time"
        assert "time" in dataset.keys()[1:]
    assert history.requests == [] and history.responses == []
    assert items["temperature"].structure_family == "array"
    np.testing.assert_array_equal(items["temperature"].read(), [100, 99, 98])  # a working client


def test_the_private_hooks_can_skip_the_inlined_copy(example):
    dataset = example["D"]
    with record_history() as history:
        assert list(dataset.__iter__(_ignore_inlined_contents=True)) == ["temperature", "time"]
    assert len(history.requests) == 1
    with record_history() as history:
        assert list(dataset._keys_slice(0, 1, 1, _ignore_inlined_contents=True)) == ["temperature"]
        (key, value), = dataset._items_slice(1, 2, 1, _ignore_inlined_contents=True)
    assert len(history.requests) == 2 and key == "time" and value.item["id"] == "time"
    with record_history() as history:
        assert list(dataset._keys_slice(0, 1, 1)) == ["temperature"]
        assert [k for k, _ in dataset._items_slice(0, None, -1)] == ["time", "temperature"]
    assert history.requests == []


def test_a_filtered_listing_asks_the_server(example):
    dataset = example["D"]
    with record_history() as history:
        assert list(dataset.search(Eq("no-such-field", 1))) == []
    assert history.requests  # the inlined copy is the whole listing, not a search's answer
