"""BaseClient and Container against the real server, compared with the reference client."""

from __future__ import annotations

import random
import uuid

import httpx
import numpy as np
import pytest
import tiled.queries as RQ

import tiled_core.queries as Q
from tiled_core.client import from_uri
from tiled_core.client.array import ArrayClient, DaskArrayClient
from tiled_core.client.container import Container
from tiled_core.structures import ArrayStructure, ContainerStructure, Spec
from tiled_core.transport import ClientError

COLORS = ["red", "green", "blue", "red", "green", "red", None, "blue"]
BIG = 320  # more than one page of 300 (a few seconds per 100 creates, so not more)


def _metadata(i: int) -> dict:
    md = {"num": i, "name": f"sample {i}", "nested": {"x": i % 3, "deep": {"list": [i, {"k": "v"}]}},
          "tags": ["a", "b"] if i % 2 else ["c"]}
    if COLORS[i]:
        md["color"] = COLORS[i]
    return md


def _specs(i: int) -> list:
    return [["SpecA"], [_ref_spec("SpecB", "1.0"), "SpecA"], []][i % 3]


def _ref_spec(name, version):
    from tiled.structures.core import Spec as RefSpec

    return RefSpec(name, version=version)


@pytest.fixture(scope="module")
def catalog(ref_root):
    """Eight children (containers n0, n2, ... and arrays n1, n3, ...) with varied metadata and specs."""
    key = f"cat-{uuid.uuid4().hex[:8]}"
    cat = ref_root.create_container(key, metadata={"role": "catalog"})
    for i in range(len(COLORS)):
        if i % 2:
            cat.write_array(np.arange(i + 1, dtype="float64"), key=f"n{i}", metadata=_metadata(i), specs=_specs(i))
        else:
            child = cat.create_container(key=f"n{i}", metadata=_metadata(i), specs=_specs(i))
            child.write_array(np.zeros(2), key="leaf")
    return key


@pytest.fixture(scope="module")
def ours(tiled_server, catalog) -> Container:
    """The catalog through one tiled_core connection shared by the module."""
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    yield client[catalog]
    client.context.close()


@pytest.fixture(scope="module")
def ref(ref_root, catalog):
    return ref_root[catalog]


@pytest.fixture(scope="module")
def big(tiled_server):
    """A container of BIG small containers made by tiled_core, in a shuffled (non-alphabetical) order."""
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        parent = client.create_container(f"big-{uuid.uuid4().hex[:8]}")
        keys = [f"k{i:04d}" for i in range(BIG)]
        random.Random(7).shuffle(keys)
        for position, key in enumerate(keys):
            parent.create_container(key, metadata={"position": position, "label": f"{position:04d}"})
        return parent.path_parts[-1], keys
    finally:
        client.context.close()


def _count(client) -> int:
    return client.context.session.request_count


# ================================================================ BaseClient


def test_formats(ours):
    array_formats = ours["n1"].formats
    assert array_formats and "application/octet-stream" in array_formats
    assert "text/csv" in array_formats
    container_formats = ours.formats
    assert container_formats and "application/octet-stream" not in container_formats
    assert "application/json" in container_formats


def test_metadata_equals_written_and_reference(ours, ref):
    for i in range(len(COLORS)):
        node = ours[f"n{i}"]
        assert node.metadata == _metadata(i)
        assert node.metadata == dict(ref[f"n{i}"].metadata)
    assert ours.metadata == {"role": "catalog"}


def test_metadata_is_read_only(ours):
    node = ours["n1"]
    with pytest.raises(TypeError):
        node.metadata["color"] = "purple"
    with pytest.raises(TypeError):
        node.metadata["nested"]["x"] = 99
    with pytest.raises((TypeError, AttributeError)):
        node.metadata["nested"]["deep"]["list"].append(3)
    with pytest.raises((TypeError, AttributeError)):
        node.metadata["nested"]["deep"]["list"][1]["k"] = "changed"
    with pytest.raises((TypeError, AttributeError)):
        del node.metadata["num"]
    with pytest.raises(AttributeError):
        node.metadata = {}
    assert node.metadata == _metadata(1)


def test_metadata_copy_is_a_mutable_deep_copy(ours):
    node = ours["n7"]
    md, specs, access_tags = node.metadata_copy()  # three parts, as the reference client returns
    assert access_tags == []
    assert md == _metadata(7)
    assert [s.name for s in specs] == ["SpecB", "SpecA"]
    md["color"] = "purple"
    md["nested"]["deep"]["list"][1]["k"] = "changed"
    md["tags"].append("z")
    specs.append(Spec("Extra"))
    assert node.metadata == _metadata(7)
    assert [s.name for s in node.specs] == ["SpecB", "SpecA"]
    again = node.metadata_copy()[0]
    assert again == _metadata(7)


def test_uri_points_at_the_node(ours, tiled_server, catalog):
    node = ours["n2"]
    assert node.uri == f"{tiled_server.uri}/metadata/{catalog}/n2"
    response = httpx.get(node.uri, headers={"Authorization": f"Apikey {tiled_server.api_key}"})
    assert response.status_code == 200
    assert response.json()["data"]["id"] == "n2"
    assert tiled_server.api_key not in node.uri


def test_structure_family_item_and_specs(ours):
    array, container = ours["n7"], ours["n0"]
    assert array.structure_family == "array" and container.structure_family == "container"
    assert array.item["id"] == "n7"
    assert array.item["attributes"]["metadata"] == _metadata(7)
    assert array.specs == [Spec("SpecB", "1.0"), Spec("SpecA")]
    assert all(isinstance(s, Spec) for s in array.specs)
    assert array.specs[0].name == "SpecB" and array.specs[0].version == "1.0"
    assert container.specs == [Spec("SpecA")]
    assert ours["n2"].specs == []


def test_structure(ours):
    structure = ours["n5"].structure()
    assert isinstance(structure, ArrayStructure)
    assert structure.shape == (6,)
    assert structure.chunks == ((6,),)
    assert structure.dtype == np.dtype("float64")
    container_structure = ours["n0"].structure()
    assert isinstance(container_structure, ContainerStructure)
    assert container_structure.count == 1
    assert isinstance(ours.structure(), ContainerStructure)
    assert ours.structure().count == len(COLORS)


def test_new_variation(ours):
    dasky = ours.new_variation(structure_clients="dask")
    assert type(dasky) is Container
    assert dasky.path_parts == ours.path_parts
    assert isinstance(dasky["n1"], DaskArrayClient)
    assert type(ours["n1"]) is ArrayClient
    same = ours["n1"].new_variation()
    assert type(same) is ArrayClient and same.path_parts == ours["n1"].path_parts
    np.testing.assert_array_equal(same.read(), np.arange(2.0))


def test_reprs_hide_the_key_and_send_nothing(root, ours, tiled_server):
    array = ours["n1"]
    key = tiled_server.api_key
    before, ours_before = _count(root), _count(ours)
    texts = [repr(root), str(root), repr(ours), str(ours), repr(array), str(array), repr(ours.keys()),
             repr(ours.values()), repr(ours.items()), repr(array.metadata), repr(root.context),
             repr(root.context.session), repr(array.structure()), repr(ours.search(Q.Eq("color", "red"))),
             repr(root.context.session_handle)]
    assert _count(root) == before and _count(ours) == ours_before
    for text in texts:
        assert key not in text
    assert "n1" in repr(array)


# ================================================================ Mapping behaviour


def test_mapping_basics(ours, ref):
    expected = [f"n{i}" for i in range(len(COLORS))]
    assert len(ours) == len(COLORS)
    assert list(ours) == expected == list(ref)
    assert "n3" in ours and "zz" not in ours and 3 not in ours
    assert "n3" in ours.keys() and "zz" not in ours.keys()
    assert ours.get("zz") is None
    assert ours.get("zz", 42) == 42
    assert ours.get("n0").metadata["num"] == 0
    assert list(ours.keys()) == expected
    values = list(ours.values())
    assert [v.item["id"] for v in values] == expected
    assert [type(v) for v in values] == [Container, ArrayClient] * 4
    items = list(ours.items())
    assert [k for k, _ in items] == expected
    assert [v.metadata for _, v in items] == [dict(v.metadata) for _, v in ref.items()]
    assert list(ours.keys().page_size(3)) == expected
    assert [k for k, _ in ours.items().page_size(2)] == expected  # 8 = 4 full pages: the last has no next
    assert [v.item["id"] for v in ours.values().page_size(4)] == expected
    with pytest.raises(ValueError):
        ours.keys().page_size(0)


def test_view_indexing_and_slices(ours):
    keys = [f"n{i}" for i in range(len(COLORS))]
    view = ours.keys()
    assert view[0] == "n0" and view[3] == "n3" and view[-1] == "n7" and view[-8] == "n0"
    for s in [slice(None), slice(2, 5), slice(-3, None), slice(1, -1), slice(-5, -2), slice(2, 2), slice(5, 2),
              slice(-2, 3), slice(None, -6), slice(6, 100), slice(-100, 2), slice(None, 0)]:
        assert view[s] == keys[s], s
    # Any step, as Python's lists: walked from the end when the step is negative.
    for s in [slice(None, None, -1), slice(-1, -3, -1), slice(-3, None, -1), slice(5, 1, -2), slice(None, None, 3),
              slice(1, -1, 2), slice(2, 5, -1), slice(100, None, -1), slice(-100, None, -1), slice(None, -100, -1)]:
        assert view[s] == keys[s], s
    assert [k for k, _ in ours.items()[-1:-3:-1]] == ["n7", "n6"]
    assert [v.item["id"] for v in ours.values()[::-3]] == ["n7", "n4", "n1"]
    before = ours.context.session.request_count
    assert view[-2:-6:-1] == keys[-2:-6:-1]
    assert ours.context.session.request_count - before == 1  # no length needed: one page from the end
    with pytest.raises(ValueError, match="zero"):
        view[::0]
    with pytest.raises(IndexError):
        view[8]
    with pytest.raises(IndexError):
        view[-9]
    with pytest.raises(TypeError):
        view["n0"]
    assert ours.values()[-1].item["id"] == "n7"
    assert ours.items()[2][0] == "n2"
    assert [k for k, _ in ours.items()[-2:]] == ["n6", "n7"]
    assert view.first() == "n0" and view.last() == "n7"
    assert view.head() == keys[:5] and view.head(2) == keys[:2]
    assert view.tail() == keys[-5:] and view.tail(1) == ["n7"] and view.tail(0) == []


def test_nested_lookups(ours, catalog, root):
    via_path = ours["n0/leaf"]
    via_chain = ours["n0"]["leaf"]
    via_tuple = ours[("n0", "leaf")]
    from_root = root[f"{catalog}/n0/leaf"]
    for node in (via_path, via_chain, via_tuple, from_root):
        assert isinstance(node, ArrayClient)
        assert node.path_parts == (catalog, "n0", "leaf")
        np.testing.assert_array_equal(node.read(), np.zeros(2))


@pytest.mark.parametrize("key", ["zz", "n0/zz", ("n0", "zz"), "zz/leaf", "n1/x", "", ("n0", ""), "n0//leaf"])
def test_missing_keys(ours, key):
    with pytest.raises(KeyError):
        ours[key]
    assert ours.get(key, "default") == "default"


# ================================================================ many entries (several pages)


def test_listing_more_than_one_page(root, big, ref_root):
    key, expected = big
    ours, ref = root[key], ref_root[key]
    before = _count(root)
    keys = [k for k in ours]
    assert _count(root) - before == 2  # pages of 300: 300 + 20
    assert keys == expected  # insertion order
    assert keys == list(ref.keys())
    assert len(ours) == BIG
    view = ours.keys()
    assert view[299:302] == expected[299:302]
    assert view[-302:-298] == expected[-302:-298]
    assert view[310] == expected[310] and view[-1] == expected[-1]
    assert view.tail(3) == expected[-3:]
    assert list(view.page_size(97)) == expected  # offset, then a chain of cursors
    before = _count(root)
    # two full pages: the second says there is no next (a comprehension, as list() would call len() first)
    assert [k for k in view.page_size(160)] == expected
    assert _count(root) - before == 2


def test_items_of_many_entries_match_reference(root, big, ref_root):
    key, expected = big
    ours = [(k, v.item["id"], dict(v.metadata), v.structure_family) for k, v in root[key].items()]
    theirs = [(k, v.item["id"], dict(v.metadata), v.structure_family) for k, v in ref_root[key].items()]
    assert ours == theirs
    assert [md["position"] for _, _, md, _ in ours] == list(range(BIG))


def test_search_many_entries(root, big, ref_root):
    key, expected = big
    found = root[key].search(Q.Comparison("ge", "position", 150))
    assert list(found) == expected[150:]
    assert list(found) == list(ref_root[key].search(RQ.Comparison("ge", "position", 150)))
    assert len(found) == BIG - 150
    assert found.keys()[-1] == expected[-1]


def test_sorted_listing_of_many_entries(root, big, ref_root):
    """A custom sort pages by offset; every entry must come back, in order.

    (The reference client stops after 200 entries of a sorted listing: it trusts
    the server's "next" link, which the server derives from a count that is
    only a lower bound (exact up to 100).)
    """
    key, expected = big
    ranked = root[key].sort(("label", -1))
    keys = list(ranked)
    assert keys == expected[::-1]
    assert list(ranked.keys().page_size(300)) == expected[::-1]
    assert list(ranked.keys().page_size(160)) == expected[::-1]  # exact multiple, offset paging
    assert ranked.keys().head(3) == expected[::-1][:3]
    assert ranked.keys().tail(3) == expected[:3][::-1]
    assert ranked.keys().last() == expected[0]
    assert ranked.keys()[-301] == expected[300]
    assert ranked.keys()[310:312] == expected[::-1][310:312]
    ascending = root[key].sort(("label", 1))
    assert list(ascending.keys().page_size(200)) == expected
    ref_ranked = list(ref_root[key].sort(("label", -1)).keys())
    assert ref_ranked[:100] == keys[:100]  # the part the reference gets right


# ================================================================ search


QUERY_PAIRS = [
    (Q.FullText("red"), RQ.FullText("red")),
    (Q.KeyLookup("n3"), RQ.KeyLookup("n3")),
    (Q.KeysFilter(["n1", "n2", "zz"]), RQ.KeysFilter(["n1", "n2", "zz"])),
    (Q.Eq("color", "red"), RQ.Eq("color", "red")),
    (Q.Eq("nested.x", 1), RQ.Eq("nested.x", 1)),
    (Q.NotEq("color", "red"), RQ.NotEq("color", "red")),
    (Q.Contains("tags", "a"), RQ.Contains("tags", "a")),
    (Q.Comparison("ge", "num", 4), RQ.Comparison("ge", "num", 4)),
    (Q.Comparison("lt", "num", 2), RQ.Comparison("lt", "num", 2)),
    (Q.Key("num") > 5, RQ.Key("num") > 5),
    (Q.Key("num") <= 1, RQ.Key("num") <= 1),
    (Q.Key("color") == "green", RQ.Key("color") == "green"),
    (Q.In("color", ["red", "blue"]), RQ.In("color", ["red", "blue"])),
    (Q.NotIn("color", ["red", "blue"]), RQ.NotIn("color", ["red", "blue"])),
    (Q.KeyPresent("color"), RQ.KeyPresent("color")),
    (Q.KeyPresent("color", exists=False), RQ.KeyPresent("color", exists=False)),
    (Q.Like("name", "sample _"), RQ.Like("name", "sample _")),
    (Q.Like("name", "%3"), RQ.Like("name", "%3")),
    (Q.SpecsQuery(["SpecA"], exclude=["SpecB"]), RQ.SpecsQuery(["SpecA"], exclude=["SpecB"])),
    (Q.SpecQuery("SpecB"), RQ.SpecQuery("SpecB")),
    (Q.AccessTagsFilter(["x"]), RQ.AccessTagsFilter(["x"])),
    (Q.StructureFamilyQuery("array"), RQ.StructureFamilyQuery("array")),
    (Q.StructureFamilyQuery("container"), RQ.StructureFamilyQuery("container")),
]


@pytest.mark.parametrize("query, ref_query", QUERY_PAIRS, ids=[f"{type(q).__name__}-{i}" for i, (q, _) in enumerate(QUERY_PAIRS)])
def test_search_matches_reference(ours, ref, query, ref_query):
    expected = list(ref.search(ref_query))
    found = ours.search(query)
    assert list(found) == expected
    assert len(found) == len(expected)
    assert list(ours) == [f"n{i}" for i in range(len(COLORS))]  # the original is unchanged


def test_search_results_are_not_trivial(ours):
    """Guard for the comparison above: the queries really filter."""
    assert list(ours.search(Q.Eq("color", "red"))) == ["n0", "n3", "n5"]
    assert list(ours.search(Q.KeyPresent("color", exists=False))) == ["n6"]
    assert list(ours.search(Q.StructureFamilyQuery("array"))) == ["n1", "n3", "n5", "n7"]


def test_regex_is_refused_by_sql_catalogs_like_the_reference(ours, ref):
    with pytest.raises(Exception):
        list(ref.search(RQ.Regex("name", "sample [1-3]")))
    before = _count(ours)
    with pytest.raises(ClientError) as info:
        list(ours.search(Q.Regex("name", "sample [1-3]")))
    assert info.value.status == 400
    assert "Regex" in info.value.detail
    assert _count(ours) - before == 1  # a 400 is not retried


def test_search_rejects_foreign_queries_before_any_request(ours):
    before = _count(ours)
    with pytest.raises(TypeError):
        ours.search(RQ.Eq("color", "red"))  # a tiled.queries object, not a tiled_core one
    with pytest.raises(TypeError):
        ours.search("color == red")
    with pytest.raises(TypeError):
        ours.search(Q.Eq("a", object()))
    assert _count(ours) == before


def test_chained_searches(ours, ref):
    found = ours.search(Q.In("color", ["red", "green"])).search(Q.Comparison("ge", "num", 2))
    expected = list(ref.search(RQ.In("color", ["red", "green"])).search(RQ.Comparison("ge", "num", 2)))
    assert list(found) == expected == ["n3", "n4", "n5"]
    assert list(found.search(Q.StructureFamilyQuery("array"))) == ["n3", "n5"]
    assert len(found) == 3


def test_lookups_inside_a_search(ours):
    found = ours.search(Q.Eq("color", "red"))
    assert found["n3"].metadata["num"] == 3
    assert found["n0"]["leaf"].shape == (2,)
    assert found["n0/leaf"].shape == (2,)
    assert "n0" in found and "n1" not in found
    with pytest.raises(KeyError):
        found["n1"]  # exists in the container but is excluded by the search
    with pytest.raises(KeyError) as error:
        found["n1/anything"]
    assert error.value.args[0] == "n1"  # the key the search excludes, not the whole path
    with pytest.raises(KeyError) as error:
        found["n1", "anything", "deeper"]
    assert error.value.args[0] == "n1"
    with pytest.raises(KeyError) as error:
        found["nope"]
    assert error.value.args[0] == "nope"
    assert found.get("n2", "excluded") == "excluded"
    assert found.keys()[-1] == "n5"
    assert found.values()[0].item["id"] == "n0"


# ================================================================ sort and distinct


def test_sort_ascending_and_descending(ours, ref):
    ascending = ours.sort(("num", 1))
    descending = ours.sort(("num", -1))
    assert list(ascending) == [f"n{i}" for i in range(8)]
    assert list(descending) == [f"n{i}" for i in reversed(range(8))] == list(ref.sort(("num", -1)))
    assert list(ours.sort(("color", 1))) == list(ref.sort(("color", 1)))
    assert list(ours.sort(("color", -1), ("num", 1))) == list(ref.sort(("color", -1), ("num", 1)))
    assert ours.sort(("num", -1)).sorting == [("num", -1)]
    assert list(ours) == [f"n{i}" for i in range(8)]  # the original is unchanged


def test_tail_and_last_of_sorted(ours, ref):
    descending = ours.sort(("num", -1))
    assert descending.keys().last() == "n0"
    assert descending.keys().tail(3) == ["n2", "n1", "n0"] == list(ref.sort(("num", -1)).keys())[-3:]
    assert descending.keys().first() == "n7"
    assert descending.keys()[-2] == "n1"
    assert [k for k, _ in descending.items().tail(2)] == ["n1", "n0"]
    assert descending.values().last().item["id"] == "n0"
    sorted_search = ours.search(Q.KeyPresent("color")).sort(("num", -1))
    assert sorted_search.keys().tail(2) == ["n1", "n0"]
    assert sorted_search.keys().last() == "n0"


def test_sort_rejects_bad_arguments(ours):
    for bad in [("num",), ("num", 2), "num", ("num", "asc")]:
        with pytest.raises(ValueError):
            ours.sort(bad)
    with pytest.raises(ValueError):
        ours.sort(("num", 1), ("num", -1))


def test_distinct_matches_reference(ours, ref):
    ours_result = ours.distinct("color", "nested.x", structure_families=True, specs=True, counts=True)
    ref_result = ref.distinct("color", "nested.x", structure_families=True, specs=True, counts=True)
    assert ours_result == ref_result
    by_color = {entry["value"]: entry["count"] for entry in ours_result["metadata"]["color"]}
    assert by_color == {"red": 3, "green": 2, "blue": 2, None: 1}
    assert ours.distinct("color") == ref.distinct("color")
    searched = ours.search(Q.StructureFamilyQuery("array"))
    assert searched.distinct("color", counts=True) == ref.search(RQ.StructureFamilyQuery("array")).distinct(
        "color", counts=True)


# ================================================================ writes


def test_create_container_with_metadata_and_specs(scratch, ref_scratch):
    made = scratch.create_container("made", metadata={"a": 1, "b": {"c": [1, 2]}}, specs=["S1", Spec("S2", "2")])
    assert isinstance(made, Container)
    assert made.metadata == {"a": 1, "b": {"c": [1, 2]}}
    assert made.path_parts[-1] == "made"
    theirs = ref_scratch["made"]
    assert dict(theirs.metadata) == {"a": 1, "b": {"c": [1, 2]}}
    assert [(s.name, s.version) for s in theirs.specs] == [("S1", None), ("S2", "2")]
    assert list(made) == []
    inner = made.create_container("inner")
    assert list(ref_scratch["made"]) == ["inner"]
    assert inner.path_parts[-2:] == ("made", "inner")


def test_write_array_with_key_metadata_dims_specs(scratch, ref_scratch):
    data = np.arange(12, dtype="int32").reshape(3, 4)
    made = scratch.write_array(data, key="arr", metadata={"units": "m"}, dims=["y", "x"], specs=["Image"])
    assert isinstance(made, ArrayClient)
    assert made.dims == ("y", "x") and made.shape == (3, 4)
    theirs = ref_scratch["arr"]
    np.testing.assert_array_equal(theirs.read(), data)
    assert dict(theirs.metadata) == {"units": "m"}
    assert list(theirs.structure().dims) == ["y", "x"]
    assert [s.name for s in theirs.specs] == ["Image"]
    np.testing.assert_array_equal(scratch["arr"].read(), data)
    with pytest.raises(ValueError):
        scratch.write_array(data, key="bad-dims", dims=["only-one"])


def test_write_with_a_taken_key_is_an_error(scratch):
    scratch.create_container("once")
    with pytest.raises(ClientError):
        scratch.create_container("once")


@pytest.mark.parametrize("key", ["a/b", "", "?x", "a?b", "#frag", "..", " padded"])
def test_invalid_keys_fail_before_any_request(root, scratch, key):
    before = _count(root)
    with pytest.raises(ValueError):
        scratch.create_container(key)
    with pytest.raises(ValueError):
        scratch.write_array(np.zeros(3), key=key)
    assert _count(root) == before


def test_non_string_key_is_type_error(root, scratch):
    before = _count(root)
    with pytest.raises(TypeError):
        scratch.create_container(5)
    with pytest.raises(TypeError):
        scratch.create_container("ok", metadata=[1, 2])
    assert _count(root) == before


def test_listing_fetches_structures_per_page_only_when_needed(scratch, ref_scratch):
    for i in range(5):
        ref_scratch.write_array(np.arange(i + 1), key=f"a{i}")
    ref_scratch.create_container("sub").write_array(np.arange(2), key="x")
    session = scratch.context.session
    before = session.request_count
    children = dict(scratch.items())
    assert session.request_count - before == 1  # one page, no structures yet
    assert children["a3"].shape == (4,)
    assert session.request_count - before == 2  # every structure of the page in one request
    for i in range(5):
        np.testing.assert_array_equal(children[f"a{i}"].read(), np.arange(i + 1))
    assert session.request_count - before == 2 + 5  # then one read each
    assert children["sub"].structure().count == 1
    assert children["a0"].item["attributes"]["structure"]["shape"] == [1]


def test_a_listed_child_finds_its_structure_after_the_listing_changed(scratch, ref_scratch):
    for key in "abcd":
        ref_scratch.write_array(np.arange(3) + ord(key), key=key)
    page = dict(scratch.items()[2:4])
    ref_scratch.delete_contents(["a"], external_only=False)  # "c" leaves the page it was listed on
    np.testing.assert_array_equal(page["c"].read(), np.arange(3) + ord("c"))
    np.testing.assert_array_equal(page["d"].read(), np.arange(3) + ord("d"))
