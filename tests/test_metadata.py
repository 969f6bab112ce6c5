"""Metadata updates (update/replace/patch), specs, revisions and JSON checks, against a real server."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from tiled_core.client.metadata_update import DELETE_KEY
from tiled_core.structures import Spec

START = {"a": 1, "nested": {"x": 1, "y": [1, 2], "deep": {"k": "v"}}, "gone": 3, "list": [1, {"b": 2}]}


@pytest.fixture
def pair(scratch, ref_scratch):
    """The same fresh node seen by tiled_core and by the reference client."""
    ours = scratch.create_container("n", metadata=START, specs=["s1"])
    return ours, ref_scratch["n"]


def _server_metadata(ref_scratch, key="n"):
    return ref_scratch[key].metadata  # a fresh lookup: what the server stores now


def test_update_merges_like_dict_update_and_both_clients_see_it(pair, ref_scratch):
    ours, _ = pair
    ours.update_metadata({"nested": {"x": np.int64(5), "z": None, "deep": {"new": "ü"}}, "gone": DELETE_KEY,
                          "list": [3], "f32": np.float32(1.5), "arr": np.arange(3), "flag": np.bool_(True),
                          "text": "Grüße, 世界 🙂"})
    expected = {"a": 1, "nested": {"x": 5, "y": [1, 2], "deep": {"k": "v", "new": "ü"}, "z": None},
                "list": [3], "f32": 1.5, "arr": [0, 1, 2], "flag": True, "text": "Grüße, 世界 🙂"}
    assert ours.metadata == expected
    assert dict(_server_metadata(ref_scratch)) == expected
    assert type(ours.metadata["nested"]["x"]) is int  # plain JSON locally too, not numpy scalars
    assert [s.name for s in ours.specs] == ["s1"]  # specs=None leaves them alone


def test_update_builds_the_same_patches_as_the_reference(pair):
    ours, ref = pair
    update = {"nested": {"x": 2, "deep": None}, "gone": DELETE_KEY, "new": [1, 2, {"c": None}]}
    from tiled.client.metadata_update import DELETE_KEY as REF_DELETE

    ref_update = {"nested": {"x": 2, "deep": None}, "gone": REF_DELETE, "new": [1, 2, {"c": None}]}
    ours_patches = ours.build_metadata_patches(update, specs=["s1", "s2"])
    ref_patches = ref.build_metadata_patches(ref_update, specs=["s1", "s2"])
    assert ours_patches[0] == ref_patches[0]
    # specs: the reference patches names; ours patches whole {name, version} entries
    assert [(op["op"], op["path"]) for op in ours_patches[1]] == [(op["op"], op["path"]) for op in ref_patches[1]]
    assert ours_patches[1][0]["value"] == {"name": "s2", "version": None}
    assert ours_patches[2] is None and ref_patches[2] is None


def test_update_written_by_either_client_reads_the_same(scratch, ref_scratch):
    ours = scratch.create_container("o", metadata=START)
    ref = ref_scratch.create_container("r", metadata=START)
    from tiled.client.metadata_update import DELETE_KEY as REF_DELETE

    ours.update_metadata({"nested": {"y": None}, "gone": DELETE_KEY, "u": "ünï"})
    ref.update_metadata({"nested": {"y": None}, "gone": REF_DELETE, "u": "ünï"})
    assert dict(ref_scratch["o"].metadata) == dict(ref_scratch["r"].metadata)
    assert scratch["o"].metadata == scratch["r"].metadata == dict(ref_scratch["r"].metadata)


def test_update_keeps_a_revision_unless_dropped(pair, ref_scratch):
    ours, ref = pair
    assert len(ours.metadata_revisions) == 0
    ours.update_metadata({"a": 2})
    ours.update_metadata({"a": 3}, drop_revision=True)
    ours.update_metadata({"a": 4})
    revisions = ours.metadata_revisions
    assert len(revisions) == len(ref.metadata_revisions) == 2
    assert revisions[0]["attributes"]["metadata"]["a"] == 1
    assert revisions[-1]["attributes"]["metadata"]["a"] == 3
    assert [r["revision_number"] for r in revisions[0:2]] == [r["revision_number"] for r in ref.metadata_revisions[0:2]]
    assert [r["attributes"]["metadata"]["a"] for r in revisions] == [1, 3]
    with pytest.raises(IndexError):
        revisions[2]
    revisions.delete_revision(revisions[0]["revision_number"])
    assert len(ref_scratch["n"].metadata_revisions) == 1 == len(revisions)


def test_specs_update_and_replace(pair, ref_scratch):
    ours, _ = pair
    ours.update_metadata(specs=["s2", Spec("s3", version="1.0")])
    assert [(s.name, s.version) for s in ours.specs] == [("s2", None), ("s3", "1.0")]
    assert [(s.name, s.version) for s in ref_scratch["n"].specs] == [("s2", None), ("s3", "1.0")]
    assert ours.metadata == START  # metadata untouched
    ours.update_metadata(specs=[])
    assert list(ref_scratch["n"].specs) == [] and ours.specs == []
    with pytest.raises(ValueError, match="unique"):
        ours.update_metadata(specs=["x", "x"])
    with pytest.raises(TypeError, match="list of specs"):
        ours.update_metadata(specs="x")


def test_specs_the_server_would_refuse_are_its_422_before_any_request(pair, scratch, ref_scratch):
    import httpx

    from _checks import sends_no_request
    from tiled_core.client.writing._metadata import SpecsRefused

    ours, _ = pair
    twenty = [f"s{i}" for i in range(20)]
    ours.update_metadata(specs=twenty)  # the most the server takes
    assert len(ref_scratch["n"].specs) == 20
    refused = [twenty + ["one_too_many"], ["s0", "s1", "s0"], ["a" * 256]]
    writes = [lambda specs: scratch.write_array([1, 2, 3], specs=specs),
              lambda specs: scratch.create_container("c", specs=specs),
              lambda specs: ours.update_metadata(specs=specs),
              lambda specs: ours.replace_metadata(specs=specs)]
    for specs in refused:
        for write in writes:
            with sends_no_request(scratch), pytest.raises(SpecsRefused) as info:
                write(specs)
            error = info.value
            # Caught as the ValueError it always was, or as the server's answer (what scripts check).
            assert isinstance(error, ValueError) and isinstance(error, httpx.HTTPStatusError)
            assert error.status == 422 == error.response.status_code
            assert error.url.startswith(scratch.uri.rsplit("/", 1)[0])
    assert "c" not in ref_scratch and len(ref_scratch["n"].specs) == 20
    scratch.write_array([1, 2, 3], key="longest", specs=["a" * 255])


def test_replace_metadata(pair, ref_scratch):
    ours, _ = pair
    ours.replace_metadata({"only": [1, "two"], "n": np.float64(2.5)})
    assert ours.metadata == {"only": [1, "two"], "n": 2.5}
    assert dict(_server_metadata(ref_scratch)) == {"only": [1, "two"], "n": 2.5}
    assert [s.name for s in ref_scratch["n"].specs] == ["s1"]  # specs=None: unchanged
    ours.replace_metadata(specs=["t"])
    assert dict(_server_metadata(ref_scratch)) == {"only": [1, "two"], "n": 2.5}
    assert [s.name for s in ref_scratch["n"].specs] == ["t"] and [s.name for s in ours.specs] == ["t"]
    assert len(ours.metadata_revisions) == 2
    ours.replace_metadata({}, drop_revision=True)
    assert dict(_server_metadata(ref_scratch)) == {} and len(ours.metadata_revisions) == 2


def test_json_patch(pair, ref_scratch):
    ours, _ = pair
    ours.patch_metadata([
        {"op": "test", "path": "/a", "value": 1},
        {"op": "add", "path": "/nested/y/-", "value": 3},
        {"op": "move", "from": "/gone", "path": "/moved"},
        {"op": "copy", "from": "/nested/deep", "path": "/copied"},
        {"op": "remove", "path": "/list/1"},
        {"op": "replace", "path": "/a", "value": "α"},
    ], specs_patch=[{"op": "add", "path": "/-", "value": "s2"}])
    expected = {"a": "α", "nested": {"x": 1, "y": [1, 2, 3], "deep": {"k": "v"}}, "moved": 3,
                "copied": {"k": "v"}, "list": [1]}
    assert ours.metadata == expected
    assert dict(_server_metadata(ref_scratch)) == expected
    assert [s.name for s in ref_scratch["n"].specs] == ["s1", "s2"] == [s.name for s in ours.specs]


def test_merge_patch(pair, ref_scratch):
    ours, _ = pair
    ours.patch_metadata({"nested": {"x": None, "deep": {"k2": 2}}, "gone": None, "new": [1]},
                        specs_patch=["m"], content_type="application/merge-patch+json")
    expected = {"a": 1, "nested": {"y": [1, 2], "deep": {"k": "v", "k2": 2}}, "list": [1, {"b": 2}], "new": [1]}
    assert ours.metadata == expected
    assert dict(_server_metadata(ref_scratch)) == expected
    assert [s.name for s in ref_scratch["n"].specs] == ["m"] == [s.name for s in ours.specs]


def test_a_patch_that_cannot_apply_is_refused_before_sending(pair, ref_scratch):
    ours, _ = pair
    session = ours.context.session
    sent = []
    for bad in ([{"op": "replace", "path": "/missing", "value": 1}], [{"op": "test", "path": "/a", "value": 2}],
                [{"op": "frobnicate", "path": "/a"}]):
        before = session.request_count
        with pytest.raises(ValueError, match="does not apply"):
            ours.patch_metadata(bad)
        sent.append(session.request_count - before)
    assert sent == [1, 1, 1]  # only the refetch that rules out a stale copy; never the PATCH
    with pytest.raises(ValueError, match="content_type"):
        ours.patch_metadata([], content_type="application/json")
    with pytest.raises(ValueError, match="is a list"):
        ours.patch_metadata({"a": 2})  # a merge patch sent as a JSON Patch
    assert dict(_server_metadata(ref_scratch)) == START


def test_a_stale_copy_is_refreshed_before_judging_a_patch(pair):
    ours, ref = pair
    ref.update_metadata({"added_elsewhere": 1})
    ours.patch_metadata([{"op": "replace", "path": "/added_elsewhere", "value": 2}])
    assert ours.metadata["added_elsewhere"] == 2 and ours.metadata["a"] == 1


@pytest.mark.parametrize("bad, error, message", [
    ({"x": float("nan")}, ValueError, r"metadata\['x'\] is nan"),
    ({"x": {"y": [1, float("-inf")]}}, ValueError, r"metadata\['x'\]\['y'\]\[1\] is -inf"),
    ({"x": np.array([1.0, np.inf])}, ValueError, "NaN or infinity"),
    ({"x": np.float32("nan")}, ValueError, "NaN or infinity"),
    ({"x": {1, 2}}, TypeError, r"metadata\['x'\] of type set"),
    ({"x": [object()]}, TypeError, r"metadata\['x'\]\[0\] of type object"),
    ({"x": 1j}, TypeError, "complex"),
    ({"x": {1: "a"}}, TypeError, "keys are strings"),
])
def test_metadata_json_cannot_carry_fails_before_any_request(pair, ref_scratch, bad, error, message):
    ours, _ = pair
    session = ours.context.session
    before = session.request_count
    with pytest.raises(error, match=message):
        ours.update_metadata(bad)
    with pytest.raises(error, match=message):
        ours.replace_metadata(bad)
    with pytest.raises(error, match=message):
        ours.write_array(np.arange(3), key="a", metadata=bad)
    with pytest.raises(error, match=message):
        ours.create_container("c", metadata=bad)
    assert session.request_count == before
    assert dict(_server_metadata(ref_scratch)) == START


def test_bad_metadata_never_costs_the_node_replace_would_remove(scratch, ref_scratch):
    scratch.write_array(np.arange(3), key="keep", metadata={"v": 1})
    with pytest.raises(ValueError, match="NaN"):
        scratch.write_array(np.arange(4), key="keep", metadata={"v": float("nan")}, on_conflict="replace")
    np.testing.assert_array_equal(ref_scratch["keep"].read(), np.arange(3))
    with pytest.raises(ValueError, match="must be a mapping"):
        scratch["keep"].update_metadata(["not", "a", "dict"])


def test_values_converted_as_the_reference_does(scratch, ref_scratch):
    import datetime

    value = {"raw": b"\x00\xffbytes", "path": Path("/data/x.h5"), "when": datetime.datetime(2024, 5, 1, 12, 30),
             "day": np.datetime64("2024-05-01"), "tuple": (1, 2), "nested_arr": np.array([[1, 2], [3, 4]], dtype="u1")}
    ours = scratch.create_container("ours", metadata=value)
    ref = ref_scratch.create_container("ref", metadata=value)
    assert dict(ref_scratch["ours"].metadata) == dict(ref_scratch["ref"].metadata)
    assert ours.metadata["raw"] == "data:application/octet-stream;base64," + base64.b64encode(b"\x00\xffbytes").decode()
    assert ours.metadata == dict(ref.metadata) == scratch["ref"].metadata


def test_metadata_written_by_the_reference_reads_the_same(scratch, ref_scratch):
    value = {"nested": {"deep": {"list": [1, 2.5, None, "s", {"k": [True]}]}}, "unicode": "ñ€𝄞", "int": np.int16(7),
             "float": np.float64(0.1), "big": 2**62, "empty": {}, "none": None}
    ref_scratch.create_container("r", metadata=value)
    assert scratch["r"].metadata == dict(ref_scratch["r"].metadata)
    assert scratch["r"].metadata["nested"]["deep"]["list"][4]["k"] == [True]


def test_metadata_copy_round_trip(pair, ref_scratch):
    ours, _ = pair
    md, specs, access_tags = ours.metadata_copy()
    md["nested"]["deep"]["k"] = "edited"
    md["gone"] = DELETE_KEY
    ours.update_metadata(md, specs=[*specs, "s9"], access_tags=access_tags)
    expected = {**START, "nested": {**START["nested"], "deep": {"k": "edited"}}}
    del expected["gone"]
    assert dict(_server_metadata(ref_scratch)) == expected == ours.metadata
    assert [s.name for s in ref_scratch["n"].specs] == ["s1", "s9"]
    assert md["nested"]["deep"]["k"] == "edited"  # the caller's copy is left as it was


def test_update_on_an_array_node_keeps_its_data(scratch, ref_scratch):
    node = scratch.write_array(np.arange(5), key="a", metadata={"unit": "mm"})
    node.update_metadata({"unit": "m", "scale": 1e-3})
    assert dict(ref_scratch["a"].metadata) == {"unit": "m", "scale": 1e-3}
    np.testing.assert_array_equal(ref_scratch["a"].read(), np.arange(5))
    assert node.read().tolist() == [0, 1, 2, 3, 4]


def test_the_read_only_views_of_another_node_can_be_written(scratch, ref_scratch):
    source = scratch.create_container("src", metadata=START)
    target = scratch.create_container("dst", metadata={"old": 1})
    target.update_metadata(source.metadata)  # nested DictView / ListView values
    assert dict(ref_scratch["dst"].metadata) == {"old": 1, **START}
    target.replace_metadata(source.metadata)
    assert dict(ref_scratch["dst"].metadata) == START
