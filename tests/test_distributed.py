"""Dask reads and copies on a real distributed.LocalCluster (2 worker processes), and what graphs carry."""

from __future__ import annotations

import os
import pickle
import uuid

import numpy as np
import pytest

from tiled_core.client import from_uri
from tiled_core.client.sync import copy
from tiled_core.distributed import EnvVarCredential, share_credentials, use_credential_source
from tiled_core.distributed import _handles, _limits
from tiled_core.distributed._array_tasks import ArrayRead, plan_groups



def _graph(*collections) -> dict:
    """The low-level tasks of ``collections`` (what is pickled and sent to the scheduler)."""
    graph: dict = {}
    for collection in collections:
        graph.update(dict(collection.__dask_graph__()))
    return graph

DEST_KEY_VAR = "TILED_CORE_TEST_DEST_KEY"


def _setenv(name: str, value: str) -> None:
    os.environ[name] = value


def _worker_requests() -> int:
    return sum(session.request_count for session in _handles._REOPENED.values())


def _scheduler_specs(dask_scheduler) -> dict[str, str]:
    return {str(key): repr(ts.run_spec) for key, ts in dask_scheduler.tasks.items()}


@pytest.fixture(scope="module")
def data(tiled_server):
    """A container with a (60, 50) float array in 6x3 chunks and a 0-d array, written once."""
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    parent = client.create_container(f"dist-{uuid.uuid4().hex[:8]}")
    import dask.array as da

    values = np.random.default_rng(0).random((60, 50))
    parent.write_array(da.from_array(values, chunks=(10, 20)), key="x", metadata={"m": 1})
    parent.write_array(np.float32(3.5), key="scalar")
    yield parent.path, values
    client.context.close()


@pytest.fixture(scope="module")
def families(tiled_server):
    """A table in 3 partitions and an xarray dataset, written once."""
    import dask.dataframe as dd
    import pandas as pd
    import xarray as xr

    from tiled_core.client.xarray import write_xarray_dataset

    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    parent = client.create_container(f"dist-fam-{uuid.uuid4().hex[:8]}")
    frame = pd.DataFrame({"i": np.arange(30), "f": np.linspace(0, 1, 30), "s": [f"r{i}" for i in range(30)]})
    parent.write_dataframe(dd.from_pandas(frame, npartitions=3), key="table")
    dataset = xr.Dataset({"temp": (("t", "x"), np.random.default_rng(3).random((12, 5)))},
                         coords={"t": np.arange(12), "x": np.arange(5) * 0.5}, attrs={"run": 7})
    write_xarray_dataset(parent, dataset, key="ds")
    yield parent.path
    client.context.close()


@pytest.fixture
def dask_node(tiled_server, data):
    """A dask-structured client on the array, with the API key given directly."""
    client = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    yield client[f"{data[0]}/x"]
    client.context.close()


def test_cluster_read_equals_in_memory_read(dask_client, tiled_server, data, dask_node):
    share_credentials(dask_client, dask_node)
    _, values = data
    array = dask_node.read()
    assert array.chunks == ((10,) * 6, (20, 20, 10))  # the server's chunks, as the reference reports them
    np.testing.assert_array_equal(dask_client.compute(array).result(), values)
    np.testing.assert_array_equal(dask_client.compute(dask_node.read((slice(5, 55, 3), slice(None, None, -4)))).result(),
                                  values[5:55:3, ::-4])
    block = dask_node.read_block((2, 1), slice=(slice(None, None, -1), 3))
    np.testing.assert_array_equal(dask_client.compute(block).result(), values[20:30, 20:40][::-1, 3])
    numpy_client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        np.testing.assert_array_equal(numpy_client[dask_node.path].read(), values)
    finally:
        numpy_client.context.close()


def test_zero_d_array_on_cluster(dask_client, tiled_server, data):
    client = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    try:
        node = client[f"{data[0]}/scalar"]
        share_credentials(dask_client, node)
        assert dask_client.compute(node.read()).result() == np.float32(3.5)
    finally:
        client.context.close()


def test_table_and_dataset_on_cluster_equal_in_memory_reads(dask_client, tiled_server, families):
    import pandas as pd
    import xarray as xr

    lazy = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    eager = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        share_credentials(dask_client, lazy)
        table = lazy[f"{families}/table"].read()
        assert table.npartitions == 3
        key = tiled_server.api_key
        assert not [t for t in _graph(table).values() if key.encode() in pickle.dumps(t)]
        pd.testing.assert_frame_equal(dask_client.compute(table).result(), eager[f"{families}/table"].read())
        dataset = lazy[f"{families}/ds"].read()
        assert dataset["temp"].chunks is not None  # lazy: computed on the cluster below
        xr.testing.assert_identical(dask_client.compute(dataset).result(), eager[f"{families}/ds"].read())
    finally:
        lazy.context.close()
        eager.context.close()


def test_env_var_credential_resolved_on_workers(dask_client, tiled_server, data, monkeypatch):
    dask_client.run(_setenv, "TILED_API_KEY", tiled_server.api_key)
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    client = from_uri(tiled_server.uri, "dask")
    try:
        node = client[f"{data[0]}/x"]
        assert node.context.session_handle.source == EnvVarCredential("TILED_API_KEY")
        np.testing.assert_array_equal(dask_client.compute(node.read()).result(), data[1])
    finally:
        client.context.close()


def test_no_api_key_in_graph_or_scheduler(dask_client, tiled_server, dask_node):
    key = tiled_server.api_key
    share_credentials(dask_client, dask_node)
    array = dask_node.read()
    block = dask_node.read_block((0, 0))
    graph = _graph(array, block)
    requests = 0
    for task_key, task in dict(graph).items():
        assert key not in repr(task)
        assert key.encode() not in pickle.dumps(task)
        requests += "ArrayRead(" in repr(task)
    assert requests >= 2  # the specs really were looked at
    persisted = dask_client.persist([array, block])
    dask_client.gather(dask_client.compute(persisted))
    specs = dask_client.run_on_scheduler(_scheduler_specs)
    assert any("ArrayRead(" in spec or "getitem" in spec for spec in specs.values())
    assert not [k for k, spec in specs.items() if key in spec or key in k]
    del persisted


def test_key_given_directly_is_not_put_into_graphs(dask_client, tiled_server, data):
    client = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    try:
        node = client[f"{data[0]}/x"]
        with pytest.raises(Exception) as caught:
            dask_client.compute(node.read()).result()
        chain, error = [], caught.value
        while error is not None:
            chain.append(str(error))
            error = error.__cause__ or error.__context__
        assert any("share_credentials" in message for message in chain)
        with pytest.raises(TypeError, match="not put into pickles"):
            pickle.dumps(node.context.session_handle)
    finally:
        client.context.close()


def test_small_chunks_are_fetched_in_groups_but_keep_their_chunking(dask_node):
    array = dask_node.read()
    graph = _graph(array)
    reads = [task for task in graph.values() if "ArrayRead(" in repr(task)]
    grouped = [task for task in reads if "array/full" in repr(task)]
    assert grouped and len(reads) < 18  # 18 chunks, fewer requests
    assert len(array.__dask_keys__()) == 6 and array.numblocks == (6, 3)


def test_a_small_selection_reads_only_the_blocks_it_touches(dask_node, data):
    """Grouping never makes a selection fetch its neighbours: one block touched, one block's bytes read."""
    session = dask_node.context.session
    whole = [repr(t) for t in _graph(dask_node.read()).values() if "ArrayRead(" in repr(t)]
    assert not any("slice=10:20,40:50 " in r for r in whole)  # unselected, block (1, 2) is read with others
    selected = dask_node.read((slice(12, 15), slice(45, 50)))
    reads = [repr(t) for t in _graph(selected).values() if "ArrayRead(" in repr(t)]
    assert any("slice=10:20,40:50 shape=(10, 10)" in r for r in reads)  # selected, it is read alone
    before = session.request_count
    np.testing.assert_array_equal(selected.compute(scheduler="threads"), data[1][12:15, 45:50])
    assert session.request_count - before == 1


def test_plan_groups_bounds_group_size():
    chunks = ((512,) * 8, (1024,) * 8)  # 4 MiB float64 blocks: 256 MiB
    axis, groups = plan_groups(chunks, 8)
    assert axis == 0
    assert sorted(i for g in groups for i in g) == [(i, j) for i in range(8) for j in range(8)]
    assert all(len(g) * 4 <= 32 for g in groups) and max(len(g) for g in groups) > 1
    assert all({i for i, _ in g} == {g[0][0]} and len(g) == 8 for g in groups)  # whole rows of blocks
    big = ((4096,) * 4, (4096,))  # 128 MiB blocks stay alone
    assert all(len(g) == 1 for g in plan_groups(big, 8)[1])
    assert plan_groups((), 8) == (None, [[()]])


def test_plan_groups_reads_a_small_array_whole_and_a_selection_alone():
    small = ((128,) * 8, (256,) * 8)  # 16 MiB of float64 in 64 chunks: one request
    assert plan_groups(small, 8) == (0, [[(i, j) for i in range(8) for j in range(8)]])
    # A selection of rows 2-3 across every column: one group of those two slabs, the rest alone.
    axis, groups = plan_groups(small, 8, wanted=({2, 3}, set(range(8))))
    assert [(i, j) for i in (2, 3) for j in range(8)] in groups
    assert sum(len(g) for g in groups) == 64 and sum(len(g) > 1 for g in groups) == 1
    # A selection of one column: runs along the first axis only, never its neighbours' blocks.
    axis, groups = plan_groups(small, 8, wanted=(set(range(8)), {5}))
    assert [(i, 5) for i in range(8)] in groups and sum(len(g) > 1 for g in groups) == 1


def test_array_read_repr_names_no_secret(dask_node):
    request = ArrayRead(dask_node.context.session_handle, "array/block/x", (("block", "0,0"),), (2, 2), np.dtype("f8"))
    assert "block=0,0" in repr(request) and "Apikey" not in repr(request)


def test_worker_concurrency_is_bounded(dask_client, tiled_server, dask_node):
    share_credentials(dask_client, dask_node)
    base = dask_node.context.session.base_url
    try:
        dask_client.run(_limits.set_worker_concurrency, 1)
        dask_client.compute(dask_node.read_block((0, 0)) + dask_node.read().sum()).result()
        stats = dask_client.run(_limits.slot_stats)
        assert all(s[base]["limit"] == 1 and s[base]["peak"] == 1 for s in stats.values() if base in s)
        assert any(base in s for s in stats.values())
    finally:
        dask_client.run(_limits.set_worker_concurrency, _limits.DEFAULT_CONCURRENCY)
    with pytest.raises(ValueError):
        _limits.set_worker_concurrency(0)


def test_copy_on_workers(dask_client, tiled_server, second_server, data, monkeypatch):
    """Transfers run on the workers (direct key shipped as a plugin; dest key from the workers' environment)."""
    source = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    monkeypatch.setenv(DEST_KEY_VAR, second_server.api_key)
    dest_root = from_uri(second_server.uri, api_key=os.environ[DEST_KEY_VAR])
    try:
        dask_client.run(_setenv, DEST_KEY_VAR, second_server.api_key)
        use_credential_source(dest_root, EnvVarCredential(DEST_KEY_VAR))
        dest = dest_root.create_container(f"dask-copy-{uuid.uuid4().hex[:8]}")
        before = sum(dask_client.run(_worker_requests).values())
        driver_before = source.context.session.request_count
        summary = copy(source[data[0]], dest, dask_client=dask_client, progress=False)
        assert summary.nodes == 2 and summary.bytes == data[1].nbytes + 4 and summary.failed == 0
        # The workers made the data requests (2 per block: GET + PUT); the driver only listed.
        assert sum(dask_client.run(_worker_requests).values()) - before >= 2 * 19
        assert source.context.session.request_count - driver_before <= 3
        np.testing.assert_array_equal(dest["x"].read(), data[1])
        assert dest["x"].metadata["m"] == 1 and dest["scalar"].read() == np.float32(3.5)
    finally:
        source.context.close()
        dest_root.context.close()


def _credential_plugins(dask_client) -> set[str]:
    return set(dask_client.run_on_scheduler(lambda dask_scheduler: [
        name for name in dask_scheduler.worker_plugins if name.startswith("tiled-core-credential-")]))


def _workers_hold(dask_client, token: str) -> list[bool]:
    def held() -> bool:
        from tiled_core.distributed import _credentials

        return token in _credentials._SHARED
    return list(dask_client.run(held).values())


def test_credential_plugins_do_not_pile_up_on_a_long_lived_cluster(dask_client, tiled_server):
    """Many flows sharing one key: one plugin; a replaced key swaps it; the last close removes it everywhere."""
    from tiled_core.client.context import Context
    from tiled_core.transport import ApiKeyAuth

    before = _credential_plugins(dask_client)
    key_a, key_b = f"a{uuid.uuid4().hex}", f"b{uuid.uuid4().hex}"  # never sent: no request is made here
    flows = [Context(tiled_server.uri, api_key=key_a) for _ in range(3)]
    for context in flows * 2:
        share_credentials(dask_client, context)
    assert len(_credential_plugins(dask_client) - before) == 1
    sources = {context.session_handle.source for context in flows}
    assert len(sources) == 1
    token_a = sources.pop().token
    assert all(_workers_hold(dask_client, token_a))
    flows[0].session.set_auth(ApiKeyAuth(key_b))  # this flow's key was replaced
    share_credentials(dask_client, flows[0])
    assert len(_credential_plugins(dask_client) - before) == 2
    flows[1].close()
    flows[2].close()  # the last user of key_a: its plugin goes, and the workers forget it
    assert len(_credential_plugins(dask_client) - before) == 1
    assert not any(_workers_hold(dask_client, token_a))
    flows[0].close()
    assert _credential_plugins(dask_client) - before == set()


def test_workers_use_the_drivers_retry_policy(dask_client, tiled_server, data):
    from tiled_core.transport import RetryPolicy

    client = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    policy = RetryPolicy(attempts=2, deadline=7.5, backoff=0.01)
    client.context.session.retry = policy
    share_credentials(dask_client, client)
    handle = client.context.session_handle
    assert dask_client.submit(lambda h: h.get().retry, handle, pure=False).result() == policy
    node = client[f"{data[0]}/x"]
    np.testing.assert_array_equal(node.read().compute(scheduler=dask_client.get), data[1])
    client.context.close()
