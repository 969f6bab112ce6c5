"""on_conflict for reruns, the incomplete-upload mark, and deletes, against a real server."""

from __future__ import annotations

import numpy as np
import pytest

from tiled_core.client.conflict import INCOMPLETE_SPEC, begin_write, is_incomplete
from tiled_core.client.blocks import array_data_source
from tiled_core.transport import Conflict


def test_error_is_the_default(scratch):
    scratch.write_array(np.arange(3), key="a")
    with pytest.raises(Conflict):
        scratch.write_array(np.arange(3), key="a")


def test_skip_leaves_a_matching_node_alone(scratch, ref_scratch):
    first = scratch.write_array(np.arange(4), key="a", metadata={"n": 1})
    again = scratch.write_array(np.arange(4) * 10, key="a", metadata={"n": 2}, on_conflict="skip")
    assert again.path == first.path
    np.testing.assert_array_equal(ref_scratch["a"].read(), np.arange(4))
    assert ref_scratch["a"].metadata["n"] == 1


def test_skip_refuses_a_different_structure(scratch):
    scratch.write_array(np.arange(4), key="a")
    with pytest.raises(Conflict, match="different structure"):
        scratch.write_array(np.arange(5), key="a", on_conflict="skip")
    with pytest.raises(Conflict, match="different structure"):
        scratch.write_array(np.arange(4, dtype="f4"), key="a", on_conflict="skip")
    scratch.create_container("c")
    with pytest.raises(Conflict, match="exists as a container"):
        scratch.write_array(np.arange(4), key="c", on_conflict="skip")


def test_replace_rewrites(scratch, ref_scratch):
    scratch.write_array(np.arange(4), key="a", metadata={"v": 1})
    scratch.write_array(np.ones((2, 3)), key="a", metadata={"v": 2}, on_conflict="replace")
    np.testing.assert_array_equal(ref_scratch["a"].read(), np.ones((2, 3)))
    assert ref_scratch["a"].metadata["v"] == 2


def test_a_finished_write_carries_no_mark_and_no_revision(scratch, ref_scratch):
    client = scratch.write_array(np.arange(4), key="a", specs=["mine"])
    assert not is_incomplete(client)
    assert [s.name for s in client.specs] == ["mine"]
    ref = ref_scratch["a"]
    assert [s.name for s in ref.specs] == ["mine"]
    assert len(ref.metadata_revisions) == 0


def test_an_interrupted_write_is_marked_and_skip_completes_it(scratch, ref_scratch):
    data = np.arange(12.0).reshape(3, 4)
    _, source = array_data_source(data)
    target = begin_write(scratch, "array", [source], key="half", metadata={}, specs=None)
    assert target.needs_upload  # ... and the process dies here, before any data is sent
    assert INCOMPLETE_SPEC in [s.name for s in ref_scratch["half"].specs]
    assert is_incomplete(scratch["half"])
    client = scratch.write_array(data, key="half", on_conflict="skip")
    assert not is_incomplete(scratch["half"])
    assert not is_incomplete(client)
    np.testing.assert_array_equal(ref_scratch["half"].read(), data)


def test_container_skip_returns_the_existing_one(scratch):
    first = scratch.create_container("c", metadata={"x": 1})
    first.write_array(np.arange(2), key="inner")
    again = scratch.create_container("c", on_conflict="skip")
    assert list(again) == ["inner"]
    with pytest.raises(Conflict):
        scratch.create_container("c")


def test_bad_on_conflict_fails_before_any_request(scratch):
    before = scratch.context.session.request_count
    with pytest.raises(ValueError, match="on_conflict"):
        scratch.write_array(np.arange(2), key="a", on_conflict="overwrite")
    assert scratch.context.session.request_count == before


def test_delete(scratch, ref_scratch):
    scratch.write_array(np.arange(3), key="a")
    scratch.delete("a")
    assert "a" not in scratch
    # the key is free again, and its old internal data is gone with the node
    scratch.write_array(np.arange(5), key="a")
    np.testing.assert_array_equal(ref_scratch["a"].read(), np.arange(5))
    with pytest.raises(KeyError):
        scratch.delete("missing")


def test_delete_of_a_non_empty_container_needs_recursive(scratch):
    c = scratch.create_container("c")
    c.write_array(np.arange(2), key="x")
    with pytest.raises(Conflict):
        scratch.delete("c")
    assert "c" in scratch
    scratch.delete("c", recursive=True)
    assert "c" not in scratch


def test_delete_contents_matches_the_reference(scratch):
    for key in "abc":
        scratch.write_array(np.arange(2), key=key)
    with pytest.raises(Conflict):
        scratch.delete_contents(["a"])  # the reference default refuses internally managed data
    scratch.delete_contents(["a", "b"], external_only=False)
    assert list(scratch) == ["c"]
    scratch.delete_contents(external_only=False)
    assert len(scratch) == 0
