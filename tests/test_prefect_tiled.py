"""prefect_tiled against a real Tiled server, under Prefect's test harness (one temporary Prefect server)."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import numpy as np
import pytest

from prefect_tiled import TiledCredentials

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harness(prefect_harness):
    """The session's temporary Prefect server (conftest); the module's cached clients closed after it."""
    yield
    TiledCredentials.close_clients()


@pytest.fixture(scope="module")
def creds(tiled_server):
    return TiledCredentials(uri=tiled_server.uri, api_key=tiled_server.api_key)


@pytest.fixture
def box(root):
    """A fresh container path for one test."""
    key = f"pf-{uuid.uuid4().hex[:10]}"
    root.create_container(key)
    return key


def _database_bytes() -> bytes:
    """Everything the harness's Prefect server has stored (SQLite file and its WAL)."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    url = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url)
    path = url.split(":///", 1)[1]
    return b"".join(Path(p).read_bytes() for p in sorted(glob.glob(path + "*")))


def _drain_logs() -> None:
    from prefect.logging.handlers import APILogWorker

    APILogWorker.instance().drain()


def _flow_run(state):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def _api_filter(route: str, body: dict | None = None) -> list[dict]:
    """Every row a Prefect ``/<route>/filter`` endpoint returns, page by page (plain JSON).

    Through the REST route: this Prefect's client sends null for the filters and offsets it is
    not given, which its server rejects.
    """
    from prefect.client.orchestration import get_client

    rows: list[dict] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.request("POST", f"/{route}/filter", json={**(body or {}), "limit": 200, "offset": len(rows)}).json()
            rows += page
            if len(page) < 200:
                return rows


def _artifacts_of(flow_run_id) -> list[str]:
    """The markdown of every artifact of a flow run and its task runs."""
    found = _api_filter("artifacts", {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}})
    return [a["data"] for a in found if a["type"] == "markdown"]


# ------------------------------------------------------------------ the block


def test_block_hides_the_key(creds, tiled_server):
    key = tiled_server.api_key
    for text in (repr(creds), str(creds), creds.model_dump_json(), str(creds.model_dump())):
        assert key not in text
    assert creds.api_key.get_secret_value() == key
    assert creds.target == tiled_server.uri


def test_block_rejects_bad_settings():
    with pytest.raises(ValueError, match="exactly one"):
        TiledCredentials()
    with pytest.raises(ValueError, match="exactly one"):
        TiledCredentials(uri="http://127.0.0.1:1", profile="p")
    with pytest.raises(ValueError, match="api_key="):
        TiledCredentials(uri="http://127.0.0.1:1/api/v1?api_key=secret")
    with pytest.raises(ValueError):
        TiledCredentials(uri="http://127.0.0.1:1", timeout=0)


def test_get_client_is_shared_per_setting(creds, tiled_server):
    root = creds.get_client()
    assert root.structure_family == "container"
    assert creds.get_client() is root
    again = TiledCredentials(uri=tiled_server.uri, api_key=tiled_server.api_key)
    assert again.get_client() is root
    lazy = TiledCredentials(uri=tiled_server.uri, api_key=tiled_server.api_key, structure_clients="dask")
    assert lazy.get_client() is not root


def test_wrong_key_is_a_clear_error_without_the_key(tiled_server):
    from tiled_core.transport import AuthenticationError

    wrong = "not-the-key-" + uuid.uuid4().hex
    with pytest.raises(AuthenticationError) as info:
        TiledCredentials(uri=tiled_server.uri, api_key=wrong).get_client()
    assert wrong not in str(info.value)


def test_block_from_a_profile(tmp_path, monkeypatch, tiled_server, root, box):
    import yaml

    root[box].write_array(np.arange(3), key="x")
    site, user = tmp_path / "site", tmp_path / "user"
    site.mkdir()
    user.mkdir()
    (user / "facility.yml").write_text(yaml.safe_dump({"facility": {"uri": tiled_server.uri}}))
    monkeypatch.setenv("TILED_SITE_PROFILES", str(site))
    monkeypatch.setenv("TILED_PROFILES", str(user))
    creds = TiledCredentials(profile="facility", api_key=tiled_server.api_key)
    assert creds.target == "profile:facility"
    np.testing.assert_array_equal(creds.node(f"{box}/x").read(), np.arange(3))


def test_entry_point_and_cli_registration(harness):
    from prefect.blocks.core import Block
    from prefect.testing.cli import invoke_and_assert

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["prefect.collections"] == {"prefect_tiled": "prefect_tiled"}
    invoke_and_assert(["block", "register", "-m", "prefect_tiled"], expected_output_contains="Successfully registered 1 block")
    assert Block.get_block_class_from_key("tiled-credentials") is TiledCredentials


def test_block_register_from_a_shell(harness):
    """`prefect block register -m prefect_tiled`, as the README shows it, against the harness's real API."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "integrations"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_tiled"],
                          capture_output=True, text=True, env=env, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Successfully registered 1 block" in done.stdout

    async def registered():
        async with get_client() as client:
            block_type = await client.read_block_type_by_slug("tiled-credentials")
            schemas = [s for s in await client.read_block_schemas() if s.block_type_id == block_type.id]
            return block_type, schemas

    block_type, schemas = asyncio.run(registered())
    assert "tiled" in block_type.name.lower()
    assert any("api_key" in schema.fields.get("properties", {}) for schema in schemas)
    assert "prefect block register -m prefect_tiled" in (ROOT / "README.md").read_text()


def test_every_task_is_importable_from_tasks_and_listed_in_its_docstring():
    from prefect import Task

    import prefect_tiled.copy
    import prefect_tiled.tasks as tasks

    assert tasks.copy_nodes is prefect_tiled.copy.copy_nodes
    names = [name for name in tasks.__all__ if isinstance(getattr(tasks, name), Task)]
    assert {"read_node", "aread_node", "write_node", "awrite_node", "search_nodes", "asearch_nodes",
            "copy_nodes"} <= set(names)
    missing = [name for name in names if f"``{name}``" not in tasks.__doc__]
    assert not missing, f"tasks not listed in the prefect_tiled.tasks docstring: {missing}"


def test_block_save_load_round_trip_keeps_the_key_secret(harness, creds, tiled_server, box, root):
    from prefect.client.orchestration import get_client

    root[box].write_array(np.ones(4), key="ones")
    name = f"tiled-{uuid.uuid4().hex[:8]}"
    creds.save(name)
    loaded = TiledCredentials.load(name)
    assert loaded.uri == creds.uri
    assert loaded.api_key.get_secret_value() == tiled_server.api_key
    np.testing.assert_array_equal(loaded.node(f"{box}/ones").read(), np.ones(4))
    with get_client(sync_client=True) as client:
        shown = client.read_block_document_by_name(name, "tiled-credentials", include_secrets=False)
    assert tiled_server.api_key not in str(shown.data)
    assert str(shown.data["api_key"]).strip("*") == ""  # obfuscated, as the UI shows it
    assert tiled_server.api_key.encode() not in _database_bytes()  # stored encrypted


# ------------------------------------------------------------------ tasks


def test_write_read_search_in_a_flow(harness, creds, box, root, ref_root):
    from prefect import flow

    from prefect_tiled.tasks import read_node, search_nodes, write_node
    from tiled_core.queries import Comparison

    image = np.arange(24, dtype="float32").reshape(4, 6)

    @flow
    def pipeline():
        uris = [
            write_node(creds, f"{box}/scan{i}", image + i, metadata={"sample": s, "temperature": t})
            for i, (s, t) in enumerate([("Cu", 290), ("Ni", 300), ("Cu", 310)])
        ]
        crop = read_node(creds, f"{box}/scan2", slice=(slice(1, 3), slice(None, None, -2)))
        copper = search_nodes(creds, box, query={"sample": "Cu"})
        hot_copper = search_nodes(creds, box, query=[{"sample": "Cu"}, Comparison("gt", "temperature", 300)])
        newest = search_nodes(creds, box, sort="-temperature", limit=2)
        return uris, crop, copper, hot_copper, newest

    state = pipeline(return_state=True)
    uris, crop, copper, hot_copper, newest = state.result()
    assert uris == [root[f"{box}/scan{i}"].uri for i in range(3)]
    np.testing.assert_array_equal(crop, (image + 2)[1:3, ::-2])
    assert copper == [f"{box}/scan0", f"{box}/scan2"]
    assert hot_copper == [f"{box}/scan2"]
    assert newest == [f"{box}/scan2", f"{box}/scan1"]
    assert dict(root[f"{box}/scan1"].metadata) == {"sample": "Ni", "temperature": 300}
    np.testing.assert_array_equal(root[f"{box}/scan1"].read(), image + 1)
    np.testing.assert_array_equal(ref_root[f"{box}/scan1"].read(), image + 1)  # the reference client agrees
    (markdown,) = [m for m in _artifacts_of(_flow_run(state).id) if f"scan0]({uris[0]})" in m]
    assert "4 × 6" in markdown and "float32" in markdown and "96" in markdown


def test_read_node_of_a_node_the_reference_client_wrote(harness, creds, ref_scratch):
    from prefect import flow

    from prefect_tiled.tasks import read_node

    data = np.linspace(0, 1, 30).reshape(5, 6)
    ref_scratch.write_array(data, key="ref", metadata={"by": "reference"})
    path = f"{ref_scratch.item['id']}/ref"

    @flow
    def read():
        return read_node(creds, path), read_node(creds, path, slice=(slice(None), 2))

    whole, column = read()
    np.testing.assert_array_equal(whole, data)
    np.testing.assert_array_equal(column, data[:, 2])


def test_dispatch_table_picks_the_writer_by_type():
    import awkward as ak
    import dask.array as da
    import dask.dataframe as dd
    import pandas as pd
    import sparse
    import xarray as xr

    from prefect_tiled._writers import writer_for

    frame = pd.DataFrame({"a": [1, 2]})
    cases = {
        "array": [np.zeros(2), da.zeros(2)],
        "table": [frame, dd.from_pandas(frame, npartitions=1)],
        "xarray_dataset": [xr.Dataset({"v": ("x", np.zeros(2))})],
        "awkward": [ak.Array([[1], []])],
        "sparse": [sparse.COO.from_numpy(np.eye(2))],
    }
    for family, values in cases.items():
        for value in values:
            assert writer_for(value).family == family, type(value)
    for wrong in ({"a": 1}, [1, 2], xr.DataArray(np.zeros(2)), pd.Series([1])):
        with pytest.raises(TypeError, match="supported: numpy.ndarray"):
            writer_for(wrong)


def test_write_node_dask_array(harness, creds, box, root):
    import dask.array as da
    from prefect import flow

    from prefect_tiled.tasks import write_node

    lazy = da.arange(60, chunks=25, dtype="int64").reshape(6, 10).rechunk((3, 5))

    @flow
    def save():
        return write_node(creds, f"{box}/lazy", lazy)

    uri = save()
    node = root[f"{box}/lazy"]
    assert uri == node.uri
    assert node.chunks == ((3, 3), (5, 5))
    np.testing.assert_array_equal(node.read(), np.arange(60).reshape(6, 10))


def glitch_on_second_block(block):
    """A block function that fails on the second block (a detector glitch mid-upload)."""
    if block.flat[0] >= 4:
        raise RuntimeError("detector glitch")
    return block


def test_tables_pandas_and_dask(harness, creds, box, root, ref_root):
    import dask.dataframe as dd
    import pandas as pd
    from prefect import flow

    from prefect_tiled.tasks import read_node, write_node
    from tiled_core.transport import Conflict

    frame = pd.DataFrame({"x": np.arange(6), "y": np.linspace(0, 1, 6), "name": list("abcdef")})

    @flow
    def tables():
        eager = write_node(creds, f"{box}/eager", frame, metadata={"kind": "table"})
        lazy = write_node(creds, f"{box}/lazy", dd.from_pandas(frame, npartitions=2))
        kept = write_node(creds, f"{box}/eager", frame, on_conflict="skip")
        return eager, lazy, kept, read_node(creds, f"{box}/lazy", columns=["x", "name"])

    state = tables(return_state=True)
    eager, lazy, kept, columns = state.result()
    assert kept == eager == root[f"{box}/eager"].uri and lazy == root[f"{box}/lazy"].uri
    pd.testing.assert_frame_equal(columns, frame[["x", "name"]], check_dtype=False)
    pd.testing.assert_frame_equal(ref_root[f"{box}/eager"].read(), frame, check_dtype=False)
    assert root[f"{box}/lazy"].structure_family == "table"
    markdown = "\n".join(_artifacts_of(_flow_run(state).id))
    assert f"[{box}/eager]({eager})" in markdown and "6 × 3" in markdown and "| table |" in markdown
    with pytest.raises(Conflict, match="different structure"):  # the task's body, outside any flow
        write_node.fn(creds, f"{box}/eager", frame.iloc[:2], on_conflict="skip")


def test_sparse_awkward_xarray(harness, creds, box, root, ref_root):
    import awkward as ak
    import sparse
    import xarray as xr
    from prefect import flow

    from prefect_tiled.tasks import read_node, write_node

    dense = np.zeros((4, 5))
    dense[1, 2], dense[3, 0] = 7.0, -1.5
    coo = sparse.COO.from_numpy(dense)
    ragged = ak.Array([[1.0, 2.0], [], [3.5]])
    dataset = xr.Dataset({"temp": (("t",), np.arange(4.0))}, coords={"t": np.arange(4)}, attrs={"beamline": "x1"})

    @flow
    def families():
        uris = [
            write_node(creds, f"{box}/coo", coo, metadata={"kind": "sparse"}),
            write_node(creds, f"{box}/ragged", ragged, metadata={"kind": "awkward"}),
            write_node(creds, f"{box}/ds", dataset),
            write_node(creds, f"{box}/coo", coo, on_conflict="skip"),
        ]
        reads = [
            read_node(creds, f"{box}/coo"), read_node(creds, f"{box}/coo", slice=(slice(1, 2),)),
            read_node(creds, f"{box}/ragged"), read_node(creds, f"{box}/ds"),
            read_node(creds, f"{box}/ds", columns=["temp"]),
        ]
        return uris, reads

    state = families(return_state=True)
    uris, (whole, row, back, ds, temp_only) = state.result()
    assert uris[0] == uris[3] == root[f"{box}/coo"].uri and uris[2] == root[f"{box}/ds"].uri
    np.testing.assert_array_equal(whole.todense(), dense)
    np.testing.assert_array_equal(row.todense(), dense[1:2])
    assert back.tolist() == ragged.tolist()
    xr.testing.assert_identical(ds, dataset)
    assert list(temp_only.data_vars) == ["temp"]
    assert [root[f"{box}/{k}"].structure_family for k in ("coo", "ragged")] == ["sparse", "awkward"]
    np.testing.assert_array_equal(ref_root[f"{box}/coo"].read().todense(), dense)  # the reference client agrees
    assert ref_root[f"{box}/ragged"].read().tolist() == ragged.tolist()
    markdown = "\n".join(_artifacts_of(_flow_run(state).id))
    assert "| sparse |" in markdown and "| awkward |" in markdown and "| xarray_dataset |" in markdown
    assert "4 × 5" in markdown
    with pytest.raises(TypeError, match="attrs"):
        write_node.fn(creds, f"{box}/ds2", dataset, metadata={"kind": "xarray"})


def test_write_node_on_conflict_and_rerun_of_a_failed_write(harness, creds, box, root):
    import dask.array as da
    from prefect import flow

    from prefect_tiled.tasks import write_node
    from tiled_core.client.conflict import is_incomplete
    from tiled_core.transport import Conflict

    @flow
    def save(data, on_conflict, key="x"):
        return write_node(creds, f"{box}/{key}", data, on_conflict=on_conflict)

    first = save(np.zeros(3), "error")
    with pytest.raises(Conflict):
        save(np.ones(3), "error")
    assert save(np.ones(3), "skip") == first
    np.testing.assert_array_equal(root[f"{box}/x"].read(), np.zeros(3))  # kept, not overwritten
    with pytest.raises(Conflict, match="different structure"):
        save(np.ones(4), "skip")
    assert save(np.ones(4), "replace") == first
    np.testing.assert_array_equal(root[f"{box}/x"].read(), np.ones(4))

    good = da.arange(8, chunks=4)
    with pytest.raises(RuntimeError, match="detector glitch"):
        save(good.map_blocks(glitch_on_second_block), "error", key="y")
    assert is_incomplete(root[f"{box}/y"])  # the failed write left a node that says so
    save(good, "skip", key="y")  # the rerun finishes it in place
    assert not is_incomplete(root[f"{box}/y"])
    np.testing.assert_array_equal(root[f"{box}/y"].read(), np.arange(8))


def test_task_input_errors_come_before_any_write(harness, creds, box, root):
    from prefect import flow

    from prefect_tiled.tasks import read_node, search_nodes, write_node

    root.create_container(f"{box}-elsewhere").write_array(np.zeros(1), key="a")
    calls = {
        "type": lambda: write_node(creds, f"{box}/obj", {"not": "an array"}),
        "conflict": lambda: write_node(creds, f"{box}/y", np.zeros(2), on_conflict="overwrite"),
        "path": lambda: write_node(creds, "", np.zeros(2)),
        "parent": lambda: write_node(creds, f"{box}/nothere/y", np.zeros(2)),
        "query": lambda: search_nodes(creds, box, query="sample == Cu"),
        "search an array": lambda: search_nodes(creds, f"{box}-elsewhere/a"),
        "slice": lambda: read_node(creds, box, slice=(0,)),
        "missing": lambda: read_node(creds, f"{box}/missing"),
    }

    @flow
    def bad():  # one flow run; each failing task run's error is caught in the flow
        errors = {}
        for name, call in calls.items():
            try:
                call()
            except Exception as error:
                errors[name] = error
        return errors

    errors = bad()
    assert set(errors) == set(calls)
    assert isinstance(errors["type"], TypeError) and "numpy.ndarray" in str(errors["type"])
    assert isinstance(errors["conflict"], ValueError) and "on_conflict" in str(errors["conflict"])
    assert isinstance(errors["path"], ValueError) and "names no node" in str(errors["path"])
    assert isinstance(errors["parent"], KeyError) and isinstance(errors["missing"], KeyError)
    assert isinstance(errors["query"], TypeError) and "tiled_core.queries" in str(errors["query"])
    assert isinstance(errors["slice"], TypeError) and "container" in str(errors["slice"])
    assert isinstance(errors["search an array"], TypeError) and "only containers" in str(errors["search an array"])
    assert list(root[box].keys()) == []


def test_async_twins(harness, creds, box, root):
    from prefect import flow

    from prefect_tiled.tasks import aread_node, asearch_nodes, awrite_node

    @flow
    async def pipeline():
        uri = await awrite_node(creds, f"{box}/a", np.arange(5.0), metadata={"kind": "async"})
        data = await aread_node(creds, f"{box}/a", slice=slice(1, 4))
        found = await asearch_nodes(creds, box, query={"kind": "async"})
        return uri, data, found

    uri, data, found = asyncio.run(pipeline())
    assert uri == root[f"{box}/a"].uri
    np.testing.assert_array_equal(data, [1.0, 2.0, 3.0])
    assert found == [f"{box}/a"]


def test_retry_on_outage_only_for_transport_errors(harness):
    from prefect import flow, task

    from prefect_tiled.tasks import retry_on_outage
    from tiled_core.transport import ConnectionFailed, NotFound

    attempts = {"outage": 0, "missing": 0}

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_on_outage)
    def flaky(kind):
        attempts[kind] += 1
        if kind == "outage" and attempts[kind] < 3:
            raise ConnectionFailed("cannot connect to http://127.0.0.1:1/api/v1/ (server restarting)")
        if kind == "missing":
            raise NotFound(404, "No such entry", url="http://127.0.0.1:1/api/v1/metadata/x")
        return attempts[kind]

    @flow
    def run(kind):
        return flaky(kind)

    assert run("outage") == 3
    with pytest.raises(NotFound):
        run("missing")
    assert attempts["missing"] == 1


# ------------------------------------------------------------------ flows


def test_block_specs_pickle_without_the_key(creds, tiled_server):
    import pickle

    import cloudpickle  # what Prefect's Dask runner ships task calls with

    from prefect_tiled import _blocks

    handle = _blocks.session_handle(creds, "SOME_ENV_VAR")
    plan = _blocks.plan(handle, ("a",), ("b",), ((2, 2),), "float64", "float32")
    for dumps in (pickle.dumps, cloudpickle.dumps):
        blob = dumps(plan)
        assert tiled_server.api_key.encode() not in blob and b"SOME_ENV_VAR" in blob
        specs = pickle.loads(blob).specs()
        assert (specs[1].block, specs[1].shape, specs[1].dest_dtype) == ((1,), (2,), np.dtype("float32"))
        assert specs[1].handle.get() is creds.get_client().context.session  # same process: the live session


def sqrt_where_no_key_was_shipped(block):
    """map_blocks function that, on the worker, checks what Prefect shipped with the task for the key."""
    import os

    import cloudpickle
    from prefect.context import serialize_context

    if os.environ["PREFECT_TILED_TEST_KEY"].encode() in cloudpickle.dumps(serialize_context()):
        raise RuntimeError("the API key was shipped to the worker with the task")
    return np.sqrt(block)


def _set_environment(name, value):
    import os

    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def test_map_blocks_flow_on_a_two_process_dask_cluster(harness, creds, box, root, tiled_server, monkeypatch,
                                                       dask_client):
    """On the session's 2-process LocalCluster (``dask_address``); the sync copy test covers ``workers=2``."""
    import dask.array as da

    from prefect_tiled.flows import map_blocks_flow
    from tiled_core.client.conflict import is_incomplete
    from tiled_core.transport import Conflict

    # The workers' environment holds the key, as a deployment's would; the flow ships only its name.
    monkeypatch.setenv("PREFECT_TILED_TEST_KEY", tiled_server.api_key)
    dask_client.run(_set_environment, "PREFECT_TILED_TEST_KEY", tiled_server.api_key)
    source = np.arange(64, dtype="int32").reshape(8, 8)
    raw = root[box].write_array(da.from_array(source, chunks=4), key="chunked")  # 4 blocks: both workers get some

    try:
        state = map_blocks_flow(
            creds, f"{box}/chunked", f"{box}/sqrt", sqrt_where_no_key_was_shipped, dtype="float64",
            metadata={"step": "sqrt"}, api_key_env="PREFECT_TILED_TEST_KEY", return_state=True,
            dask_address=dask_client.scheduler.address,
        )
    finally:
        dask_client.run(_set_environment, "PREFECT_TILED_TEST_KEY", None)
    uri = state.result()
    result = root[f"{box}/sqrt"]
    assert uri == result.uri
    np.testing.assert_allclose(result.read(), np.sqrt(source))
    assert result.chunks == raw.chunks and result.dtype == np.float64
    assert dict(result.metadata) == {"step": "sqrt", "source": raw.uri}
    run = _flow_run(state)
    assert tiled_server.api_key not in repr(run.parameters)
    (markdown,) = _artifacts_of(run.id)
    assert f"[{box}/sqrt]({uri})" in markdown and f"{64 * 8:,}" in markdown
    _drain_logs()
    logs = [log["message"] for log in _api_filter("logs", {"logs": {"flow_run_id": {"any_": [str(run.id)]}}})]
    (mapped,) = [m for m in logs if m.startswith("mapped 4 block(s)")]
    assert "4 of them in" in mapped and "in 0 other" not in mapped  # the blocks ran in the worker processes

    def threads(*args, **kwargs):  # the reruns run their blocks in threads here: quicker, same code path
        return map_blocks_flow(*args, workers=0, **kwargs)

    # skip: a complete result is kept as it is
    assert threads(creds, f"{box}/chunked", f"{box}/sqrt", np.negative, dtype="float64", on_conflict="skip") == uri
    np.testing.assert_allclose(result.read(), np.sqrt(source))
    # a run that fails half way leaves an incomplete node; a rerun with skip finishes it
    with pytest.raises(RuntimeError, match="detector glitch"):
        threads(creds, f"{box}/chunked", f"{box}/neg", glitch_on_second_block)
    assert is_incomplete(root[f"{box}/neg"])
    with pytest.raises(Conflict):
        threads(creds, f"{box}/chunked", f"{box}/neg", np.negative)
    threads(creds, f"{box}/chunked", f"{box}/neg", np.negative, on_conflict="skip")
    assert not is_incomplete(root[f"{box}/neg"])
    np.testing.assert_array_equal(root[f"{box}/neg"].read(), -source)
    # replace: written anew, here with another dtype
    threads(creds, f"{box}/chunked", f"{box}/neg", np.negative, dtype="float32", on_conflict="replace")
    assert root[f"{box}/neg"].dtype == np.float32
    np.testing.assert_array_equal(root[f"{box}/neg"].read(), -source)


def test_map_blocks_flow_rejects_bad_input(harness, creds, box, root):
    from prefect_tiled.flows import map_blocks_flow

    root[box].write_array(np.arange(4), key="v")
    with pytest.raises(ValueError, match="cannot import"):
        map_blocks_flow(creds, f"{box}/v", f"{box}/w", "numpy:no_such_function")
    with pytest.raises(TypeError, match="container"):
        map_blocks_flow(creds, box, f"{box}/w", "numpy:sqrt")
    assert list(root[box].keys()) == ["v"]


# ------------------------------------------------------------------ example


def test_example_reduce_new_scans(harness, tiled_server, root):
    from example_flows import prefect_reduce

    said = []
    first = prefect_reduce.run(tiled_server.uri, tiled_server.api_key, n_scans=3, say=said.append)
    scans_path = first["results"].removesuffix("-reduced")
    assert len(first["reduced"]) == 3
    results = root[first["results"]]
    assert sorted(results.keys()) == ["scan000", "scan001", "scan002"]
    for key in results:
        scan = root[f"{scans_path}/{key}"]
        assert results[key].metadata["source"] == scan.uri
        np.testing.assert_allclose(results[key].read(), scan["image"].read().mean(axis=0))
    again = prefect_reduce.run(tiled_server.uri, tiled_server.api_key, scans_path=scans_path, say=said.append)
    if first["marked"]:  # this tiled_core can update metadata: marked scans are not found again
        assert first["marked"] == 3 and again["reduced"] == []
    else:  # reruns find them again and keep the existing profiles
        assert again["reduced"] == first["reduced"]
    assert sorted(root[first["results"]].keys()) == ["scan000", "scan001", "scan002"]


def _copy_source(root, box):
    import pandas as pd

    node = root[box]
    node.write_array(np.arange(12.0).reshape(3, 4), key="a", metadata={"kind": "array"})
    inner = node.create_container("inner", metadata={"level": 2})
    inner.write_dataframe(pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}), key="t")
    return node


def test_copy_nodes_copies_and_a_rerun_skips(harness, creds, box, root, second_server):
    from tiled.client import from_uri as ref_from_uri

    from prefect import flow

    from prefect_tiled.copy import copy_nodes

    _copy_source(root, box)
    dest_creds = TiledCredentials(uri=second_server.uri, api_key=second_server.api_key)

    @flow
    def mirror():
        return copy_nodes(creds, dest_creds, box, f"mirrors/{box}")

    first = mirror()
    assert first["nodes"] == 3 and first["failed"] == 0 and first["bytes"] > 0
    again = mirror()
    assert again["nodes"] == 0 and again["skipped"] == 3
    ref = ref_from_uri(second_server.uri, api_key=second_server.api_key)
    try:
        copied = ref["mirrors"][box]
        np.testing.assert_array_equal(copied["a"].read(), np.arange(12.0).reshape(3, 4))
        assert copied["a"].metadata["kind"] == "array"
        assert copied["inner"].metadata["level"] == 2
        assert list(copied["inner"]["t"].read()["x"]) == [1, 2, 3]
    finally:
        ref.context.close()


def test_sync_copy_flow_on_a_two_process_cluster(harness, creds, box, root, second_server):
    from prefect_tiled.copy import sync_copy_flow
    from tiled_core.client import from_uri

    _copy_source(root, box)
    dest_creds = TiledCredentials(uri=second_server.uri, api_key=second_server.api_key)
    summary = sync_copy_flow(creds, dest_creds, box, f"flow-mirrors/{box}", workers=2)
    assert summary["nodes"] == 3 and summary["failed"] == 0
    dest = from_uri(second_server.uri, api_key=second_server.api_key)
    try:
        np.testing.assert_array_equal(dest[f"flow-mirrors/{box}/a"].read(), np.arange(12.0).reshape(3, 4))
        assert dest[f"flow-mirrors/{box}/inner/t"].read()["y"].tolist() == ["a", "b", "c"]
    finally:
        dest.context.close()


def test_example_nightly_mirror_resumes(harness, box, root, tiled_server, second_server):
    from example_flows import prefect_mirror

    _copy_source(root, box)
    args = (tiled_server.uri, tiled_server.api_key, second_server.uri, second_server.api_key, box)
    lines: list[str] = []
    first = prefect_mirror.run(*args, workers=0, say=lines.append)
    second = prefect_mirror.run(*args, workers=0, say=lines.append)
    assert (first["nodes"], second["nodes"], second["skipped"]) == (3, 0, 3)
    assert not any(tiled_server.api_key in line or second_server.api_key in line for line in lines)


def test_the_key_is_nowhere_in_prefect(harness, creds, tiled_server, box):
    """No key in any log, flow or task run, or anywhere in Prefect's database.

    Run last, it also searches what every earlier test left there (flows, failures, a saved
    block, Dask workers, the example).
    """
    from prefect import flow

    from prefect_tiled.tasks import read_node, write_node

    @flow
    def with_the_block(credentials: TiledCredentials):
        write_node(credentials, f"{box}/x", np.zeros(2))
        return read_node(credentials, f"{box}/does-not-exist")

    with pytest.raises(KeyError):
        with_the_block(creds)
    _drain_logs()
    logs, runs, tasks = _api_filter("logs"), _api_filter("flow_runs"), _api_filter("task_runs")
    assert len(logs) >= 4 and runs and len(tasks) >= 2
    assert any("wrote numpy.ndarray" in log["message"] for log in logs)  # what is searched holds our runs
    key = tiled_server.api_key
    assert [log["message"] for log in logs if key in log["message"]] == []
    assert [run["name"] for run in runs if key in json.dumps(run)] == []
    assert [run["name"] for run in tasks if key in json.dumps(run)] == []
    assert key.encode() not in _database_bytes()
