"""dagster_tiled against a real Tiled server, with real `dagster.materialize` runs and a real LocalCluster.

Each test stores its assets under its own ``base_path``; the API key reaches
Dagster only as ``EnvVar("TILED_API_KEY")``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import awkward as ak
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import sparse
import xarray as xr
from dagster import (
    AssetIn,
    GraphDefinition,
    DagsterInstance,
    DynamicPartitionsDefinition,
    EnvVar,
    SensorResult,
    StaticPartitionsDefinition,
    UrlMetadataValue,
    asset,
    build_sensor_context,
    materialize,
)
from dagster._serdes import serialize_value

from dagster_tiled import (
    DaskResource,
    TiledIOManager,
    TiledResource,
    node_problems,
    search_paths,
    tiled_asset_check,
    tiled_copy_asset,
    tiled_copy_op,
    tiled_sensor,
)
from tiled_core.queries import Eq

IMAGE = np.arange(48, dtype="float64").reshape(6, 8)
RAGGED = [{"hits": [1.5, 2.5], "id": 1}, {"hits": [], "id": 2}, {"hits": [3.0], "id": None}]
COO = sparse.COO(np.array([[0, 2, 4], [1, 3, 0]]), np.array([1.5, -2.0, 7.0]), shape=(5, 4))
FRAME = pd.DataFrame({"scan": ["s1", "s2", "s3", "s4"], "counts": [10, 20, 30, 40], "temperature": [280.0, None, 300.5, 310.0]})


@pytest.fixture
def tiled(tiled_server, monkeypatch):
    """A TiledResource on the session server, with a fresh base_path; the key only in the environment."""
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    return TiledResource(uri=tiled_server.uri, api_key=EnvVar("TILED_API_KEY"), base_path=f"dagster/{uuid.uuid4().hex[:10]}")


@pytest.fixture
def resources(tiled):
    return {"tiled": tiled, "io_manager": TiledIOManager(tiled=tiled)}


def node_at(root, tiled, *parts):
    return root[tiled.node_path(*parts)]


def failure_text(result) -> str:
    """The failed steps' errors, causes included."""
    return "\n".join(e.event_specific_data.error.to_string() for e in result.get_step_failure_events())


def materialization(result, asset_name):
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset_name]
    assert len(events) == 1
    return events[0].step_materialization_data.materialization.metadata


# -- resources -----------------------------------------------------------------

def test_resource_opens_one_client_per_run_and_closes_it(resources, tiled_server, monkeypatch, tmp_path):
    opened = []

    @asset
    def first(tiled: TiledResource):
        opened.append(tiled.get_client())
        return np.arange(3)

    @asset
    def second(first: np.ndarray, tiled: TiledResource):
        opened.append(tiled.get_client())

    assert materialize([first, second], resources=resources).success
    assert opened[0] is opened[1]  # one client for the whole run
    with pytest.raises(Exception):  # closed by the resource's teardown
        opened[0].context.session.get_document("")

    # A profile instead of a URI; the key still only from the environment.
    (tmp_path / "lab.yml").write_text(f"lab:\n  uri: {tiled_server.uri}\n")
    monkeypatch.setenv("TILED_PROFILES", str(tmp_path))
    with TiledResource(profile="lab").process_config_and_initialize_cm() as by_profile:
        assert by_profile.get_client().context.api_uri == tiled_server.uri + "/"
        assert "tiled_core.client.container" in type(by_profile.get_client()).__module__


def test_resource_never_prompts_and_checks_its_settings(tiled_server, auth_server, monkeypatch):
    from tiled_core.client import from_uri
    from tiled_core.transport import AuthenticationError

    class Prompted(Exception):
        pass

    def no_terminal(*args):
        raise Prompted(args)

    monkeypatch.delenv("TILED_API_KEY", raising=False)
    monkeypatch.setenv("TILED_FORCE_PROMPT", "1")  # as if at a terminal: the plain client would ask here
    monkeypatch.setattr("builtins.input", no_terminal)
    monkeypatch.setattr("getpass.getpass", no_terminal)
    with pytest.raises(Prompted):
        from_uri(auth_server.uri, remember_me=False)
    for uri in (auth_server.uri, tiled_server.uri):  # a login server, an API-key server
        with pytest.raises(AuthenticationError):  # an error at once, never a prompt
            TiledResource(uri=uri).get_client()
    with pytest.raises(ValueError, match="structure_clients"):
        TiledResource(uri=tiled_server.uri, structure_clients="pandas").get_client()
    with pytest.raises(ValueError, match="uri= or profile="):
        TiledResource().get_client()
    assert tiled_server.api_key not in repr(TiledResource(uri=tiled_server.uri, api_key=EnvVar("TILED_API_KEY")))


# -- round trips ------------------------------------------------------------

def assert_same_frame(got, expected):
    # Strings come back as pandas' "string" dtype (as with the reference client): compare their values.
    strings = {name: object for name in expected.columns if expected[name].dtype.kind in "OUT" or
               str(expected[name].dtype) in ("str", "string")}
    pd.testing.assert_frame_equal(got.astype(strings), expected.astype(strings))


ROUND_TRIPS = {
    "awkward": (lambda: ak.Array(RAGGED), ak.Array, lambda got: ak.to_list(got) == RAGGED or pytest.fail(str(got))),
    "sparse": (
        lambda: COO,
        sparse.COO,
        lambda got: (isinstance(got, sparse.COO) or pytest.fail("not COO"),
                     np.testing.assert_array_equal(got.todense(), COO.todense())),
    ),
    "sparse-gcxs": (
        lambda: sparse.GCXS(COO),  # any sparse array is stored as COO
        sparse.SparseArray,
        lambda got: np.testing.assert_array_equal(got.todense(), COO.todense()),
    ),
    "pandas": (lambda: FRAME, pd.DataFrame, lambda got: assert_same_frame(got, FRAME)),
    "dask-dataframe": (
        lambda: dd.from_pandas(FRAME, npartitions=2),
        dd.DataFrame,
        lambda got: (
            isinstance(got, dd.DataFrame) or pytest.fail("not lazy"),
            got.npartitions == 2 or pytest.fail("partitions not kept"),
            assert_same_frame(got.compute(), FRAME),
        ),
    ),
    "numpy": (lambda: IMAGE, np.ndarray, lambda got: np.testing.assert_array_equal(got, IMAGE)),
    "dask-array": (
        lambda: da.from_array(IMAGE, chunks=(3, 4)),
        da.Array,
        lambda got: (isinstance(got, da.Array) or pytest.fail("not lazy"), np.testing.assert_array_equal(got.compute(), IMAGE)),
    ),
    "xarray": (
        lambda: xr.Dataset(
            {"image": (("y", "x"), IMAGE, {"units": "counts"})},
            coords={"x": np.arange(8) * 0.5}, attrs={"sample": "Cu"},
        ),
        xr.Dataset,
        lambda got: xr.testing.assert_identical(
            got, xr.Dataset({"image": (("y", "x"), IMAGE, {"units": "counts"})}, coords={"x": np.arange(8) * 0.5},
                            attrs={"sample": "Cu"})
        ),
    ),
}


@pytest.mark.parametrize("kind", sorted(ROUND_TRIPS))
def test_round_trip_by_annotation(kind, resources, tiled, root):
    make, annotation, verify = ROUND_TRIPS[kind]
    checked = []

    @asset
    def upstream():
        return make()

    def downstream(upstream):
        verify(upstream)  # inside the run: lazy values compute while the run's client is open
        checked.append(type(upstream))

    downstream.__annotations__["upstream"] = annotation
    result = materialize([upstream, asset(downstream)], resources=resources, raise_on_error=False)
    assert result.success, failure_text(result)
    assert len(checked) == 1 and issubclass(checked[0], annotation)
    assert node_at(root, tiled, "upstream").metadata["dagster"]["asset_key"] == "upstream"


def test_unannotated_input_loads_by_family_with_output_metadata(resources):
    seen = {}

    @asset
    def image():
        return IMAGE

    @asset
    def dataset():
        return xr.Dataset({"v": (("t",), np.arange(3.0))})

    @asset
    def table():
        return FRAME

    @asset
    def ragged():
        return ak.Array(RAGGED)

    @asset
    def coo():
        return COO

    @asset
    def both(image, dataset, table, ragged, coo):
        seen.update(image=image, dataset=dataset, table=table, ragged=ragged, coo=coo)

    result = materialize([image, dataset, table, ragged, coo, both], resources=resources)
    assert result.success
    assert isinstance(seen["ragged"], ak.Array) and ak.to_list(seen["ragged"]) == RAGGED
    assert isinstance(seen["coo"], sparse.COO) and seen["coo"].nnz == 3
    ragged_md, coo_md = materialization(result, "ragged"), materialization(result, "coo")
    assert ragged_md["length"].value == 3 and "var * float64" in ragged_md["type"].value
    assert ragged_md["bytes written"].value == ak.Array(RAGGED).nbytes
    assert coo_md["shape"].value == [5, 4] and coo_md["nnz"].value == 3 and coo_md["dtype"].value == "float64"
    assert coo_md["bytes written"].value == COO.coords.nbytes + COO.data.nbytes
    dataset_md = materialization(result, "dataset")
    assert dataset_md["dims"].value == {"t": 3} and dataset_md["data_vars"].value == ["v"]
    assert all("dagster/uri" in md for md in (ragged_md, coo_md, dataset_md))
    assert isinstance(seen["table"], pd.DataFrame) and seen["table"]["counts"].tolist() == [10, 20, 30, 40]
    assert isinstance(seen["image"], np.ndarray) and np.array_equal(seen["image"], IMAGE)
    assert isinstance(seen["dataset"], xr.Dataset) and list(seen["dataset"]["v"].values) == [0.0, 1.0, 2.0]


def test_unannotated_input_loads_lazily_with_dask_clients(tiled_server, monkeypatch):
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    tiled = TiledResource(uri=tiled_server.uri, api_key=EnvVar("TILED_API_KEY"), base_path=f"dagster/{uuid.uuid4().hex[:10]}",
                          structure_clients="dask")
    seen = []

    @asset
    def image():
        return IMAGE

    @asset
    def lazy(image):
        seen.append((type(image), image.compute(scheduler="sync")))

    assert materialize([image, lazy], resources={"io_manager": TiledIOManager(tiled=tiled)}).success
    assert issubclass(seen[0][0], da.Array) and np.array_equal(seen[0][1], IMAGE)


def test_rematerialising_replaces_the_node(resources, tiled, root):
    values = iter([np.zeros((4, 4)), np.arange(10)])

    @asset
    def changing():
        return next(values)

    assert materialize([changing], resources=resources).success
    assert materialize([changing], resources=resources).success
    node = node_at(root, tiled, "changing")
    assert node.shape == (10,)
    np.testing.assert_array_equal(node.read(), np.arange(10))


def test_an_interrupted_write_is_not_loaded(resources, tiled, root, ref_root):
    @asset
    def half_written():
        return IMAGE

    @asset
    def consumer(half_written: np.ndarray):
        return None

    assert materialize([half_written], resources=resources).success
    # What an upload that died halfway leaves behind: a node still marked incomplete.
    root[tiled.node_path()].delete("half_written")
    ref_root[tiled.node_path()].write_array(np.zeros((6, 8)), key="half_written", specs=["tiled_core.incomplete"])
    result = materialize([half_written, consumer], resources=resources, selection=[consumer], raise_on_error=False)
    assert not result.success and "is incomplete (its write was interrupted)" in failure_text(result)
    assert node_problems(node_at(root, tiled, "half_written")) == ["incomplete: its write was interrupted"]
    assert materialize([half_written, consumer], resources=resources).success  # a rerun replaces it


def test_output_metadata(resources, tiled, root):
    @asset(key_prefix=["reduced"])
    def profile():
        return da.from_array(IMAGE, chunks=(3, 8))

    result = materialize([profile], resources=resources)
    metadata = materialization(result, "profile")
    node = node_at(root, tiled, "reduced", "profile")
    assert metadata["dagster/uri"].value == node.uri
    assert isinstance(metadata["tiled_url"], UrlMetadataValue) and metadata["tiled_url"].url == node.uri
    assert node.uri.endswith(f"/metadata/{tiled.node_path('reduced', 'profile')}")
    assert metadata["shape"].value == [6, 8]
    assert metadata["dtype"].value == "float64"
    assert metadata["chunks"].value == [[3, 3], [8]]
    assert metadata["bytes written"].value == IMAGE.nbytes


def test_table_output_metadata(resources, tiled, root):
    @asset
    def summary():
        return FRAME

    @asset
    def lazy_summary():
        return dd.from_pandas(FRAME, npartitions=2)

    result = materialize([summary, lazy_summary], resources=resources)
    metadata = materialization(result, "summary")
    assert metadata["dagster/uri"].value == node_at(root, tiled, "summary").uri
    assert metadata["dagster/row_count"].value == 4
    columns = metadata["dagster/column_schema"].schema.columns
    assert [(c.name, c.type) for c in columns] == [(name, str(dtype)) for name, dtype in FRAME.dtypes.items()]
    assert [c.name for c in columns] == ["scan", "counts", "temperature"]
    assert metadata["bytes written"].value == FRAME.memory_usage(deep=True).sum()
    lazy = materialization(result, "lazy_summary")
    assert lazy["partitions"].value == 2 and "dagster/row_count" not in lazy
    assert [c.name for c in lazy["dagster/column_schema"].schema.columns] == ["scan", "counts", "temperature"]


def test_unsupported_output_type_fails_clearly(resources):
    @asset
    def odd():
        return {"not": "storable"}

    result = materialize([odd], resources=resources, raise_on_error=False)
    assert not result.success
    message = failure_text(result)
    assert "cannot store a builtins.dict" in message and "numpy.ndarray" in message


def test_input_annotated_with_a_mismatching_type_fails_clearly(resources):
    @asset
    def dataset():
        return xr.Dataset({"v": (("t",), np.arange(3.0))})

    @asset
    def wrong(dataset: np.ndarray):
        return None

    result = materialize([dataset, wrong], resources=resources, raise_on_error=False)
    assert not result.success
    message = failure_text(result)
    assert "is a container node; it cannot be loaded as numpy:ndarray" in message


# -- partitions ---------------------------------------------------------------

STATIC = StaticPartitionsDefinition(["a", "b", "c"])


def test_static_partitions_and_multi_partition_loads(resources, tiled, root):
    @asset(partitions_def=STATIC)
    def part(context):
        return np.full(2, ord(context.partition_key), dtype="int64")

    as_dict, as_array, as_lazy = [], [], []

    @asset
    def by_key(part: dict[str, np.ndarray]):
        as_dict.append(part)

    @asset
    def joined(part: np.ndarray):
        as_array.append(part)

    @asset
    def lazy(part: da.Array):
        as_lazy.append((type(part), part.compute(scheduler="sync")))

    for key in ("a", "b", "c"):
        result = materialize([part], resources=resources, partition_key=key)
        assert result.success
        assert materialization(result, "part")["dagster/uri"].value == node_at(root, tiled, "part", key).uri
    assert sorted(node_at(root, tiled, "part")) == ["a", "b", "c"]
    assert materialize([part, by_key, joined, lazy], resources=resources, selection=[by_key, joined, lazy]).success
    assert list(as_dict[0]) == ["a", "b", "c"]
    np.testing.assert_array_equal(as_dict[0]["b"], [98, 98])
    np.testing.assert_array_equal(as_array[0], [97, 97, 98, 98, 99, 99])
    assert issubclass(as_lazy[0][0], da.Array)
    np.testing.assert_array_equal(as_lazy[0][1], [97, 97, 98, 98, 99, 99])


def test_table_partitions_concatenate_when_annotated(resources):
    @asset(partitions_def=STATIC)
    def rows(context):
        return FRAME.assign(part=context.partition_key).iloc[:2]

    got = []

    @asset
    def all_rows(rows: pd.DataFrame):
        got.append(rows)

    for key in ("a", "b", "c"):
        assert materialize([rows], resources=resources, partition_key=key).success
    assert materialize([rows, all_rows], resources=resources, selection=[all_rows]).success
    assert got[0]["part"].tolist() == ["a", "a", "b", "b", "c", "c"]
    assert got[0]["counts"].tolist() == [10, 20] * 3


def test_every_handler_concatenates_partitions_in_order():
    from dagster_tiled.handlers import (AwkwardHandler, DaskArrayHandler, DaskDataFrameHandler, NumpyHandler,
                                        PandasHandler, SparseHandler, XarrayHandler)

    keys = ["p1", "p2"]
    assert NumpyHandler().concat([np.arange(2), np.arange(2, 4)], keys).tolist() == [0, 1, 2, 3]
    assert DaskArrayHandler().concat([da.arange(2), da.arange(2, 4)], keys).compute().tolist() == [0, 1, 2, 3]
    assert PandasHandler().concat([FRAME.iloc[:2], FRAME.iloc[2:]], keys)["counts"].tolist() == [10, 20, 30, 40]
    halves = [dd.from_pandas(FRAME.iloc[:2], npartitions=1), dd.from_pandas(FRAME.iloc[2:], npartitions=1)]
    assert DaskDataFrameHandler().concat(halves, keys).compute()["counts"].tolist() == [10, 20, 30, 40]
    assert ak.to_list(AwkwardHandler().concat([ak.Array(RAGGED[:1]), ak.Array(RAGGED[1:])], keys)) == RAGGED
    assert SparseHandler().concat([COO, COO], keys).shape == (10, 4)
    stacked = XarrayHandler().concat([xr.Dataset({"v": ("t", [1.0])}), xr.Dataset({"v": ("t", [2.0])})], keys)
    assert stacked["v"].dims == ("partition", "t") and list(stacked["partition"].values) == keys


def test_handler_table_dispatch():
    from dagster_tiled.handlers import DEFAULT_HANDLERS, HandlerTable, NumpyHandler

    table = HandlerTable(DEFAULT_HANDLERS)

    class Frame(pd.DataFrame):  # a subclass is served by its base's handler
        pass

    assert type(table.for_value(Frame(FRAME))).__name__ == "PandasHandler"
    assert type(table.for_value(IMAGE.view(type("Image", (np.ndarray,), {})))).__name__ == "NumpyHandler"
    assert table.for_annotation(list) is None
    with pytest.raises(TypeError, match="lose its mask"):
        table.for_value(np.ma.masked_array([1, 2], mask=[0, 1]))
    with pytest.raises(ValueError, match="handled twice"):
        HandlerTable([*DEFAULT_HANDLERS, NumpyHandler()])


def test_missing_partition_fails_unless_allowed(resources):
    @asset(partitions_def=STATIC)
    def sparse_part(context):
        return np.arange(3)

    @asset
    def strict(sparse_part: dict):
        return None

    got = []

    @asset(ins={"sparse_part": AssetIn(metadata={"allow_missing_partitions": True})})
    def lenient(sparse_part: dict):
        got.append(sorted(sparse_part))

    assert materialize([sparse_part], resources=resources, partition_key="b").success
    result = materialize([sparse_part, strict], resources=resources, selection=[strict], raise_on_error=False)
    assert not result.success
    assert "has it been materialised" in failure_text(result)
    assert materialize([sparse_part, lenient], resources=resources, selection=[lenient]).success
    assert got == [["b"]]


def test_dynamic_partitions(resources, tiled, root):
    scans = DynamicPartitionsDefinition(name="scans")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scans", ["scan-1", "scan-2"])

    @asset(partitions_def=scans)
    def frames(context):
        return xr.Dataset({"frame": (("x",), np.arange(4.0) * int(context.partition_key[-1]))})

    @asset(partitions_def=scans)
    def frame_sum(frames: xr.Dataset):
        return np.array([float(frames["frame"].sum())])

    collected = []

    @asset
    def everything(frame_sum):
        collected.append(frame_sum)

    for key in ("scan-1", "scan-2"):
        assert materialize([frames, frame_sum], resources=resources, instance=instance, partition_key=key).success
    assert sorted(node_at(root, tiled, "frame_sum")) == ["scan-1", "scan-2"]
    assert materialize([frames, frame_sum, everything], resources=resources, instance=instance,
                       selection=[everything]).success
    assert {k: v.tolist() for k, v in collected[0].items()} == {"scan-1": [6.0], "scan-2": [12.0]}


# -- dask ----------------------------------------------------------------------

def test_lazy_input_computes_on_a_two_process_local_cluster(resources):
    dask_resource = DaskResource(n_workers=2, threads_per_worker=1, processes=True)
    big = np.arange(64 * 40, dtype="float64").reshape(64, 40)
    report = {}

    @asset
    def raw():
        return da.from_array(big, chunks=(16, 40))  # four blocks

    @asset
    def total(raw: da.Array, dask: DaskResource) -> None:
        client = dask.get_client()
        assert len(client.scheduler_info()["workers"]) == 2
        report["sum"] = client.compute(raw.sum()).result()
        # The blocks were read on the worker processes, each through its own session
        # reopened from the key's source (the environment), not shipped in the graph.
        report["sessions"] = client.run(_reopened_sessions)

    assert materialize([raw, total], resources={**resources, "dask": dask_resource}).success
    assert report["sum"] == big.sum()
    assert len(report["sessions"]) == 2 and sum(report["sessions"].values()) >= 1


def test_dask_resource_connects_to_a_scheduler_address(resources):
    from distributed import LocalCluster

    seen = {}

    @asset
    def small():
        return da.from_array(np.arange(12.0), chunks=4)

    @asset
    def doubled(small: da.Array, dask: DaskResource) -> None:
        seen["address"] = dask.get_client().scheduler.address
        seen["total"] = dask.get_client().compute((small * 2).sum()).result()

    with LocalCluster(n_workers=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask_resource = DaskResource(scheduler_address=cluster.scheduler_address)
        assert materialize([small, doubled], resources={**resources, "dask": dask_resource}).success
        assert seen == {"address": cluster.scheduler_address, "total": 132.0}
        assert cluster.status.name == "running"  # a cluster the run did not start is left running


def _reopened_sessions() -> int:
    from tiled_core.distributed import _handles

    return len(_handles._REOPENED)


# -- sensor ----------------------------------------------------------------------

def evaluate(sensor_def, tiled, cursor):
    """One sensor evaluation, as the daemon runs it (resources set up and torn down)."""
    with build_sensor_context(resources={"tiled": tiled}, cursor=cursor) as context:
        return sensor_def(context)


def _requests(result):
    assert isinstance(result, SensorResult)
    return [r.run_key for r in (result.run_requests or [])], result.cursor


def test_sensor_emits_exactly_the_new_entries_across_evaluations(tiled, root):
    watched = f"incoming-{uuid.uuid4().hex[:8]}"
    container = root.create_container(watched)
    for key in ("s3", "s1", "s2"):  # keys not in alphabetical order: insertion order is what counts
        container.create_container(key, metadata={"kind": "scan"})
    scans = DynamicPartitionsDefinition(name="incoming")
    sensor_def = tiled_sensor(watched, name="new_scans", partitions_def=scans, target="*", max_runs_per_tick=10)

    first = evaluate(sensor_def, tiled, None)
    keys, cursor = _requests(first)
    assert keys == [f"{watched}/s3", f"{watched}/s1", f"{watched}/s2"]
    assert [r.partition_key for r in first.run_requests] == ["s3", "s1", "s2"]
    assert list(first.dynamic_partitions_requests[0].partition_keys) == ["s3", "s1", "s2"]

    container.create_container("s0")
    container.create_container("s9")
    second = evaluate(sensor_def, tiled, cursor)
    keys, cursor = _requests(second)
    assert keys == [f"{watched}/s0", f"{watched}/s9"]

    third = evaluate(sensor_def, tiled, cursor)
    assert _requests(third)[0] == [] and third.skip_reason is not None
    assert len(cursor) < 200  # compact, whatever the container's size

    not_yet = evaluate(tiled_sensor(f"{watched}-later", name="later", target="*"), tiled, None)
    assert "no container" in not_yet.skip_reason.skip_message and not not_yet.run_requests


def test_sensor_cursor_survives_deletions_and_paces_itself(tiled, root):
    watched = f"incoming-{uuid.uuid4().hex[:8]}"
    container = root.create_container(watched)
    for i in range(5):
        container.create_container(f"e{i}")
    sensor_def = tiled_sensor(watched, name="paced", target="*", max_runs_per_tick=2)
    seen, cursor = [], None
    for _ in range(3):
        keys, cursor = _requests(evaluate(sensor_def, tiled, cursor))
        seen += keys
    assert seen == [f"{watched}/e{i}" for i in range(5)]
    # Delete entries before and at our place, then add new ones: only the new ones come.
    for key in ("e0", "e3", "e4"):
        container.delete(key)
    container.create_container("late1")
    container.create_container("late2")
    keys, cursor = _requests(evaluate(sensor_def, tiled, cursor))
    assert keys == [f"{watched}/late1", f"{watched}/late2"]


def test_sensor_with_query_and_metadata_order(tiled, root):
    watched = f"incoming-{uuid.uuid4().hex[:8]}"
    container = root.create_container(watched)
    for key, number, sample in [("x", 3, "Cu"), ("y", 1, "Cu"), ("z", 2, "Ni"), ("w", 2, "Cu")]:
        container.create_container(key, metadata={"scan_id": number, "sample": sample})
    sensor_def = tiled_sensor(watched, name="copper", target="*", query=Eq("sample", "Cu"), order_by="scan_id")
    keys, cursor = _requests(evaluate(sensor_def, tiled, None))
    assert keys == [f"{watched}/y", f"{watched}/w", f"{watched}/x"]  # by scan_id, Ni filtered out
    container.create_container("v", metadata={"scan_id": 3, "sample": "Cu"})  # ties with the last one seen
    container.create_container("u", metadata={"scan_id": 4, "sample": "Ni"})
    keys, cursor = _requests(evaluate(sensor_def, tiled, cursor))
    assert keys == [f"{watched}/v"]
    with pytest.raises(ValueError, match="reset the cursor"):
        evaluate(tiled_sensor(watched, name="other", target="*"), tiled, cursor)


# -- checks and search ---------------------------------------------------------

def test_asset_check_factory_passes_and_fails(resources, tiled):
    @asset(metadata={"owner": "lab"})
    def checked():
        return IMAGE

    good = tiled_asset_check(checked, name="good", family="array", shape=(None, 8), dtype="float64",
                             metadata_keys=["dagster.run_id"])
    bad_shape = tiled_asset_check(checked, name="bad_shape", shape=(6, 9), dtype="int32",
                                  metadata_keys=["calibration"])
    result = materialize([checked, good, bad_shape], resources=resources)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["good"].passed
    assert not evaluations["bad_shape"].passed
    problems = evaluations["bad_shape"].metadata["problems"].value
    assert "shape is (6, 8), expected (6, 9)" in problems
    assert "dtype is float64, expected int32" in problems
    assert "metadata key 'calibration' missing" in problems


def test_asset_check_fails_for_a_missing_node(resources):
    @asset
    def never_written():
        return None  # nothing stored

    check = tiled_asset_check(never_written, name="exists")
    result = materialize([never_written, check], resources=resources)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and "no Tiled node" in evaluation.description


def test_node_problems_for_columns_and_family(root, tiled):
    node = root.create_container(f"plain-{uuid.uuid4().hex[:8]}", metadata={"a": {"b": 1}})
    assert node_problems(node, family="container", metadata_keys=["a.b"]) == []
    problems = node_problems(node, family="array", columns=["t"], metadata_keys=["a.c"])
    assert problems[0] == "structure family is container, expected array"
    assert "columns ['t'] missing" in problems[1] and "'a.c' missing" in problems[2]


def test_search_paths(tiled, root):
    parent = root.create_container(f"search-{uuid.uuid4().hex[:8]}")
    for key, sample in [("one", "Cu"), ("two", "Ni"), ("three", "Cu")]:
        parent.create_container(key, metadata={"sample": sample})
    with tiled.process_config_and_initialize_cm() as live:
        assert search_paths(live, parent.path, [Eq("sample", "Cu")]) == [f"{parent.path}/one", f"{parent.path}/three"]
    assert search_paths(root, parent.path, sort=[("sample", -1)], limit=1) == [f"{parent.path}/two"]


# -- copy ------------------------------------------------------------------------

def test_copy_asset_between_two_servers_is_resumable(tiled, root, second_server, monkeypatch):
    source_key = f"copy-src-{uuid.uuid4().hex[:8]}"
    source = root.create_container(source_key, metadata={"beamline": "x1"})
    source.write_array(IMAGE, key="image", metadata={"units": "counts"})
    source.write_dataframe(FRAME, key="table")
    source.create_container("nested").write_array(np.arange(5), key="ramp")
    monkeypatch.setenv("SECOND_TILED_KEY", second_server.api_key)
    copies = {"tiled_source": tiled, "tiled_dest": TiledResource(uri=second_server.uri, api_key=EnvVar("SECOND_TILED_KEY"))}
    mirror = tiled_copy_asset("mirror", source_key, f"mirrors/{source_key}")

    first = materialize([mirror], resources=copies)
    metadata = materialization(first, "mirror")
    assert metadata["nodes"].value == 4 and metadata["failed"].value == 0
    assert metadata["bytes"].value >= IMAGE.nbytes
    from tiled_core.client import from_uri

    dest_root = from_uri(second_server.uri, api_key=second_server.api_key)
    try:
        copied = dest_root[f"mirrors/{source_key}"]
        np.testing.assert_array_equal(copied["image"].read(), IMAGE)
        assert copied["image"].metadata["units"] == "counts"
        assert copied["table"].read()["counts"].tolist() == FRAME["counts"].tolist()
        np.testing.assert_array_equal(copied["nested/ramp"].read(), np.arange(5))
        assert metadata["dagster/uri"].value == copied.uri
    finally:
        dest_root.context.close()

    again = materialization(materialize([mirror], resources=copies), "mirror")  # a rerun copies nothing twice
    assert again["nodes"].value == 0 and again["skipped"].value >= 3

    strict = tiled_copy_asset("strict_mirror", source_key, f"mirrors/{source_key}", on_conflict="error")
    result = materialize([strict], resources=copies, raise_on_error=False)
    assert not result.success and "failed at" in failure_text(result)
    with pytest.raises(ValueError, match="on_conflict"):
        tiled_copy_asset("bad", source_key, on_conflict="replace")

    job = GraphDefinition(name="copy_job", node_defs=[tiled_copy_op("copy_op", f"{source_key}/nested", "op-copy")])
    ran = job.to_job(resource_defs=copies).execute_in_process()
    assert ran.output_for_node("copy_op") == {**ran.output_for_node("copy_op"), "nodes": 1, "failed": 0}


# -- secrets -------------------------------------------------------------------

def test_api_key_never_in_run_logs_or_metadata(resources, tiled_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    instance = DagsterInstance.ephemeral()
    wrong_key = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv("WRONG_TILED_KEY", wrong_key)
    rejected = TiledResource(uri=tiled_server.uri, api_key=EnvVar("WRONG_TILED_KEY"))

    @asset
    def stored():
        return IMAGE

    @asset
    def broken(stored: np.ndarray):
        raise RuntimeError("failing on purpose, after loading")

    ok = materialize([stored], resources=resources, instance=instance)
    failed = materialize([stored, broken], resources=resources, instance=instance, selection=[broken],
                         raise_on_error=False)
    denied = materialize([stored], resources={"io_manager": TiledIOManager(tiled=rejected)}, instance=instance,
                         raise_on_error=False)
    assert ok.success and not failed.success and not denied.success
    texts = [caplog.text, failure_text(failed), failure_text(denied)]
    for result in (ok, failed, denied):
        texts.append(serialize_value(instance.get_run_by_id(result.run_id)))
        texts += [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    joined = "\n".join(texts)
    assert tiled_server.api_key not in joined and wrong_key not in joined
    # The logs searched do hold the runs' events, errors and materialization metadata.
    assert "failing on purpose" in joined and "dagster/uri" in joined
    assert "AuthenticationError" in joined  # the rejected key's failure was logged, without the key


# -- the example ------------------------------------------------------------------

def test_example_scans_pipeline_materializes(tiled_server):
    from example_flows import dagster_scans

    lines: list[str] = []
    summary = dagster_scans.run(tiled_server.uri, tiled_server.api_key, n_scans=3, say=lines.append)
    assert summary["scans"] == 3 and sorted(summary["peaks"]) == ["scan000", "scan001", "scan002"]
    assert any("sensor: 3 new scans" in line for line in lines)
    assert not any(tiled_server.api_key in line for line in lines)


def _dagster_env(tmp_path, **extra) -> dict:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": os.pathsep.join([str(root), str(root / "integrations"), os.environ.get("PYTHONPATH", "")])}
    env.pop("TILED_URI", None)
    env.pop("TILED_API_KEY", None)
    env.update(extra)
    return env


def test_example_definitions_without_tiled_uri_say_what_to_set(tmp_path):
    """Loading as ``dagster dev`` does, without TILED_URI: one line that says what to set, no traceback.

    (That they load with it set is what tests/test_dagster_ui.py's ``dagster dev`` shows.)
    """
    root = Path(__file__).resolve().parents[1]
    validate = [sys.executable, "-m", "dagster", "definitions", "validate", "-f", "example_flows/dagster_scans.py"]
    result = subprocess.run(validate, cwd=root, env=_dagster_env(tmp_path), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "set TILED_URI" in result.stderr.strip().splitlines()[-1]


def test_example_partitions_added_and_materialized_from_a_shell(tiled_server, tmp_path, monkeypatch, capsys):
    """The shell route of the example's docstring: simulate, add-partitions, `dagster asset materialize`."""
    from example_flows import dagster_scans

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("TILED_URI", tiled_server.uri)
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert dagster_scans.main(["simulate", "--scans", "2"]) == 0
    assert dagster_scans.main(["add-partitions"]) == 2  # no DAGSTER_HOME: says so
    assert "set DAGSTER_HOME" in capsys.readouterr().err
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert dagster_scans.main(["add-partitions"]) == 0
    out = capsys.readouterr().out
    assert "scan000" in out and "dagster asset materialize" in out
    env = _dagster_env(tmp_path, TILED_URI=tiled_server.uri, TILED_API_KEY=tiled_server.api_key)
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "example_flows.dagster_scans",
         "--select", "raw_scan,reduced_scan", "--partition", "scan001"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert tiled_server.api_key not in result.stdout + result.stderr
    from tiled_core.client import from_uri

    root_client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        node = root_client[f"{dagster_scans.BASE_PATH}/reduced_scan/scan001"]
        assert node.read().shape == (dagster_scans.IMAGE_SHAPE[1],)
        assert node.metadata["dagster"]["partition"] == "scan001"
    finally:
        root_client.context.close()
