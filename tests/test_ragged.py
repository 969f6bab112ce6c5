"""Ragged arrays against the real server: writes, reads, slices, dask, export, on_conflict, copy, hostile bytes.

Arrays are written by tiled_core (and by the reference client) and read back
in both structure-client modes and by the reference client; results are
compared with ``awkward.array_equal`` (dtypes included).
"""

from __future__ import annotations

import io
import json
import uuid

import awkward as ak
import numpy as np
import pyarrow.feather
import pyarrow.parquet
import pytest
import ragged
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _checks import sends_no_request
from tiled_core.client import from_uri
from tiled_core.client.conflict import INCOMPLETE_SPEC, is_incomplete
from tiled_core.client.ragged import DaskRaggedClient, RaggedClient
from tiled_core.codecs.ragged import (
    decode_ragged_json, decode_ragged_zip, encode_ragged_zip, pack_ragged, partition_rows,
)
from tiled_core.structures import RaggedStructure
from tiled_core.transport import ClientError, Conflict, MalformedResponse

rng = np.random.default_rng(7)

ARRAYS = {
    "f8_2d": ragged.array([[1.1, 2.2], [3.3], [4.4, 5.5, 6.6], []]),
    "i4_2d": ragged.array([np.arange(n, dtype="i4") for n in (3, 0, 5, 1)]),
    "u1_1d": ragged.array(np.arange(7, dtype="u1")),
    "bool_2d": ragged.array([[True, False], [], [True]]),
    "f4_3d": ragged.array([[rng.random(2).astype("f4"), []], [rng.random(3).astype("f4")]], dtype=np.float32),
    "fixed_then_var": ragged.array(ak.to_regular(ak.Array([[[1, 2], [3]], [[], [4, 5, 6]], [[7], [8]]]), axis=1)),
    "var_then_fixed": ragged.array(ak.Array([np.arange(6).reshape(3, 2), np.arange(2).reshape(1, 2)])),
    "tensor": ragged.array(np.arange(24, dtype="i2").reshape(4, 3, 2)),
    "empty_rows": ragged.array([[], [], []]),
    "list_input": [[1, 2, 3], [4], [5, 6]],
}


def _same(result, expected) -> None:
    assert isinstance(result, ragged.array), type(result)
    expected = pack_ragged(expected).to_ragged()
    assert result.dtype == expected.dtype
    assert ak.array_equal(result._impl, expected._impl), (result.tolist(), expected.tolist())


def _read(client, selection=None):
    result = client.read(selection)
    return result.compute() if isinstance(client, DaskRaggedClient) else result


@pytest.fixture(scope="module")
def stored(tiled_server):
    root = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        node = root.create_container(f"ragged-{uuid.uuid4().hex[:8]}")
        for name, array in ARRAYS.items():
            node.write_ragged(array, key=name, metadata={"n": name}, dims=None)
        parts = ragged.array([rng.random(int(n)) for n in rng.integers(0, 12, size=40)])
        node.write_ragged(parts, key="parts", max_partition_bytes=200, dims=("row", "value"))
        node.write_ragged(ragged.array([[0.0] * 4 for _ in range(50)]), key="wide")  # for step reads
        return node.item["id"]
    finally:
        root.context.close()


# -- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_round_trip_in_both_modes_and_through_the_reference(node, ref_node, name):
    client = node[name]
    assert isinstance(client, DaskRaggedClient if node._structure_clients == "dask" else RaggedClient)
    expected = pack_ragged(ARRAYS[name])
    assert client.shape == expected.shape and client.size == expected.size and client.dtype == expected.dtype
    _same(_read(client), ARRAYS[name])
    reference = ref_node[name]
    assert reference.shape == client.shape and reference.chunks == client.chunks
    _same(reference.read(), ARRAYS[name])


def test_structure_repr_and_written_by_the_reference(scratch, ref_scratch):
    ref_scratch.write_ragged(ARRAYS["fixed_then_var"], key="ref", dims=["a", "b", "c"])
    client = scratch["ref"]
    structure = client.structure()
    assert isinstance(structure, RaggedStructure) and RaggedStructure.from_json(structure.to_json()) == structure
    assert client.dims == ("a", "b", "c") and client.shape == (3, 2, None) and client.chunks == ((3,), (2,), None)
    assert repr(client) == ("<RaggedClient " + client.path + " shape=(3, 2, None) size=8 chunks=((3,), (2,), None) "
                            "dtype=int64 dims=('a', 'b', 'c')>")
    _same(client.read(), ARRAYS["fixed_then_var"])
    ours = scratch.write_ragged(ARRAYS["fixed_then_var"], key="ours", dims=["a", "b", "c"])
    assert ours.structure() == structure
    assert json.dumps(ref_scratch["ours"].structure().awkward_form.to_dict(), sort_keys=True) == \
        json.dumps(structure.form(), sort_keys=True)


# -- slicing ---------------------------------------------------------------------------------------
SELECTIONS = [("i4_2d", 1), ("i4_2d", -1), ("i4_2d", 0), ("i4_2d", slice(1, 3)), ("i4_2d", slice(None, 2)),
              ("fixed_then_var", (slice(None), 0)), ("i4_2d", (2, 4)), ("f8_2d", (slice(0, 3), slice(0, 1))),
              ("tensor", (Ellipsis, 0)), ("tensor", (1, 2, 0)), ("u1_1d", 3), ("wide", slice(None, None, 7)),
              ("wide", (slice(1, None, 2), slice(None, None, 3))), ("var_then_fixed", (0, slice(1, 3), 1))]


@pytest.mark.parametrize("name, selection", SELECTIONS, ids=repr)
def test_slices_like_ragged_in_one_request(node, stored, name, selection):
    client = node[name]
    expected = ARRAYS[name] if name in ARRAYS else ragged.array([[0.0] * 4 for _ in range(50)])
    want = pack_ragged(expected).to_ragged()[selection]
    session = client.context.session
    before = session.request_count
    got = _read(client, selection)
    assert session.request_count - before == 1
    assert got.dtype == want.dtype and got.ndim == want.ndim
    assert got.tolist() == want.tolist()


def test_partitioned_array_reads_only_the_partitions_asked_for(node, ref_node):
    client = node["parts"]
    assert len(client.chunks[0]) > 3 and client.chunked and client.dims == ("row", "value")
    full = _read(client)
    assert ak.array_equal(full._impl, ref_node["parts"].read()._impl)
    start = client.chunks[0][0]
    stop = start + client.chunks[0][1]
    _same(_read(client, slice(start, stop)), full[start:stop])
    _same(_read(client, (slice(3, 30), slice(0, 2))), full[3:30, 0:2])
    if isinstance(client, DaskRaggedClient):
        assert len(client.to_delayed()) == len(client.chunks[0])
        assert len(client.to_delayed(slice(start, stop))) == 1


@pytest.mark.parametrize("selection, error", [
    ("a", TypeError), (1.5, TypeError), ([0, 1], TypeError), (7, IndexError), (-5, IndexError),
    (slice(None, None, -1), ValueError), (slice(None, None, 0), ValueError), ((Ellipsis, Ellipsis), IndexError),
    ((0, True), TypeError),
])
def test_bad_selections_fail_before_any_request(node, selection, error):
    client = node["i4_2d"]
    with sends_no_request(client), pytest.raises(error):
        client.read(selection)


def test_the_server_refuses_what_only_the_data_rules_out(root, stored):
    client = root[stored]["f8_2d"]  # its last row is empty: no element 0 in every row
    with pytest.raises(ClientError, match="Cannot apply the requested slice"):
        client[:, 0]


# -- export ----------------------------------------------------------------------------------------
def test_export_formats_and_slices(root, stored, tmp_path):
    client = root[stored]["f8_2d"]
    client.export(tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text()) == ARRAYS["f8_2d"].tolist()
    client.export(tmp_path / "row.json", slice=(2,))
    assert json.loads((tmp_path / "row.json").read_text()) == ARRAYS["f8_2d"][2].tolist()
    client.export(tmp_path / "a.arrow", format="arrow")
    assert pyarrow.feather.read_table(tmp_path / "a.arrow") == ak.to_arrow_table(ARRAYS["f8_2d"]._impl)
    buffer = io.BytesIO()
    client.export(buffer, format="application/x-parquet")
    assert pyarrow.parquet.read_table(io.BytesIO(buffer.getvalue())) == ak.to_arrow_table(ARRAYS["f8_2d"]._impl)
    with pytest.raises(ValueError, match="cannot be exported"):
        client.export(tmp_path / "a.xyz")
    assert not list(tmp_path.glob("*.partial"))


# -- writes ----------------------------------------------------------------------------------------
def test_write_checks_fail_before_any_request(scratch):
    node = scratch.write_ragged([[1.0, 2.0], [3.0]], key="w")
    bad = [
        (lambda: node.write([[1.0], [2.0], [3.0]]), ValueError, "rows"),
        (lambda: node.write(ragged.array([[1], [2]], dtype=np.int32)), ValueError, "dtype"),
        (lambda: node.write([[[1.0]], [[2.0]]]), ValueError, "dimensions"),
        (lambda: node.write_block([[1.0], [2.0]], block=1), IndexError, "out of range"),
        (lambda: node.patch([[1.0]], offset=0, extend=True), NotImplementedError, "appending to the end"),
        (lambda: node.patch([[1.0]], offset=2), NotImplementedError, "extend=True"),
        (lambda: node.patch(ragged.array([[1]], dtype=np.int64), offset=2, extend=True), ValueError, "dtype"),
        (lambda: scratch.write_ragged(ak.Array([{"x": 1}]), key="rec"), ValueError, "x: int64"),
        (lambda: scratch.write_ragged(ak.Array([1, None]), key="opt"), ValueError, r"\?int64"),
        (lambda: scratch.write_ragged(ak.Array(["a", "b"]), key="str"), ValueError, "string"),
        (lambda: scratch.write_ragged(ragged.array(3.0), key="scalar"), ValueError, "dimension"),
        (lambda: scratch.write_ragged([[1 + 2j], []], key="cplx"), ValueError, "complex"),
        (lambda: scratch.write_ragged([[1.0] * 100], key="big", max_partition_bytes=64), ValueError, "individual rows"),
        (lambda: scratch.write_ragged([[1]], key="x", appendable=False), NotImplementedError, "appendable"),
        (lambda: scratch.write_ragged("abc", key="s"), TypeError, "nested sequences"),
        (lambda: scratch.write_ragged([[1]], key="a/b"), ValueError, "/"),
        (lambda: scratch.write_ragged([[1]], key="x", on_conflict="merge"), ValueError, "on_conflict"),
    ]
    for call, error, match in bad:
        with sends_no_request(scratch), pytest.raises(error, match=match):
            call()


def test_write_overwrite_stream_and_append(scratch, ref_scratch):
    node = scratch.write_ragged([[1.0, 2.0], [3.0]], key="w")
    node.write([[5, 6], []], persist=False)  # only streamed: the stored data stays
    _same(node.read(), [[1.0, 2.0], [3.0]])
    node.patch([[7.0, 8.0, 9.0]], offset=2, extend=True)
    node.patch(ragged.array([[]], dtype=np.float64), offset=(3,), extend=True)
    assert node.shape == (4, None) and node.chunks == ((2, 1, 1), None)
    _same(node.read(), [[1.0, 2.0], [3.0], [7.0, 8.0, 9.0], []])
    _same(ref_scratch["w"].read(), [[1.0, 2.0], [3.0], [7.0, 8.0, 9.0], []])


def test_on_conflict(scratch):
    first = scratch.write_ragged([[1, 2], [3]], key="c")
    with pytest.raises(Conflict):
        scratch.write_ragged([[1, 2], [3]], key="c")
    before = scratch.context.session.request_count
    same = scratch.write_ragged([[1, 2], [3]], key="c", on_conflict="skip", max_partition_bytes=40)
    assert scratch.context.session.request_count - before == 1  # the lookup only: chunking is not compared
    assert same.path == first.path
    with pytest.raises(Conflict, match="different structure"):
        scratch.write_ragged([[1, 2, 3]], key="c", on_conflict="skip")
    replaced = scratch.write_ragged([[9.5]], key="c", on_conflict="replace")
    _same(replaced.read(), [[9.5]])
    _same(scratch["c"].read(), [[9.5]])


def test_an_interrupted_write_is_marked_and_skip_writes_it_again(scratch, monkeypatch):
    data = ragged.array([np.arange(n, dtype="f8") for n in (4, 3, 4, 2, 4)])
    calls = []
    original = RaggedClient.write_block

    def failing(self, array, block, persist=True):
        calls.append(block)
        if block == 1:
            raise ConnectionError("the network went away")
        return original(self, array, block, persist)

    monkeypatch.setattr(RaggedClient, "write_block", failing)
    with pytest.raises(ConnectionError):
        scratch.write_ragged(data, key="half", max_partition_bytes=48)
    half = scratch["half"]
    assert is_incomplete(half) and INCOMPLETE_SPEC in [s.name for s in half.specs]
    monkeypatch.setattr(RaggedClient, "write_block", original)
    done = scratch.write_ragged(data, key="half", max_partition_bytes=48, on_conflict="skip")
    assert not is_incomplete(scratch["half"])
    _same(done.read(), data)
    assert len(done.chunks[0]) > 2


# -- copy ------------------------------------------------------------------------------------------
def test_copy_between_servers_keeps_data_and_partitions(root, stored, second_server):
    from tiled_core.client.sync import copy

    dest_root = from_uri(second_server.uri, api_key=second_server.api_key)
    try:
        dest = dest_root.create_container(f"ragged-copy-{uuid.uuid4().hex[:8]}")
        source = root.create_container(f"ragged-copy-src-{uuid.uuid4().hex[:8]}")
        for key in ("parts", "fixed_then_var", "empty_rows"):  # parts: several partitions
            original = root[stored][key]
            source.write_ragged(original.read(), key=key, max_partition_bytes=200 if key == "parts" else None)
        copy(source, dest, progress=False)
        for key in ("parts", "fixed_then_var", "empty_rows"):
            assert dest[key].chunks == source[key].chunks
            _same(dest[key].read(), source[key].read())
        again = copy(source, dest, on_conflict="skip", progress=False)
        assert "skipped" in str(again)
    finally:
        dest_root.context.close()


# -- codec -----------------------------------------------------------------------------------------
def test_partitions_fit_the_limit_and_are_filled_greedily():
    packed = pack_ragged(ragged.array([np.zeros(n, dtype="f4") for n in (30, 1, 2, 3, 30, 0, 5)], dtype=np.float32))
    rows = partition_rows(packed, 30 * 4 + 16)
    assert sum(rows) == packed.length
    edges = np.cumsum((0, *rows))
    for start, stop in zip(edges[:-1], edges[1:]):
        assert packed.rows(int(start), int(stop)).nbytes <= 30 * 4 + 16
    assert rows == (1, 3, 1, 2)
    assert partition_rows(packed, 10**9) == (packed.length,)


def test_scalars_and_sliced_bodies_decode():
    packed = pack_ragged(ARRAYS["fixed_then_var"])
    array = decode_ragged_zip(encode_ragged_zip(packed), dtype="int64", ndim=3)
    _same(array, ARRAYS["fixed_then_var"])
    with pytest.raises(MalformedResponse, match="dimensions"):
        decode_ragged_zip(encode_ragged_zip(packed), ndim=2)
    with pytest.raises(MalformedResponse, match="holds"):
        decode_ragged_zip(encode_ragged_zip(packed), dtype="float64")
    assert decode_ragged_json(b"3", "int16") == 3 and decode_ragged_json(b"3", "int16").dtype == np.int16
    for bad in (b"", b"[1, 2]", b'"x"', b"1e400", b"{", b"300"):
        with pytest.raises(MalformedResponse):
            decode_ragged_json(bad, "int8" if bad == b"300" else "float64" if bad != b"1e400" else "int64")


HOSTILE = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BODIES = {name: encode_ragged_zip(pack_ragged(array)) for name, array in ARRAYS.items()}


@pytest.mark.timeout(180)
@HOSTILE
@given(st.sampled_from(sorted(BODIES)), st.data())
def test_hostile_bytes_are_refused_or_decode_to_a_valid_array(name, data):
    body = bytearray(BODIES[name])
    how = data.draw(st.sampled_from(["truncate", "flip", "splice", "random", "form"]))
    if how == "truncate":
        body = body[: data.draw(st.integers(0, len(body) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            body[data.draw(st.integers(0, len(body) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "splice":
        at = data.draw(st.integers(0, len(body)))
        body = body[:at] + data.draw(st.binary(max_size=64)) + body[at:]
    elif how == "random":
        body = bytearray(data.draw(st.binary(max_size=512)))
    else:  # a well-formed zip around a hostile form or length
        packed = pack_ragged(ARRAYS[name])
        entries = dict(packed.buffers)
        form = data.draw(st.sampled_from([
            {"class": "RecordArray", "fields": [], "contents": []},
            {"class": "NumpyArray", "primitive": "datetime64", "form_key": "node0"},
            {"class": "ListOffsetArray", "offsets": "i64", "content": None, "form_key": "node0"},
            {"class": "RegularArray", "size": -1, "content": {"class": "NumpyArray", "primitive": "int64"}},
            {"class": "NumpyArray", "primitive": "int64", "inner_shape": [2**40], "form_key": "node0"},
            "not a form", [1, 2],
        ]))
        from tiled_core.codecs.awkward import encode_buffers_zip

        entries["form"] = json.dumps(json.dumps(form)).encode()
        entries["length"] = data.draw(st.sampled_from([b"\x00" * 7, (2**62).to_bytes(8, "big"),
                                                       packed.length.to_bytes(8, "big")]))
        body = bytearray(encode_buffers_zip(entries))
    try:
        result = decode_ragged_zip(bytes(body))
    except MalformedResponse:
        return
    assert isinstance(result, ragged.array)
    assert ak.validity_error(result._impl) == ""
    result.tolist()  # every element reachable


# -- the server's size limit -------------------------------------------------------------------------
def test_reads_over_the_size_limit_go_partition_by_partition(small_limit_server):
    root = from_uri(small_limit_server.uri, api_key=small_limit_server.api_key)
    try:
        data = ragged.array([np.arange(n, dtype="f8") for n in rng.integers(0, 60, size=100)])
        node = root.write_ragged(data, key=f"big-ragged-{uuid.uuid4().hex[:6]}", max_partition_bytes=8000)
        assert pack_ragged(data).nbytes > 20000 and len(node.chunks[0]) >= 3
        before = root.context.session.request_count
        _same(node.read(), data)
        assert root.context.session.request_count - before == 1 + len(node.chunks[0])  # refused, then each partition
        _same(node[5:95, 1:], data[5:95, 1:])
    finally:
        root.context.close()
