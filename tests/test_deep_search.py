"""Container.search_deep against the real server: matches at every depth, keyed by relative paths."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tiled_core.client import from_uri
from tiled_core.client.container import DeepSearchResults
from tiled_core.queries import Key

# tree/
#   top            sample=abc, depth=1
#   nested/        (container, sample=abc: containers match too)
#     no_match     depth=2
#     images/
#       s42        sample=abc, depth=3
#       s43        sample=other, depth=3
#   branch/
#     s99          sample=abc, depth=2


@pytest.fixture(scope="module")
def tree(tiled_server):
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    root = client.create_container(f"deep-{uuid.uuid4().hex[:8]}")
    root.write_array(np.ones(3), key="top", metadata={"sample": "abc", "depth": 1})
    nested = root.create_container("nested", metadata={"sample": "abc", "depth": 1})
    nested.write_array(np.ones(3), key="no_match", metadata={"depth": 2})
    images = nested.create_container("images")
    images.write_array(np.ones(3), key="s42", metadata={"sample": "abc", "depth": 3})
    images.write_array(np.ones(3), key="s43", metadata={"sample": "other", "depth": 3})
    root.create_container("branch").write_array(np.ones(3), key="s99", metadata={"sample": "abc", "depth": 2})
    yield root
    client.context.close()


MATCHES = {("top",), ("nested",), ("nested", "images", "s42"), ("branch", "s99")}


def test_matches_at_every_depth_keyed_by_relative_paths(tree):
    results = tree.search_deep(Key("sample") == "abc")
    assert isinstance(results, DeepSearchResults)
    assert len(results) == 4 and set(results) == MATCHES
    assert set(results.keys()[::-1]) == MATCHES and results.keys()[::-1] == list(results.keys())[::-1]
    node = results[("nested", "images", "s42")]
    assert node.metadata["depth"] == 3
    assert node.path_parts == [*tree.path_parts, "nested", "images", "s42"]
    assert results["nested/images/s42"].path == node.path
    assert node.parent.path_parts == [*tree.path_parts, "nested", "images"]
    np.testing.assert_array_equal(node.read(), np.ones(3))
    for key, value in results.items():
        assert value.metadata["sample"] == "abc", key


def test_lookups_cost_one_request_and_respect_the_queries(tree):
    results = tree.search_deep(Key("sample") == "abc")
    session = tree.context.session
    before = session.request_count
    assert ("nested", "images", "s42") in results
    assert session.request_count - before == 1
    assert ("nested", "images", "s43") not in results  # exists, does not match
    with pytest.raises(KeyError):
        results[("no", "such", "node")]


def test_several_queries_and_max_depth(tree):
    assert set(tree.search_deep(Key("sample") == "abc", Key("depth") < 3)) == MATCHES - {("nested", "images", "s42")}
    assert set(tree.search_deep(Key("depth") > 1, Key("depth") < 3)) == {("nested", "no_match"), ("branch", "s99")}
    assert set(tree.search_deep(Key("sample") == "abc", max_depth=1)) == {("top",), ("nested",)}
    assert ("nested", "images", "s42") not in tree.search_deep(Key("sample") == "abc", max_depth=2)
    # From a sub-container: keys relative to it; an earlier search() narrows the deep search too.
    assert set(tree["nested"].search_deep(Key("sample") == "abc")) == {("images", "s42")}
    assert len(tree.search_deep(Key("sample") == "nothing")) == 0


def test_pages_and_slices(tree):
    results = tree.search_deep(Key("sample") == "abc")
    everything = list(results.keys())
    assert [k for k, _ in results.items().page_size(1)] == everything
    session = tree.context.session
    before = session.request_count
    assert [v.path for v in results.values()[:2]] == ["/".join(tree.path_parts + k) for k in everything[:2]]
    assert session.request_count - before == 1
    assert results.keys()[-2:] == everything[-2:] and results.keys()[1:3] == everything[1:3]


def test_bad_arguments_fail_before_any_request(tree):
    session = tree.context.session
    before = session.request_count
    with pytest.raises(TypeError):
        tree.search_deep()
    for bad in (0, 65, -1):
        with pytest.raises(ValueError, match="max_depth"):
            tree.search_deep(Key("sample") == "abc", max_depth=bad)
    with pytest.raises(TypeError):
        tree.search_deep({"sample": "abc"})
    assert session.request_count == before


def test_a_server_without_deep_search_is_not_implemented(tree):
    node = tree["nested"]
    del node.item["links"]["search_deep"]
    with pytest.raises(NotImplementedError):
        node.search_deep(Key("sample") == "abc")
