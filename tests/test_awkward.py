"""Awkward arrays against the real server: reads, slices (only the buffers needed), export, writes, interop.

Arrays are written by the reference client and read with tiled_core in both
structure-client modes, and the other way round; results are compared with
the arrays they were made from, types included.
"""

from __future__ import annotations

import io
import json
import time
import uuid

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _checks import sends_no_request
from tiled_core.client import from_uri
from tiled_core.client.reading._awkward_plan import has_default_form_keys, plan
from tiled_core.client.awkward import AwkwardClient
from tiled_core.codecs.awkward import decode_awkward_zip, encode_buffers_zip, pack_awkward
from tiled_core.structures import AwkwardStructure
from tiled_core.transport import Conflict, MalformedResponse

RECORDS = ak.Array([
    {"x": i, "y": list(range(i % 4)), "z": None if i % 3 == 0 else i * 0.5, "s": "ab" * (i % 5),
     "r": {"a": [float(i)] * (i % 2), "b": None if i % 4 == 0 else str(i)}}
    for i in range(40)
])
ARRAYS = {
    "records": RECORDS,
    "lists": ak.Array([[1.5, 2.5], [], [3.0], [4.0, 5.0, 6.0]]),
    "nested": ak.Array([[[1, 2], []], [], [[3], [4, 5, 6]]]),
    "options": ak.Array([1, None, 3, None, 5]),
    "strings": ak.Array(["one", "", "three", "été"]),
    "regular": ak.to_regular(ak.Array(np.arange(12, dtype="int32").reshape(4, 3)), axis=1),
    "union": ak.Array([1, "two", [3.0], {"f": 4}]),
    "tuples": ak.Array([(1, "a"), (2, "bb"), (3, "")]),
    "empty": ak.Array(RECORDS[:0]),
}


def _same(result, expected) -> None:
    assert isinstance(result, (ak.Array, ak.Record)), type(result)
    assert str(result.type) == str(expected.type)
    assert result.to_list() == expected.to_list()


@pytest.fixture(scope="module")
def stored(ref_root):
    node = ref_root.create_container(f"awkward-{uuid.uuid4().hex[:8]}")
    for name, array in ARRAYS.items():
        node.write_awkward(array, key=name, metadata={"n": name})
    return node.item["id"]


# -- reads ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_read_matches_what_was_written(node, ref_node, name):
    client = node[name]
    assert isinstance(client, AwkwardClient)
    result = client.read()
    _same(result, ARRAYS[name])
    if name != "tuples":  # the reference client reads tuples back as records with fields "0", "1", ...
        _same(result, ref_node[name].read())
    assert client.metadata["n"] == name
    assert len(client) == len(ARRAYS[name])


def test_structure_and_repr(node, ref_node):
    client = node["records"]
    structure = client.structure()
    assert isinstance(structure, AwkwardStructure)
    assert structure.length == 40
    assert structure.form == ref_node["records"].structure().form
    assert AwkwardStructure.from_json(structure.to_json()) == structure
    assert repr(client).endswith("{x, y, z, s, r} length=40>")


SELECTIONS = [
    "x", "s", ("r", "a"), ("r", "b"), np.s_[5:17], np.s_[::-3], 7, -1, (3, "s"), (slice(None), "y"),
    np.s_[2:9, "r"], (slice(None), ["x", "z"]), ("y", 1), np.s_[RECORDS["x"] % 2 == 0], (5, "r", "a"),
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_slicing_like_awkward(node, ref_node, selection):
    result = node["records"][selection]
    expected = RECORDS[selection]
    if isinstance(expected, (ak.Array, ak.Record)):
        _same(result, expected)
    else:
        assert result == expected
    # The reference client cannot trace a mask, nor a single string (its typetracer raises).
    if not isinstance(selection, ak.Array) and selection != (3, "s"):
        reference = ref_node["records"].read(slice=selection)
        assert (reference.to_list() if hasattr(reference, "to_list") else reference) == (
            result.to_list() if hasattr(result, "to_list") else result)


@pytest.mark.parametrize(
    "selection, keys",
    [
        ("x", ["node1-data"]),
        (("r", "b"), ["node11-index", "node12-offsets", "node13-data"]),
        ((3, "y"), ["node2-offsets", "node3-data"]),
        (np.s_[5:7], None),
        (..., None),
    ],
)
def test_plan_names_only_the_touched_buffers(node, selection, keys):
    form = node["records"].structure().form
    projected, needed = plan(form, selection)
    assert needed == keys
    buffers = pack_awkward(RECORDS)[2]
    rebuilt = ak.from_buffers(projected, 40, {k: buffers[k] for k in (needed or buffers)})
    _same(rebuilt[selection], RECORDS[selection])


def _new_request_lines(server, since: int, expected: str) -> list[str]:
    """Request lines the server logged after line ``since``, waiting (up to 10 s) for one containing ``expected``."""
    deadline = time.monotonic() + 10
    while True:
        lines = (server.directory / "server.log").read_text(errors="replace").splitlines()[since:]
        if any(expected in line for line in lines) or time.monotonic() > deadline:
            return [line for line in lines if " /api/v1/" in line]
        time.sleep(0.05)


def test_reads_take_the_cheaper_route(node, tiled_server, stored):
    """A small share of the bytes comes from /awkward/buffers (just those); a large one from /awkward/full."""
    client = node["records"]
    path = f"{stored}/records"
    since = len((tiled_server.directory / "server.log").read_text(errors="replace").splitlines())
    _same(client["x"], RECORDS["x"])
    lines = _new_request_lines(tiled_server, since, f"/awkward/buffers/{path}?form_key=node1-data ")
    assert any(f"/awkward/buffers/{path}?form_key=node1-data " in line for line in lines), lines
    assert not any("/awkward/full/" in line for line in lines)
    since += len(lines)
    _same(client[["x", "z", "y"]], RECORDS[["x", "z", "y"]])
    lines = _new_request_lines(tiled_server, since, f"/awkward/full/{path} ")
    assert any(f"/awkward/full/{path} " in line for line in lines), lines


@pytest.mark.parametrize("name, selection", [("tuples", "1"), ("union", 2), ("nested", (1, ...)),
                                             ("regular", (slice(None), 1)), ("strings", 3), ("empty", "x")])
def test_slicing_other_forms(node, name, selection):
    result = node[name][selection]
    expected = ARRAYS[name][selection]
    if isinstance(expected, (ak.Array, ak.Record)):
        _same(result, expected)
    else:
        assert result == expected


@pytest.mark.parametrize("selection, error", [("nope", ak.errors.FieldNotFoundError), (40, IndexError),
                                               (-41, IndexError), ((slice(None), "q"), ak.errors.FieldNotFoundError)])
def test_bad_selections_fail_before_any_request(node, selection, error):
    client = node["records"]
    with sends_no_request(client), pytest.raises(error):
        client[selection]


# -- export ------------------------------------------------------------------
def test_export_every_listed_format(node, tmp_path):
    client = node["records"]
    offered = client.formats
    assert {"application/zip", "application/json", "application/vnd.apache.arrow.file",
            "application/x-parquet"} <= set(offered)
    structure = client.structure()
    buffer = io.BytesIO()
    client.export(buffer, format="application/zip")
    _same(decode_awkward_zip(buffer.getvalue(), structure.form, structure.length), RECORDS)
    client.export(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(ak.to_json(RECORDS))
    buffer = io.BytesIO()
    client.export(buffer, format="arrow")
    table = pa.ipc.open_file(pa.py_buffer(buffer.getvalue())).read_all()
    assert ak.from_arrow(table).to_list() == RECORDS.to_list()
    client.export(tmp_path / "r.parquet")
    assert ak.from_arrow(pq.read_table(tmp_path / "r.parquet")).to_list() == RECORDS.to_list()
    with pytest.raises(ValueError, match="cannot be exported"):
        client.export(tmp_path / "r.csv")


# -- writes ------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_written_by_tiled_core_read_by_reference(scratch, ref_scratch, name):
    written = scratch.write_awkward(ARRAYS[name], key=name, metadata={"k": name})
    assert isinstance(written, AwkwardClient)
    if name == "tuples":  # the reference reads tuples as records with fields "0", "1", ...: compare values
        assert [tuple(d.values()) for d in ref_scratch[name].read().to_list()] == ARRAYS[name].to_list()
    else:
        _same(ref_scratch[name].read(), ARRAYS[name])
    assert ref_scratch[name].metadata["k"] == name
    assert "tiled_core.incomplete" not in [s.name for s in ref_scratch[name].specs]


def test_write_unpacked_views_and_plain_lists(scratch, ref_scratch):
    view = RECORDS[::3]  # not packed: write_awkward sends only what the view shows
    scratch.write_awkward(view, key="view")
    _same(ref_scratch["view"].read(), view)
    scratch.write_awkward([[1, 2], [3]], key="plain")
    assert ref_scratch["plain"].read().to_list() == [[1, 2], [3]]


def test_rewrite_checks_form_and_length(scratch, ref_scratch):
    client = scratch.write_awkward(ARRAYS["lists"], key="l")
    replacement = ak.Array([[9.0], [8.0, 7.0], [], [6.0]])
    client.write(replacement)
    _same(ref_scratch["l"].read(), replacement)
    with sends_no_request(client):
        with pytest.raises(ValueError, match="length"):
            client.write(ak.Array([[1.0]]))
        with pytest.raises(ValueError, match="form"):
            client.write(ak.Array([[1], [2], [3], [4]]))  # int64, not float64
        with pytest.raises(ValueError, match="missing"):
            client.write({"node0-offsets": np.array([0, 0, 0, 0, 0])})
    client.write(pack_awkward(replacement)[2])  # buffers, as the reference client takes them
    _same(ref_scratch["l"].read(), replacement)


def test_custom_form_keys_round_trip(scratch, ref_scratch):
    """Buffers named by a writer's own form keys are read by those names (not via /awkward/full)."""
    form, length, container = ak.to_buffers(RECORDS, form_key="k{id}")
    assert not has_default_form_keys(form.to_dict()) and has_default_form_keys(pack_awkward(RECORDS)[0])
    source = {"structure_family": "awkward", "structure": {"length": length, "form": form.to_dict()},
              "mimetype": None, "parameters": {}, "properties": {}, "assets": [], "management": "writable", "id": None}
    client = scratch.new("awkward", [source], key="custom")
    client.write(container)
    _same(scratch["custom"].read(), RECORDS)
    _same(scratch["custom"][("r", "b")], RECORDS["r", "b"])
    _same(ref_scratch["custom"].read(), RECORDS)


def test_on_conflict(scratch, ref_scratch):
    scratch.write_awkward(ARRAYS["lists"], key="a")
    with pytest.raises(Conflict):
        scratch.write_awkward(ARRAYS["lists"], key="a")
    scratch.write_awkward(ak.Array([[0.0], [], [], [0.0]]), key="a", on_conflict="skip")
    _same(ref_scratch["a"].read(), ARRAYS["lists"])  # same form and length: left alone
    with pytest.raises(Conflict, match="different structure"):
        scratch.write_awkward(ARRAYS["options"], key="a", on_conflict="skip")
    scratch.write_awkward(ARRAYS["options"], key="a", on_conflict="replace")
    _same(ref_scratch["a"].read(), ARRAYS["options"])


# -- codec -------------------------------------------------------------------
def test_codec_rejects_truncated_and_corrupt_payloads():
    form, length, buffers = pack_awkward(RECORDS)
    body = encode_buffers_zip(buffers)
    _same(decode_awkward_zip(body, form, length), RECORDS)
    for bad in (body[:-10], body[: len(body) // 2], b"garbage", b""):
        with pytest.raises(MalformedResponse, match="zip"):
            decode_awkward_zip(bad, form, length)
    corrupt = bytearray(body)
    corrupt[100] ^= 0xFF  # inside the first buffer's bytes
    with pytest.raises(MalformedResponse, match="CRC|corrupt"):
        decode_awkward_zip(bytes(corrupt), form, length)
    with pytest.raises(MalformedResponse, match="lacks buffers"):
        decode_awkward_zip(encode_buffers_zip({k: v for k, v in buffers.items() if k != "node1-data"}), form, length)
    odd = dict(buffers, **{"node1-data": b"\x00" * 7})
    with pytest.raises(MalformedResponse, match="multiple"):
        decode_awkward_zip(encode_buffers_zip(odd), form, length)
    short = dict(buffers, **{"node1-data": np.arange(3, dtype="int64")})
    with pytest.raises(MalformedResponse, match="form"):
        decode_awkward_zip(encode_buffers_zip(short), form, length)


# -- the server's size limit ---------------------------------------------------
def test_reads_over_the_size_limit_fetch_buffers_separately(small_limit_server):
    from tiled.client import from_uri as ref_from_uri

    big = ak.zip({"a": np.arange(2000, dtype="f8"), "b": np.arange(2000, dtype="i8")})  # 2 x 16 kB buffers
    ref = ref_from_uri(small_limit_server.uri, api_key=small_limit_server.api_key)
    try:
        ref.write_awkward(big, key="big-awkward")
    finally:
        ref.context.close()
    root = from_uri(small_limit_server.uri, api_key=small_limit_server.api_key)
    try:
        client = root["big-awkward"]
        before = root.context.session.request_count
        _same(client.read(), big)
        assert root.context.session.request_count - before == 3  # refused, then one buffer per request
        _same(client["a"], big["a"])
    finally:
        root.context.close()
