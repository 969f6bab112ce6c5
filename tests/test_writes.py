"""The array write path against a real server: uploads, block writes, patch/extend, keys,
bounded memory, and interrupted writes (a dedicated server killed mid-upload)."""

from __future__ import annotations

import tracemalloc
import uuid
import warnings

import dask.array as da
import numpy as np
import pytest

from tiled_core.client import from_uri
from tiled_core.client.conflict import INCOMPLETE_SPEC, is_incomplete
from tiled_core.transport import Conflict, TransportError

from _checks import running

MiB = 1 << 20
RNG = np.random.default_rng(7)

ROUND_TRIP = {
    "f8_3d": RNG.random((3, 4, 5)),
    "f2": np.linspace(0, 1, 7, dtype="float16"),
    "i1": np.arange(-5, 5, dtype="int8"),
    "u8": np.array([0, 2**64 - 1], dtype="uint64"),
    "c8": (np.arange(4) * (1 - 1j)).astype("complex64"),
    "c16_be": (np.arange(3) * (2 + 0.5j)).astype(">c16"),
    "f8_be": np.arange(6, dtype=">f8").reshape(2, 3),
    "bool_2d": np.array([[True, False], [False, True]]),
    "dt64_d": np.array(["2024-02-29", "1900-01-01"], dtype="datetime64[D]"),
    "dt64_ms": np.array(["2024-02-29T12:00:00.123"], dtype="datetime64[ms]"),
    "td64_us": np.array([1, -1, 10**12], dtype="timedelta64[us]"),
    "zerod_c": np.array(1 - 2j),
    "zerod_bool": np.array(True),
    "empty_1d": np.zeros(0, dtype="int16"),
    "empty_3d": np.zeros((2, 0, 3), dtype="uint8"),
}


def _requests(client) -> int:
    return client.context.session.request_count


# -- round trips ---------------------------------------------------------------
@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_written_by_tiled_core_reads_identical_in_both_clients(scratch, ref_scratch, name):
    value = ROUND_TRIP[name]
    node = scratch.write_array(value, key=name)
    assert not is_incomplete(node) and node.shape == value.shape
    for read in (ref_scratch[name].read(), scratch[name].read(), node.read()):
        assert read.dtype == value.dtype and read.shape == value.shape
        np.testing.assert_array_equal(read, value)


@pytest.mark.parametrize("name", ["f8_3d", "c8", "dt64_ms", "bool_2d", "zerod_c", "empty_3d"])
def test_written_by_the_reference_reads_identical_in_tiled_core(scratch, ref_scratch, name):
    value = ROUND_TRIP[name]
    ref_scratch.write_array(value, key=name)
    read = scratch[name].read()
    assert read.dtype == value.dtype
    np.testing.assert_array_equal(read, value)


def test_small_arrays_cost_two_requests_and_carry_no_mark(scratch, ref_scratch):
    before = _requests(scratch)
    node = scratch.write_array(RNG.random((64, 64)), key="small", specs=["mine"])
    assert _requests(scratch) - before == 2  # create (reserved) + one extending PATCH
    assert [s.name for s in ref_scratch["small"].specs] == ["mine"]
    assert node.structure().chunks == ((64,), (64,)) == ref_scratch["small"].structure().chunks
    assert len(ref_scratch["small"].metadata_revisions) == 0


def test_suggested_max_upload_size_splits_larger_writes(scratch, ref_scratch):
    data = np.arange(100, dtype="uint8")
    scratch._SUGGESTED_MAX_UPLOAD_SIZE = data.nbytes - 1  # on this container only
    before = _requests(scratch)
    node = scratch.write_array(data, key="split", specs=["mine"])
    # create, one PUT per chunk (none over the limit), clear the mark
    assert node.structure().chunks == ((99, 1),) == ref_scratch["split"].structure().chunks
    assert _requests(scratch) - before == 1 + 2 + 1
    np.testing.assert_array_equal(ref_scratch["split"].read(), data)
    assert [s.name for s in ref_scratch["split"].specs] == ["mine"] and not is_incomplete(node)
    # An evenly divided one too: split in requests, not sent whole in one.
    lazy = scratch.write_array(da.from_array(np.arange(100.0), chunks=50), key="lazy")
    assert lazy.structure().chunks == ((12,) * 8 + (4,),)
    np.testing.assert_array_equal(ref_scratch["lazy"].read(), np.arange(100.0))
    # Ragged arrays: partitions of at most that many bytes.
    rows = [np.arange(n, dtype="int64") for n in (3, 5, 2, 4)]
    scratch._SUGGESTED_MAX_UPLOAD_SIZE = 64
    ragged = scratch.write_ragged(rows, key="rows")
    assert len(ragged.structure().chunks[0]) > 1
    for got, want in zip(ref_scratch["rows"].read(), rows):
        np.testing.assert_array_equal(np.asarray(got), want)
    for bad in (0, -5, "big", True):
        scratch._SUGGESTED_MAX_UPLOAD_SIZE = bad
        with pytest.raises(ValueError, match="_SUGGESTED_MAX_UPLOAD_SIZE"):
            scratch.write_array(data, key="refused")
    assert type(scratch)._SUGGESTED_MAX_UPLOAD_SIZE == 100_000_000  # the class keeps the default


def test_large_chunked_dask_upload_round_trips(scratch, ref_scratch):
    data = RNG.standard_normal((600, 700)).astype("float32")
    chunks = (128, 256)  # partial last chunks: the block path with its mark
    before = _requests(scratch)
    node = scratch.write_array(da.from_array(data, chunks=chunks), key="big", dims=["y", "x"])
    blocks = 5 * 3
    assert _requests(scratch) - before == 1 + blocks + 1  # create, one PUT per block, clear the mark
    assert not is_incomplete(scratch["big"])
    ref = ref_scratch["big"]
    assert ref.structure().chunks == ((128,) * 4 + (88,), (256, 256, 188))
    assert tuple(ref.structure().dims) == ("y", "x")
    np.testing.assert_array_equal(ref.read(), data)
    np.testing.assert_array_equal(ref.read_block((4, 2)), data[512:, 512:])
    np.testing.assert_array_equal(node.read(), data)


def test_an_evenly_tiled_dask_array_goes_in_one_request(scratch, ref_scratch):
    data = np.arange(64 * 30, dtype="int32").reshape(64, 30)
    before = _requests(scratch)
    scratch.write_array(da.from_array(data, chunks=(16, 10)), key="even")
    assert _requests(scratch) - before == 2
    assert ref_scratch["even"].structure().chunks == ((16,) * 4, (10,) * 3)
    np.testing.assert_array_equal(ref_scratch["even"].read(), data)


# -- writes into existing nodes --------------------------------------------------
def test_write_replaces_data_from_numpy_dask_and_lists(scratch, ref_scratch):
    node = scratch.write_array(da.zeros((9, 4), chunks=(4, 4), dtype="int64"), key="w")
    node.write(np.arange(36, dtype="int32").reshape(9, 4))  # a safe cast is made for the caller
    np.testing.assert_array_equal(ref_scratch["w"].read(), np.arange(36).reshape(9, 4))
    node.write(da.ones((9, 4), chunks=(2, 2), dtype="int64") * 3)
    np.testing.assert_array_equal(ref_scratch["w"].read(), np.full((9, 4), 3))
    node.write([[1, 2, 3, 4]] * 9)
    np.testing.assert_array_equal(ref_scratch["w"].read(), np.tile([1, 2, 3, 4], (9, 1)))


def test_write_block_and_errors_before_any_request(scratch, ref_scratch):
    node = scratch.write_array(da.zeros((9, 4), chunks=(4, 4)), key="b")
    node.write_block(np.full((1, 4), 5.0), (2, 0))
    node.write_block(da.ones((4, 4), chunks=2), block=(1, 0))
    expected = np.zeros((9, 4))
    expected[4:8] = 1
    expected[8] = 5
    np.testing.assert_array_equal(ref_scratch["b"].read(), expected)
    before = _requests(scratch)
    with pytest.raises(ValueError, match="has shape"):
        node.write_block(np.zeros((4, 4)), (2, 0))
    with pytest.raises(IndexError, match="out of range"):
        node.write_block(np.zeros((4, 4)), (3, 0))
    with pytest.raises(IndexError, match="needs 2 entries"):
        node.write_block(np.zeros((4, 4)), (0,))
    with pytest.raises(ValueError, match="without loss"):
        node.write_block(np.zeros((4, 4), dtype="complex128"), (0, 0))
    with pytest.raises(ValueError, match="does not fit"):
        node.write(np.zeros((4, 9)))
    with pytest.raises(ValueError, match="without loss"):
        node.write(np.zeros((9, 4), dtype="c8"))
    assert _requests(scratch) == before


def test_writes_into_a_node_the_reference_created(scratch, ref_scratch):
    ref_scratch.write_array(da.zeros((6, 6), chunks=(3, 3), dtype="uint16"), key="r")
    node = scratch["r"]
    node.write_block(np.full((3, 3), 9, dtype="uint16"), (1, 1))
    node.patch(np.array([[1, 2]], dtype="uint16"), offset=(0, 4))
    expected = np.zeros((6, 6), dtype="uint16")
    expected[3:, 3:] = 9
    expected[0, 4:] = [1, 2]
    np.testing.assert_array_equal(ref_scratch["r"].read(), expected)


# -- patch -----------------------------------------------------------------------
def test_patch_in_place_and_extend_like_the_reference(scratch, ref_scratch):
    ours = scratch.write_array(np.ones((3, 2, 2)), key="ours")
    ref = ref_scratch.write_array(np.ones((3, 2, 2)), key="ref")
    for client in (ours, ref):
        client.patch(np.zeros((1, 2, 2)), offset=(3,), extend=True)  # the reference docstring's example
        client.patch(np.full((2, 1, 2), 5.0), offset=(1, 1))
        client.patch(np.full((1, 2, 3), 7.0), offset=(4, 0, 0), extend=True)  # grows two axes at once
    assert ours.shape == (5, 2, 3) == ref.structure().shape
    np.testing.assert_array_equal(ref_scratch["ours"].read(), ref_scratch["ref"].read())
    np.testing.assert_array_equal(scratch["ours"].read(), ref_scratch["ref"].read())
    assert ours.read()[4].tolist() == [[7.0] * 3] * 2


def test_patch_grows_an_array_row_by_row(scratch, ref_scratch):
    node = scratch.write_array(np.arange(4).reshape(1, 4), key="rows")
    for i in range(1, 5):
        node.patch(np.arange(4).reshape(1, 4) + 4 * i, offset=i, extend=True)
    assert node.shape == (5, 4) and node.chunks == ((1,) * 5, (4,))
    np.testing.assert_array_equal(ref_scratch["rows"].read(), np.arange(20).reshape(5, 4))


def test_patch_errors_before_any_request(scratch):
    node = scratch.write_array(np.zeros((4, 3)), key="p")
    before = _requests(scratch)
    with pytest.raises(ValueError, match="extend=True to grow"):
        node.patch(np.ones((2, 3)), offset=3)
    with pytest.raises(ValueError, match="extend=True to grow"):
        node.patch(np.ones((1, 2)), offset=(0, 2))
    with pytest.raises(ValueError, match="non-negative"):
        node.patch(np.ones((1, 3)), offset=-1)
    with pytest.raises(ValueError, match="non-negative"):
        node.patch(np.ones((1, 3)), offset=(0, 0, 0))
    with pytest.raises(ValueError, match="dimensions"):
        node.patch(np.ones(3), offset=0)
    with pytest.raises(ValueError, match="without loss"):
        node.patch(np.ones((1, 3), dtype="c16"), offset=0)
    with pytest.raises(ValueError, match="persist"):
        node.patch(np.ones((1, 3)), offset=4, extend=True, persist=False)
    assert _requests(scratch) == before
    assert node.shape == (4, 3)


def test_patch_into_chunk_padding_warns(scratch, ref_scratch):
    node = scratch.write_array(da.arange(10, chunks=4), key="pad")  # zarr storage holds 12
    with pytest.warns(RuntimeWarning, match="fill value"):
        node.patch(np.array([100]), offset=10, extend=True)
    assert node.shape == (12,) == ref_scratch["pad"].structure().shape  # the server's own answer
    assert ref_scratch["pad"].read().tolist() == [*range(10), 100, 0]


def test_patch_inside_an_array_with_partial_chunks_keeps_its_shape(scratch, ref_scratch):
    # 2-D, partial last chunk on both axes: the server's PATCH would set the shape to (8, 9)
    expected = np.arange(7 * 8, dtype="i4").reshape(7, 8)
    node = scratch.write_array(da.from_array(expected, chunks=(4, 3)), key="uneven")
    update = np.full((3, 4), -1, dtype="i4")
    before = _requests(scratch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        node.patch(update, offset=(3, 2))  # meets blocks (0..1) x (0..1), none whole: read + write each
        node.patch(np.full((3, 2), -2, dtype="i4"), offset=(4, 6), extend=True)  # the last block, whole
    expected[3:6, 2:6] = -1
    expected[4:7, 6:8] = -2
    assert _requests(scratch) - before == 2 * 4 + 1
    assert node.shape == (7, 8) == ref_scratch["uneven"].structure().shape
    assert node.chunks == ((4, 3), (3, 3, 2))
    np.testing.assert_array_equal(ref_scratch["uneven"].read(), expected)


def test_which_arrays_a_patch_would_grow():
    from tiled_core.codecs.array import patch_changes_shape

    # The server's storage is first chunk x number of chunks on each axis.
    assert patch_changes_shape(((4, 4, 2),)) and patch_changes_shape(((4, 3, 4), (5,)))
    assert patch_changes_shape(((3, 4),))  # storage smaller than the node: its shape changes too
    assert not patch_changes_shape(((4, 4, 4), (5,))) and not patch_changes_shape(((10,),))
    assert not patch_changes_shape(((0,),)) and not patch_changes_shape(())


def test_dask_clients_write_and_patch(tiled_server, ref_scratch):
    client = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    try:
        parent = client[ref_scratch.item["id"]]
        node = parent.write_array(da.zeros((8, 8), chunks=4), key="d")
        node.write(da.arange(64, chunks=16).reshape(8, 8).astype("float64"))
        node.write_block(da.full((4, 4), -1.0, chunks=2), (1, 1))
        node.patch(np.full((1, 8), 2.0), offset=8, extend=True)
        expected = np.arange(64.0).reshape(8, 8)
        expected[4:, 4:] = -1
        expected = np.vstack([expected, np.full((1, 8), 2.0)])
        np.testing.assert_array_equal(ref_scratch["d"].read(), expected)
        np.testing.assert_array_equal(node.read().compute(), expected)
    finally:
        client.context.close()


# -- memory ----------------------------------------------------------------------
def test_a_dask_upload_holds_only_a_few_blocks(scratch, ref_scratch):
    # 64 MiB in 16 blocks of 4 MiB, each made fresh when computed (dask's own random arrays
    # allocate ~4x their block while generating it, which would measure dask, not the upload)
    array = da.arange(16 * 512, chunks=512, dtype="float64")[:, None] * da.ones((1, 1024), chunks=(1, 1024))
    assert array.nbytes == 64 * MiB and array.numblocks == (16, 1)
    tracemalloc.start()
    try:
        node = scratch.write_array(array, key="m")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # at most Limits.concurrency (4) blocks are computed and in flight at once, and none is copied to send it
    assert peak < 24 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert node.chunks[0] == (512,) * 16
    np.testing.assert_array_equal(ref_scratch["m"].read_block((15, 0)), np.repeat(np.arange(7680.0, 8192)[:, None], 1024, 1))


def test_sending_a_buffer_does_not_copy_it(scratch, ref_scratch):
    node = scratch.write_array(np.zeros(3 * MiB), key="z")  # 24 MiB, one block
    data = np.random.default_rng(0).random(3 * MiB)
    tracemalloc.start()
    try:
        node.write(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"  # a bytes copy alone would be 24 MiB
    np.testing.assert_array_equal(ref_scratch["z"].read()[-5:], data[-5:])


def test_a_streamed_body_is_sent_again_on_retry(tiled_server, ref_scratch, monkeypatch):
    from _proxy import FaultProxy

    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "3")
    data = np.random.default_rng(1).random(3 * MiB // 8 * 8)  # 24 MiB: several 1 MiB pieces per attempt
    with FaultProxy("127.0.0.1", tiled_server.port) as proxy:
        client = from_uri(proxy.uri, api_key=tiled_server.api_key)
        try:
            node = client[ref_scratch.item["id"]].write_array(np.zeros_like(data), key="retry")
            proxy.clear()
            proxy.respond(503, times=1, method="PUT")
            node.write(data)
            puts = [(method, headers) for method, _, headers in proxy.requests if method == "PUT"]
        finally:
            client.context.close()
    assert len(puts) == 2
    assert all({k.lower(): v for k, v in h.items()}["content-length"] == str(data.nbytes) for _, h in puts)
    np.testing.assert_array_equal(ref_scratch["retry"].read(), data)


# -- keys ------------------------------------------------------------------------
@pytest.mark.parametrize("key, error", [
    ("", ValueError), ("   ", ValueError), (".", ValueError), ("..", ValueError), ("a/b", ValueError),
    ("a?b", ValueError), ("a#b", ValueError), ("tab\there", ValueError), ("nul\x00", ValueError),
    ("a%2Fb", ValueError), ("%41", ValueError), (" lead", ValueError), ("trail ", ValueError), (3, TypeError),
    ("k" * 256, ValueError), ("ü" * 43, ValueError),  # a file name on the server: 255 bytes once URL-quoted
])
def test_keys_the_server_cannot_address_fail_before_any_request(scratch, key, error):
    before = _requests(scratch)
    with pytest.raises(error):
        scratch.write_array(np.arange(2), key=key)
    with pytest.raises(error):
        scratch.create_container(key, on_conflict="skip")
    with pytest.raises(error):
        scratch.new("container", [], key=key)
    assert _requests(scratch) == before


@pytest.mark.parametrize("key", ["a b", "ünï", "a\\b", "50%", "a+b&c=d;e", "[x]:y@z", "😀", "k" * 255, "ü" * 42, "-._~"])
def test_unusual_but_addressable_keys_work_in_both_clients(scratch, ref_scratch, key):
    scratch.write_array(np.arange(3), key=key)
    assert ref_scratch[key].read().tolist() == [0, 1, 2]
    ref_scratch.create_container(key + "!")
    assert scratch[key + "!"].item["id"] == key + "!"


def test_new_creates_a_node_from_a_data_source(scratch, ref_scratch):
    from tiled_core.client.blocks import array_data_source

    array, source = array_data_source(np.arange(6.0).reshape(2, 3))
    node = scratch.new("array", [source], key="low", metadata={"m": 1}, specs=["s"])
    node.write(array)
    assert not is_incomplete(node)
    assert dict(ref_scratch["low"].metadata) == {"m": 1} and [s.name for s in ref_scratch["low"].specs] == ["s"]
    np.testing.assert_array_equal(ref_scratch["low"].read(), array)


# -- interrupted writes ------------------------------------------------------------
@pytest.fixture(scope="module")
def crash_server(killable_server):
    """The session's killable server, to kill mid-upload (its directory survives a restart)."""
    return killable_server


@pytest.fixture
def crash(crash_server, monkeypatch):
    """A client on the crash server that does not wait out a dead server, and a fresh container."""
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "1")
    running(crash_server)
    client = from_uri(crash_server.uri, api_key=crash_server.api_key)
    yield client, client.create_container(f"c-{uuid.uuid4().hex[:8]}")
    client.context.close()


def _killing(data, chunks, server, at_block):
    """A dask array of ``data`` whose block ``at_block`` kills ``server`` while being computed."""
    def block(x, block_info=None):
        if block_info and block_info[None]["chunk-location"] == at_block:
            server.kill()
        return x

    return da.from_array(data, chunks=chunks).map_blocks(block, dtype=data.dtype)


def _reconnect(server):
    from tiled.client import from_uri as ref_from_uri

    server.restart()
    return from_uri(server.uri, api_key=server.api_key), ref_from_uri(server.uri, api_key=server.api_key)


def test_a_block_upload_killed_midway_is_marked_and_skip_completes_it(crash_server, crash):
    _, container = crash
    data = RNG.random((500, 64))  # 8 blocks of 64 rows, the last partial: the block path
    with pytest.raises(TransportError):
        container.write_array(_killing(data, (64, 64), crash_server, (5, 0)), key="x", metadata={"run": 1})
    ours, ref = _reconnect(crash_server)
    try:
        parent, ref_parent = ours[container.path], ref[container.path]
        assert is_incomplete(parent["x"])
        assert INCOMPLETE_SPEC in [s.name for s in ref_parent["x"].specs]  # visible to every client
        with pytest.raises(Conflict):
            parent.write_array(data, key="x")  # the default refuses to touch it
        node = parent.write_array(data, key="x", on_conflict="skip")
        assert not is_incomplete(node) and not is_incomplete(parent["x"])
        assert [s.name for s in ref_parent["x"].specs] == []
        np.testing.assert_array_equal(ref_parent["x"].read(), data)
        assert dict(ref_parent["x"].metadata) == {"run": 1}
    finally:
        ours.context.close()
        ref.context.close()


def test_a_one_request_upload_killed_is_reserved_and_replace_rewrites_it(crash_server, crash):
    _, container = crash
    data = RNG.random((64, 32))  # evenly tiled and small: created reserved, filled by one PATCH
    with pytest.raises(TransportError):
        container.write_array(_killing(data, (16, 32), crash_server, (2, 0)), key="y")
    ours, ref = _reconnect(crash_server)
    try:
        parent, ref_parent = ours[container.path], ref[container.path]
        node = parent["y"]
        assert is_incomplete(node) and node.shape == (0, 32) and node.read().shape == (0, 32)
        assert ref_parent["y"].read().shape == (0, 32)  # never looks complete: no rows yet
        # a different array under the same key is refused by "skip" ...
        with pytest.raises(Conflict, match="different structure"):
            parent.write_array(data[:10], key="y", on_conflict="skip")
        # ... and "replace" removes the unfinished node and writes anew
        node = parent.write_array(data * 2, key="y", on_conflict="replace")
        assert not is_incomplete(node)
        np.testing.assert_array_equal(ref_parent["y"].read(), data * 2)
    finally:
        ours.context.close()
        ref.context.close()


def test_skip_completes_a_reserved_node(scratch, ref_scratch):
    from tiled_core.client.conflict import begin_write
    from tiled_core.client.writing._upload import array_data_source, plan_array_write

    data = RNG.random((32, 8))
    array, source = array_data_source(data)
    reserved, mark = plan_array_write(array, source)
    begin_write(scratch, "array", [reserved], key="z", metadata=None, specs=None, mark=mark)  # ... and dies here
    assert ref_scratch["z"].read().shape == (0, 8) and is_incomplete(scratch["z"])
    before = _requests(scratch)
    node = scratch.write_array(data, key="z", on_conflict="skip")
    assert _requests(scratch) - before == 2  # the lookup, and the one PATCH that fills it
    assert not is_incomplete(node) and node.shape == (32, 8)
    np.testing.assert_array_equal(ref_scratch["z"].read(), data)
    before = _requests(scratch)
    assert scratch.write_array(data, key="z", on_conflict="skip").shape == (32, 8)
    assert _requests(scratch) - before == 1  # complete: looked up and left alone
