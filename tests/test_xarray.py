"""xarray datasets against the real server, and the dispatch of families and specs to clients.

Datasets are written by the reference client (``tiled.client.xarray.write_xarray_dataset``)
and read with tiled_core in memory and lazily, and the other way round.
"""

from __future__ import annotations

import io
import uuid

import dask.array as da
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xarray as xr

from tiled_core.client import from_uri
from tiled_core.client.array import ArrayClient
from tiled_core.client.base import BaseClient
from tiled_core.client.xarray import DaskDatasetClient, DatasetClient, write_xarray_dataset
from tiled_core.transport import Conflict

RNG = np.random.default_rng(7)


def _dataset() -> xr.Dataset:
    time = pd.date_range("2024-01-01", periods=6, freq="h")
    return xr.Dataset(
        data_vars={
            "temperature": (("time", "x"), RNG.random((6, 4)), {"units": "K", "valid": [0, 400]}),
            "flag": (("time",), np.array([True, False, True, True, False, True])),
            "counts": (("x",), np.arange(4, dtype="int32"), {"detector": "d1"}),
            "label": (("x",), np.array(["a", "bb", "ccc", ""])),
            "image": (("time", "y", "x"), da.from_array(RNG.random((6, 5, 4)), chunks=(2, 5, 4))),
        },
        coords={
            "time": ("time", time),
            "x": ("x", [10.0, 20.0, 30.0, 40.0], {"long_name": "position"}),
            "y": ("y", np.arange(5)),
            "height": (("x", "y"), RNG.random((4, 5))),
        },
        attrs={"title": "scan 17", "operator": "é", "n": 3, "nested": {"a": 1}},
    )


DATASET = _dataset()


@pytest.fixture(scope="module")
def stored(ref_root):
    from tiled.client.xarray import write_xarray_dataset as ref_write

    node = ref_root.create_container(f"xarray-{uuid.uuid4().hex[:8]}")
    ref_write(node, DATASET, key="ds")
    return node.item["id"]


@pytest.fixture(scope="module")
def clients(tiled_server, stored):
    numpy = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    lazy = from_uri(tiled_server.uri, api_key=tiled_server.api_key, structure_clients="dask")
    yield numpy[stored], lazy[stored]
    numpy.context.close()
    lazy.context.close()


def _identical(result: xr.Dataset, expected: xr.Dataset) -> None:
    xr.testing.assert_identical(result, expected.compute())
    assert list(result.data_vars) == list(expected.data_vars)
    for name, variable in expected.variables.items():
        assert result[name].dtype == variable.dtype, name


def test_in_memory_read(clients):
    node = clients[0]["ds"]
    assert isinstance(node, DatasetClient)
    result = node.read()
    _identical(result, DATASET)
    assert all(isinstance(v.data, np.ndarray) for v in result.variables.values())


def test_dask_read(clients):
    node = clients[1]["ds"]
    assert type(node) is DaskDatasetClient
    result = node.read()
    assert isinstance(result["image"].data, da.Array)
    assert isinstance(result["temperature"].data, da.Array)
    _identical(result.compute(), DATASET)


@pytest.mark.parametrize("mode", [0, 1])
def test_selected_variables(clients, mode):
    result = clients[mode]["ds"].read(variables=["temperature", "x", "time"])
    assert set(result.data_vars) == {"temperature"}
    assert set(result.coords) == {"x", "time"}
    xr.testing.assert_identical(result.compute(), DATASET[["temperature"]])  # keeps coords time and x


def test_bad_variables(clients):
    node = clients[0]["ds"]
    with pytest.raises(KeyError, match="nope"):
        node.read(variables=["temperature", "nope"])
    with pytest.raises(TypeError):
        node.read(variables="temperature")


def test_dataset_is_still_a_container(clients):
    node = clients[0]["ds"]
    assert set(node) == set(DATASET.variables)
    variable = node["temperature"]
    assert isinstance(variable, ArrayClient)
    assert variable.dims == ("time", "x")
    assert variable.metadata["attrs"]["units"] == "K"
    np.testing.assert_array_equal(variable.read(), DATASET["temperature"].values)
    assert repr(node).startswith("<DatasetClient ")


def test_export(clients, tmp_path):
    node = clients[0]["ds"]
    offered = node.formats
    assert "application/vnd.apache.arrow.file" in offered
    buffer = io.BytesIO()
    node.export(buffer, format="arrow")
    table = pa.ipc.open_file(pa.py_buffer(buffer.getvalue())).read_all().to_pandas()
    expected = DATASET.drop_vars(["label"]).to_dataframe()
    np.testing.assert_allclose(table["temperature"].to_numpy(), expected["temperature"].to_numpy())
    with pytest.raises(ValueError, match="cannot be exported"):
        node.export(tmp_path / "ds.png")


def test_written_by_tiled_core_read_by_reference(scratch, ref_scratch):
    written = write_xarray_dataset(scratch, DATASET, key="mine")
    assert isinstance(written, DatasetClient)
    xr.testing.assert_identical(ref_scratch["mine"].read(), DATASET.compute())
    assert not any(s.name == "tiled_core.incomplete" for v in written.values() for s in v.specs)


def test_write_xarray_rerun(scratch, ref_scratch):
    written = write_xarray_dataset(scratch, DATASET, key="d")
    with pytest.raises(Conflict):
        write_xarray_dataset(scratch, DATASET, key="d")
    written.delete("flag")  # as if the first run had died before writing it
    write_xarray_dataset(scratch, DATASET, key="d", on_conflict="skip")
    xr.testing.assert_identical(ref_scratch["d"].read(), DATASET.compute())
    smaller = DATASET[["counts"]]
    write_xarray_dataset(scratch, smaller, key="d", on_conflict="replace")
    xr.testing.assert_identical(ref_scratch["d"].read(), smaller.compute())
    scratch.create_container("plain")
    with pytest.raises(Conflict, match="not an xarray dataset"):
        write_xarray_dataset(scratch, smaller, key="plain", on_conflict="skip")
    with pytest.raises(TypeError):
        write_xarray_dataset(scratch, DATASET["counts"], key="da")


def test_child_without_a_role_is_a_clear_error(scratch, ref_scratch):
    from tiled.structures.core import Spec

    dataset = ref_scratch.create_container("odd", specs=[Spec("xarray_dataset")], metadata={"attrs": {}})
    dataset.write_array(np.arange(3), key="v", dims=["i"], metadata={"attrs": {}})
    with pytest.raises(ValueError, match="xarray_data_var"):
        scratch["odd"].read()


# -- dispatch --------------------------------------------------------------------
def test_unknown_family_falls_back_to_base_client(tiled_server, scratch, ref_scratch):
    import ragged

    from tiled_core.client._dispatch import DEFAULT_STRUCTURE_CLIENT_DISPATCH

    ref_scratch.write_ragged(ragged.array([[1, 2], [3]]), key="rag", metadata={"kind": "ragged"})
    # A dispatch table without the ragged family, as a custom one may be.
    table = {k: v for k, v in DEFAULT_STRUCTURE_CLIENT_DISPATCH["numpy"].items() if k != "ragged"}
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, structure_clients=table)
    node = client[scratch.path]["rag"]
    client.context.close()
    assert type(node) is BaseClient
    assert node.structure_family == "ragged"
    assert node.metadata["kind"] == "ragged"
    assert node.item["id"] == "rag"
    with pytest.raises(NotImplementedError, match="'ragged' node.*no client"):
        node.read()


def test_custom_dispatch_without_a_family_falls_back(tiled_server, stored):
    from tiled_core.client.container import Container

    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key,
                      structure_clients={"container": Container, "array": ArrayClient})
    try:
        node = client[stored]["ds"]  # no "xarray_dataset" entry: a plain container
        assert type(node) is Container
        assert {s.name for s in node.specs} == {"xarray_dataset"}
    finally:
        client.context.close()


WIDE = xr.Dataset(
    {f"channel_{i:03}": ("t", i * np.ones(5)) for i in range(12)},
    coords={"t": np.arange(5), "label": ("t", np.array(["a", "bb", "c", "d", "e"]))},
)


@pytest.fixture(scope="module")
def wide(root_module, tiled_server):
    node = root_module.create_container(f"wide-{uuid.uuid4().hex[:8]}")
    write_xarray_dataset(node, WIDE, key="ds")
    return node.item["id"]


@pytest.fixture(scope="module")
def root_module(tiled_server):
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    yield client
    client.context.close()


@pytest.mark.parametrize("limit", [80_000, 10])
def test_wide_dataset_is_one_table_read(root_module, wide, limit, monkeypatch):
    """The 1-D variables of one dimension arrive in one table request (a POST past the URL limit)."""
    from tiled_core.client import record_history

    node = root_module[wide]["ds"]
    monkeypatch.setattr(BaseClient, "URL_CHARACTER_LIMIT", limit)
    with record_history() as history:
        result = node.read()
    xr.testing.assert_identical(result, WIDE)
    data = [r for r in history.requests if "/container/full/" in str(r.url)]
    assert len(data) == 1  # 12 channels and both coordinates, on dimension t
    assert data[0].method == ("POST" if limit == 10 else "GET")
    assert len(history.requests) <= 2  # plus at most one listing of the variables
    with record_history() as history:
        lazy = from_uri(root_module.uri, api_key=root_module.context.api_key, structure_clients="dask")[wide]["ds"]
        result = lazy.read()
        assert isinstance(result["channel_003"].data, da.Array)
        xr.testing.assert_identical(result.compute(), WIDE)
    assert sum("/container/full/" in str(r.url) for r in history.requests) == 1
    with record_history() as history:
        xr.testing.assert_identical(node.read(optimize_wide_table=False), WIDE)
    assert sum("/array/full/" in str(r.url) for r in history.requests) == 14
