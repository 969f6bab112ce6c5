"""tiled_core.client.sync.copy between two real servers, checked with the reference client."""

from __future__ import annotations

import threading
import tracemalloc
import uuid

import h5py
import numpy as np
import pandas as pd
import pytest

from tiled_core.client import Context, from_context, from_uri, record_history
from tiled_core.client.conflict import INCOMPLETE_SPEC
from tiled_core.client.sync import CopyConflict, CopyError, CopyProgress, copy
from tiled_core.transport import ClientError, Conflict, TransportError

from _checks import running
from _copy_helpers import assert_same_tree, count_nodes, read_table, write_tree

MiB = 1 << 20


# -- building trees (reference client) ------------------------------------------------
def build_tree(ref_parent) -> None:
    """Every family the server stores, nested containers, metadata and specs."""
    import awkward as ak
    import dask.array as da
    import dask.dataframe as dd
    import pyarrow as pa
    import xarray as xr
    from tiled.client.xarray import write_xarray_dataset
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import DataSource
    from tiled.structures.table import TableStructure

    rng = np.random.default_rng(1)
    ref_parent.write_array(da.from_array(rng.random((30, 20)), chunks=(10, 8)), key="arr",
                           metadata={"units": "mm", "nested": {"a": [1, 2]}}, specs=["alpha"])
    ref_parent.write_array(np.array(7, dtype=">i4"), key="scalar")
    ref_parent.write_array(np.zeros((0, 3)), key="empty")
    ref_parent.write_array(np.array(["a", "bc"]), key="strings")
    nested = ref_parent.create_container("nested", metadata={"level": 1}, specs=["grp"])
    deeper = nested.create_container("deeper", metadata={"level": 2})
    deeper.write_array(np.arange(12, dtype="i2").reshape(3, 4), key="leaf", metadata={"x": 1.5})
    deeper.create_container("hollow")
    nested.write_table(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}), key="tbl")
    frame = pd.DataFrame({"i": np.arange(9), "f": np.linspace(0, 1, 9)})
    ddf = dd.from_pandas(frame, npartitions=3)
    parted = ref_parent.new(StructureFamily.table, [DataSource(structure=TableStructure.from_dask_dataframe(ddf),
                                                               structure_family=StructureFamily.table)], key="parted")
    for i in range(3):
        parted.write_partition(i, ddf.partitions[i].compute())
    ref_parent.write_sparse(coords=np.array([[0, 2], [1, 3]]), data=np.array([1.5, 2.5]), shape=(4, 5), key="sp")
    ref_parent.write_awkward(ak.Array([[1, 2, 3], [], [4]]), key="aw", metadata={"kind": "jagged"})
    ref_parent.write_ragged([[1, 2, 3], [4], [5, 6]], key="rg", max_partition_bytes=40)
    sql = ref_parent.create_container("sqlgroup")
    table = sql.create_appendable_table(pa.schema([("a", pa.int64()), ("b", pa.string())]), npartitions=2, key="sql")
    table.append_partition(0, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    table.append_partition(1, pa.table({"a": [3], "b": ["z"]}))
    dataset = xr.Dataset({"v": ("x", np.arange(4.0))}, coords={"x": np.arange(4)}, attrs={"title": "t"})
    write_xarray_dataset(ref_parent, dataset, key="ds")


# -- fixtures -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def source_tree(ref_root):
    """A tree of every family on the main server (written once by the reference client)."""
    return write_tree(ref_root, build_tree, "copy-src")


@pytest.fixture(scope="module")
def ref_dest_root(second_server):
    from tiled.client import from_uri as ref_from_uri

    client = ref_from_uri(second_server.uri, api_key=second_server.api_key)
    yield client
    client.context.close()


@pytest.fixture
def source(tiled_server, source_tree):
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    yield client[source_tree]
    client.context.close()


@pytest.fixture
def dest(second_server):
    client = from_uri(second_server.uri, api_key=second_server.api_key)
    yield client.create_container(f"copy-dst-{uuid.uuid4().hex[:8]}")
    client.context.close()


# -- the copy itself ----------------------------------------------------------------
def test_tree_arrives_identical(source, dest, ref_root, ref_dest_root, source_tree):
    summary = copy(source, dest, progress=False)
    ref_source, ref_dest = ref_root[source_tree], ref_dest_root[dest.path]
    assert summary.failed == 0 and summary.skipped == 0
    assert summary.nodes == count_nodes(ref_source)
    assert summary.bytes >= 30 * 20 * 8
    assert_same_tree(ref_source, ref_dest)
    # ... and tiled_core reads the copies too
    np.testing.assert_array_equal(dest["arr"].read(), source["arr"].read())
    assert dest["nested"]["deeper"]["leaf"].read().dtype == np.dtype("i2")
    # Storage kind follows the source: the appendable table is SQL-backed again.
    sources = dest.new_variation(include_data_sources=True)["sqlgroup"]["sql"].item["attributes"]["data_sources"]
    assert sources[0]["mimetype"] == "application/x-tiled-sql-table"

    again = copy(source, dest, on_conflict="skip", progress=False)
    assert (again.nodes, again.bytes, again.failed) == (0, 0, 0)
    assert again.skipped == summary.nodes
    assert count_nodes(ref_dest) == summary.nodes  # nothing duplicated


def test_evenly_chunked_arrays_move_in_regions_and_arrive_identical(ref_root, dest, ref_dest_root):
    """Arrays whose chunks are all equal move many chunks per request (one region each way); the
    copies keep shape, chunks, dtype (byte order too) and values; uneven chunking moves chunk by chunk."""
    import dask.array as da

    rng = np.random.default_rng(11)
    parent = ref_root.create_container(f"regions-{uuid.uuid4().hex[:8]}")
    arrays = {
        "cube": da.from_array(rng.integers(-999, 999, (4, 6, 10)).astype("i2"), chunks=(1, 3, 5)),  # 24 chunks
        "big_endian": da.from_array(rng.random((12, 8)).astype(">f4"), chunks=(4, 4)),  # 6 chunks
        "line": da.from_array(np.arange(100, dtype="u8"), chunks=10),  # 10 chunks
        "uneven": da.from_array(rng.random((10, 7)), chunks=(4, 3)),  # partial last chunks: 9 requests
    }
    for key, array in arrays.items():
        parent.write_array(array, key=key, metadata={"key": key})
    source = from_uri(ref_root.uri, api_key=ref_root.context.api_key)[parent.item["id"]]
    target = dest.create_container("regions")
    with record_history() as history:
        summary = copy(source, target, progress=False)
    assert summary.failed == 0 and summary.nodes == len(arrays)
    moves = sorted((r.method, r.url.path.rsplit("/", 1)[-1]) for r in history.requests
                   if r.url.path.startswith("/api/v1/array/"))
    even = ["big_endian", "cube", "line"]  # a region each way; the uneven array's 9 chunks one by one
    assert moves == sorted([("GET", k) for k in even] + [("PATCH", k) for k in even]
                           + [("GET", "uneven"), ("PUT", "uneven")] * 9)
    assert_same_tree(parent, ref_dest_root[dest.path]["regions"])
    for key, array in arrays.items():
        copied = ref_dest_root[dest.path]["regions"][key]
        assert copied.structure().chunks == parent[key].structure().chunks
        np.testing.assert_array_equal(copied.read(), array.compute())


def test_existing_keys_error_warn_skip(source, dest, ref_dest_root):
    copy(source["nested"], dest, progress=False)
    with pytest.raises(CopyError, match="on_conflict='skip'") as caught:
        copy(source["nested"], dest, progress=False)
    assert isinstance(caught.value.__cause__, Conflict)
    # Both children (sent together, in order, on one connection) are refused, and both are reported.
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in caught.value.summary.errors) == ["deeper", "tbl"]
    # As the reference's copy raises it: the server's 409, a ClientError (and still a CopyError).
    assert isinstance(caught.value, CopyConflict) and isinstance(caught.value, ClientError)
    assert caught.value.status == 409 and caught.value.response.status_code == 409
    with pytest.warns(UserWarning, match="Skipped existing entry /.*/deeper"):
        summary = copy(source["nested"], dest, on_conflict="warn", progress=False)
    assert summary.nodes == 0 and summary.skipped == 4  # deeper, its leaf and hollow, tbl
    assert sorted(ref_dest_root[dest.path]) == ["deeper", "tbl"]


def test_selected_children_and_mappings(source, dest, ref_dest_root, ref_root, source_tree):
    copy(source.items().head(2), dest, progress=False)
    assert list(ref_dest_root[dest.path]) == ["arr", "scalar"]
    copy({"renamed": source["nested"]["tbl"]}, dest, progress=False)
    pd.testing.assert_frame_equal(ref_dest_root[dest.path]["renamed"].read(), ref_root[source_tree]["nested"]["tbl"].read())


def test_copy_into_an_existing_node(source, dest):
    target = dest.write_array(np.zeros((30, 20)), key="target")
    summary = copy(source["arr"], target, progress=False)
    assert summary.bytes == 30 * 20 * 8
    np.testing.assert_array_equal(dest["target"].read(), source["arr"].read())
    with pytest.raises(ValueError, match="not a array of the source's structure"):
        copy(source["scalar"], target, progress=False)


def test_bad_arguments_fail_before_any_request(source, dest):
    sessions = (source.context.session, dest.context.session)
    before = [s.request_count for s in sessions]
    with pytest.raises(ValueError, match="on_conflict"):
        copy(source, dest, on_conflict="replace")
    with pytest.raises(ValueError, match="concurrency"):
        copy(source, dest, concurrency=0)
    with pytest.raises(ValueError, match="external"):
        copy(source, dest, external="copy")
    with pytest.raises(TypeError, match="dest must be"):
        copy(source, "http://elsewhere")
    with pytest.raises(TypeError, match="source"):
        copy(42, dest)
    with pytest.raises(TypeError, match="progress"):
        copy(source, dest, progress="yes")
    assert [s.request_count for s in sessions] == before


def test_progress_callback_and_bar(source, dest, capsys):
    seen: list[CopyProgress] = []
    summary = copy(source["nested"], dest, progress=seen.append)
    assert seen and seen[-1].nodes_done == summary.nodes == 4
    assert all(b.bytes_done >= a.bytes_done for a, b in zip(seen, seen[1:]))
    assert "copied 4 nodes" in str(summary) and "failed 0" in str(summary)
    copy(source["nested"]["deeper"], dest.create_container("bar"), progress=True)
    assert "copy" in capsys.readouterr().err


# -- resuming ---------------------------------------------------------------------------
def test_rerun_finishes_what_an_interruption_left(source, dest, ref_root, ref_dest_root, source_tree):
    """The state an interrupted copy leaves (marked nodes, missing data) is completed, nothing doubled."""
    import pyarrow as pa

    mark = {"name": INCOMPLETE_SPEC, "version": None}
    ref_dest = ref_dest_root[dest.path]
    nested = ref_dest.create_container("nested", metadata={"level": 1}, specs=["grp", mark["name"]])
    # A small node covered by its marked parent, created but never written:
    nested.write_table(pd.DataFrame({"a": [0, 0, 0], "b": ["", "", ""]}), key="tbl")
    # A marked array with only part of its blocks:
    import dask.array as da

    half = ref_dest.write_array(da.zeros((30, 20), chunks=(10, 8)), key="arr",
                                metadata={"units": "mm", "nested": {"a": [1, 2]}}, specs=["alpha", mark["name"]])
    assert half.read().sum() == 0
    # A marked appendable table holding some rows already (appends are not idempotent):
    group = ref_dest.create_container("sqlgroup", specs=[mark["name"]])
    table = group.create_appendable_table(pa.schema([("a", pa.int64()), ("b", pa.string())]), npartitions=2,
                                          key="sql", specs=[mark["name"]])
    table.append_partition(0, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    keys = ("arr", "scalar", "nested", "sqlgroup")
    summary = copy({key: source[key] for key in keys}, dest, on_conflict="skip", progress=False)
    assert summary.failed == 0
    # Nodes made before the interruption come first, so only the order differs from the source's.
    assert sorted(ref_dest) == sorted(keys)
    for key in keys:
        assert_same_tree({key: ref_root[source_tree][key]}, {key: ref_dest[key]}, ordered=False)
    assert len(read_table(ref_dest["sqlgroup"]["sql"])) == 3  # recreated, not appended to
    assert summary.nodes == count_nodes(ref_dest)  # each was created, finished or (the covered table) re-sent


def test_a_checkpoint_lets_a_rerun_skip_stored_blocks(source, dest):
    """A marked array whose mark says 2 of its 9 blocks are stored gets only the other 7."""
    import dask.array as da

    values = source["arr"].read()
    mark = {"name": INCOMPLETE_SPEC, "version": "units:2"}
    half = dest.write_array(da.zeros((30, 20), chunks=(10, 8)), key="arr", specs=["alpha"])
    half.write_block(values[:10, :8], (0, 0))
    half.write_block(values[:10, 8:16], (0, 1))
    dest.context.session.send("PUT", f"metadata/{half.path}", json={"specs": [{"name": "alpha", "version": None}, mark]})
    summary = copy({"arr": source["arr"]}, dest, on_conflict="skip", progress=False)
    assert summary.nodes == 1 and summary.bytes == values.nbytes - 2 * 10 * 8 * 8
    np.testing.assert_array_equal(dest["arr"].read(), values)
    assert [s.name for s in dest["arr"].specs] == ["alpha"]


def test_checkpoints_are_recorded_and_cleared(source, dest, monkeypatch):
    from tiled_core.copy import _engine as _copy_engine

    monkeypatch.setattr(_copy_engine, "CHECKPOINT_SECONDS", 0.0)
    before = dest.context.session.request_count
    summary = copy({"arr": source["arr"]}, dest, concurrency=1, progress=False)
    requests = dest.context.session.request_count - before
    assert requests > 1 + 9 + 1  # create, 9 blocks, finish ... and checkpoints
    np.testing.assert_array_equal(dest["arr"].read(), source["arr"].read())
    assert [s.name for s in dest["arr"].specs] == ["alpha"] and summary.nodes == 1


def test_interrupted_copy_fails_clearly_and_rerun_completes(killable_server, second_server, ref_dest_root,
                                                             monkeypatch):
    """The source server dies mid-copy: a clear error; after it is back, a rerun completes the copy."""
    from tiled_core.copy import _engine as _copy_engine

    # Fail fast once the server is gone: a server that answered before and now refuses connections
    # is waited for (it may be restarting) until the retry deadline, so the deadline is short here.
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("TILED_RETRY_TIMEOUT", "2")
    monkeypatch.setattr(_copy_engine, "CHECKPOINT_SECONDS", 0.0)  # and resume from checkpoints
    from tiled.client import from_uri as ref_from_uri

    server = running(killable_server)
    # The source: the session's killable server, under a container of this test's own.
    writer = from_uri(server.uri, api_key=server.api_key)
    top = writer.create_container(f"kill-src-{uuid.uuid4().hex[:8]}")
    runs = top.create_container("runs", metadata={"facility": "x"})
    rng = np.random.default_rng(2)
    for i in range(4):
        runs.write_array(rng.random(64), key=f"small{i}", metadata={"i": i})
    import dask.array as da

    runs.write_array(da.from_array(rng.random((64, 512)), chunks=(8, 512)), key="big")  # 8 blocks of 32 KiB
    inner = runs.create_container("inner")
    inner.write_array(da.from_array(rng.random((32, 512)), chunks=(4, 512)), key="big2")
    writer.context.close()

    source = from_uri(server.uri, api_key=server.api_key)[top.path]
    dest = from_uri(second_server.uri, api_key=second_server.api_key).create_container(f"kill-{uuid.uuid4().hex[:8]}")
    killed = threading.Event()

    def kill_midway(progress: CopyProgress) -> None:
        if progress.bytes_done >= 128 * 1024 and not killed.is_set():
            killed.set()
            server.kill()

    with pytest.raises(CopyError, match="Rerun with on_conflict='skip'") as caught:
        # 32 KiB per transfer (the memory budget over 2 slots): "big" moves in 8 requests, not in one region.
        copy(source, dest, concurrency=2, progress=kill_midway, max_memory=64 * 1024)
    assert killed.is_set()
    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.summary.failed >= 1
    ref_dest = ref_dest_root[dest.path]
    marked = [k for k, v in ref_dest["runs"].items() if INCOMPLETE_SPEC in [s.name for s in v.specs]]
    assert INCOMPLETE_SPEC in [s.name for s in ref_dest["runs"].specs] or marked

    server.restart()
    summary = copy(source, dest, on_conflict="skip", progress=False)
    assert summary.failed == 0 and summary.nodes >= 1
    ref_source = ref_from_uri(server.uri, api_key=server.api_key)
    try:
        assert_same_tree(ref_source[top.path], ref_dest)
        assert list(ref_dest["runs"]) == list(ref_source[top.path]["runs"])  # nothing missing, nothing twice
    finally:
        ref_source.context.close()
    source.context.close()


# -- external data ------------------------------------------------------------------------
def test_external_data_is_registered_or_copied(tiled_server, ref_root, source, dest, ref_dest_root):
    path = tiled_server.directory / "data" / f"ext-{uuid.uuid4().hex[:8]}.csv"
    pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}).to_csv(path, index=False)
    ref_parent = ref_root[source.path]
    ref_parent.register(path, key=path.stem)
    one = {path.stem: source[path.stem]}
    copy(one, dest, progress=False)
    (registered,) = dest[path.stem].data_sources()
    (original,) = source[path.stem].data_sources()
    assert registered.management == "external" and registered.mimetype == original.mimetype
    assert [a.data_uri for a in registered.assets] == [a.data_uri for a in original.assets]

    # A container backed by a file (an HDF5 group) is registered whole: the same data source and
    # assets, its children not created one by one.
    h5 = path.with_name(path.stem + "-group.h5")
    with h5py.File(h5, "w") as f:
        f.create_group("g")["x"] = np.arange(3)
    ref_parent.register(h5, key=h5.stem)
    group = {h5.stem: source[h5.stem]}
    with record_history() as history:
        copy(group, dest, progress=False)
    (registered,) = dest.include_data_sources()[h5.stem].data_sources()
    (original,) = source.include_data_sources()[h5.stem].data_sources()
    assert registered.management == "external" and registered.structure_family == "container"
    assert [a.data_uri for a in registered.assets] == [a.data_uri for a in original.assets]
    assert not [r for r in history.requests if r.method == "POST" and f"/{h5.stem}" in r.url.path]

    copied = dest.create_container("as-data")
    copy(one, copied, external="data", progress=False)
    sources = copied[path.stem].data_sources()
    assert sources[0].management == "writable"
    pd.testing.assert_frame_equal(ref_dest_root[copied.path][path.stem].read(), ref_parent[path.stem].read())


# -- memory ---------------------------------------------------------------------------------
def test_peak_memory_of_a_large_copy_stays_bounded(root, second_server):
    """64 MiB in 16 blocks of 4 MiB with 8 MiB in flight: the copy holds a few blocks at a time, never the array."""
    import dask.array as da

    parent = root.create_container(f"mem-{uuid.uuid4().hex[:8]}")
    pattern = da.arange(2048 * 4096, dtype="f8", chunks=256 * 4096).reshape(2048, 4096).rechunk((512, 1024))
    parent.write_array(pattern, key="big")
    dest = from_uri(second_server.uri, api_key=second_server.api_key)
    try:
        target = dest.create_container(f"mem-{uuid.uuid4().hex[:8]}")
        tracemalloc.start()
        try:
            summary = copy(parent, target, progress=False, max_memory=8 * MiB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert summary.bytes == 64 * MiB
        assert peak < 24 * MiB, f"peak {peak / MiB:.0f} MiB"
        block = target["big"].read_block((3, 3))
        np.testing.assert_array_equal(block, np.arange(2048 * 4096, dtype="f8").reshape(2048, 4096)[1536:, 3072:])
    finally:
        dest.context.close()


# -- in-process apps ------------------------------------------------------------------------
def test_copy_between_in_process_apps(tmp_path):
    """Apps over in-memory catalogs (one shared database connection) take the copy's requests
    one at a time: concurrent ones would interleave their transactions and fail."""
    pytest.importorskip("tiled.catalog")
    from tiled.catalog import in_memory
    from tiled.server.app import build_app

    def app(name):
        storage = tmp_path / name
        storage.mkdir()
        return build_app(in_memory(named_memory=f"{name}-{uuid.uuid4().hex[:6]}",
                                   writable_storage=[str(storage), f"duckdb:///{storage}/data.duckdb"]))

    with Context.from_app(app("src")) as sc, Context.from_app(app("dst")) as dc:
        source, dest = from_context(sc), from_context(dc)
        frame = pd.DataFrame({"x": [1, 2, 3], "y": [4.0, 5.0, 6.0]})
        for parent in (source, source.create_container("c")):
            for i in range(2):
                parent.write_array(np.arange(10) * i, key=f"a{i}", metadata={"i": i})
                parent.write_table(frame, key=f"t{i}")
        summary = copy(source, dest, progress=False)
        assert summary.failed == 0
        assert list(dest) == list(source) and list(dest["c"]) == list(source["c"])
        np.testing.assert_array_equal(dest["c"]["a1"].read(), np.arange(10))
        pd.testing.assert_frame_equal(dest["c"]["t1"].read(), frame)
        with pytest.raises(ClientError):
            copy(source, dest, progress=False)
