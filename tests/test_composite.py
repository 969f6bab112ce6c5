"""Composite containers (the "composite" spec) against the real server, beside the reference client."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xarray

from tiled_core.client import from_uri
from tiled_core.client.composite import CompositeClient
from tiled_core.client.container import Container

ARR = np.arange(15, dtype="float64").reshape(3, 5)
VEC = np.array([1.0, 2.0, 3.0])
FRAME = pd.DataFrame({"A": ["one", "two", "three"], "B": [1, 2, 3]})


@pytest.fixture(scope="module", params=["numpy", "dask"])
def composite(request, tiled_server, ref_root):
    """A composite node written by the reference client, seen through tiled_core in each mode."""
    key = f"comp-{uuid.uuid4().hex[:8]}"
    node = ref_root.create_container(key, metadata={"role": "composite"}, specs=["composite"])
    node.write_array(ARR, key="arr", metadata={"md": "arr"})
    node.write_array(VEC, key="vec", dims=["time"])
    node.write_table(FRAME, key="df", metadata={"md": "df"})
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, structure_clients=request.param)
    yield client[key]
    client.context.close()


def _numpy(value):
    return np.asarray(value.compute() if hasattr(value, "compute") else value)


def test_flat_names_over_arrays_and_columns(composite, ref_root):
    assert type(composite) is CompositeClient
    ref = ref_root[composite.path]
    assert list(composite) == list(ref) == ["arr", "vec", "A", "B"]
    assert len(composite) == 4 and "A" in composite and "df" not in composite
    assert composite.keys()[::-1] == ["B", "A", "vec", "arr"] and composite.keys()[-1:-3:-1] == ["B", "A"]
    np.testing.assert_array_equal(_numpy(composite["arr"].read()), ARR)
    np.testing.assert_array_equal(_numpy(composite["B"].read()), FRAME["B"].to_numpy())
    assert [k for k, _ in composite.items()[1:3]] == ["vec", "A"]
    with pytest.raises(KeyError, match="base"):
        composite["df"]  # a table is a part, not a name


def test_parts_through_base(composite):
    base = composite.base
    assert type(base) is Container and composite.parts.path == base.path
    assert list(base) == ["arr", "vec", "df"]
    assert base["df"].metadata["md"] == "df" and composite.metadata["role"] == "composite"
    contents = composite.get_contents()
    assert list(contents) == ["arr", "vec", "df"]
    assert contents["df"]["attributes"]["structure"]["columns"] == ["A", "B"]
    assert len(composite.get_contents(maxlen=1)) == 1


def test_read_into_a_dataset(composite, ref_root):
    ds = composite.read()
    assert isinstance(ds, xarray.Dataset)
    assert set(ds.data_vars) == {"arr", "vec", "A", "B"}
    assert ds["vec"].dims == ("time",)  # declared dims are kept
    assert ds["arr"].dims == ("dim0", "arr_dim1") and ds["A"].dims == ("dim0",)
    np.testing.assert_array_equal(ds["A"].values, FRAME["A"].to_numpy(dtype="U"))
    ref = ref_root[composite.path].read()
    for name in ref.data_vars:
        assert ds[name].dims == ref[name].dims
        np.testing.assert_array_equal(_numpy(ds[name].values), _numpy(ref[name].values))
    picked = composite.read(variables=["arr", "B"], dim0="row")
    assert set(picked.data_vars) == {"arr", "B"} and picked["B"].dims == ("row",)


def test_writes_refuse_names_already_used(tiled_server, root):
    node = root.create_container(f"compw-{uuid.uuid4().hex[:8]}", specs=["composite"])
    assert type(node) is CompositeClient
    node.write_table(FRAME, key="table")
    node.write_array(VEC, key="v")
    session = root.context.session
    for write in (lambda: node.write_array(VEC, key="A"),
                  lambda: node.write_table(pd.DataFrame({"B": [1]}), key="other"),
                  lambda: node.write_table(pd.DataFrame({"v": [1]}), key="other"),
                  lambda: node.create_appendable_table(pa.schema([("A", pa.int64())]), key="app")):
        with pytest.raises(ValueError, match="composite"):
            write()
    with pytest.raises(NotImplementedError):
        node.create_container("inner")
    assert list(node) == ["A", "B", "v"]
    with pytest.raises(KeyError, match="columns"):
        node.delete_contents("A", external_only=False)
    node.delete_contents("table", external_only=False)
    assert list(node) == ["v"] and session.request_count > 0
