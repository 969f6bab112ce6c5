"""The command line, Prefect's ``copy_nodes`` and Dagster's copy asset take the copy engine's fast paths.

Each copies the same flat container of small arrays across a slow link (both
servers behind a proxy adding 20 ms each way) and must arrive identical, in
order, with the ordered creates pipelined on the destination's link as
``sync.copy`` sends them (tests/test_copy_latency.py): the entry points
add no slower path of their own. No wall-clock time is asserted.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tiled_core.client import from_uri
from tiled_core.copy._engine import PIPELINE

N = PIPELINE + 4


@pytest.fixture(scope="module")
def flat(tiled_server):
    """A container of ``N`` small arrays, created in a shuffled order; yields (path, order)."""
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    node = client.create_container(f"entry-src-{uuid.uuid4().hex[:8]}")
    order = [int(i) for i in np.random.default_rng(3).permutation(N)]
    with node.batch() as batch:
        for i in order:
            batch.write_array(np.arange(8.0) + i, key=f"k{i:02d}", metadata={"index": i})
    yield node.path, order
    client.context.close()


def _check(second_server, dest_path: str, order: list[int], dest_proxy) -> None:
    assert dest_proxy.peak_in_flight >= PIPELINE, "creates were not pipelined"
    dest = from_uri(second_server.uri, api_key=second_server.api_key)
    try:
        copied = dest[dest_path]
        assert list(copied) == [f"k{i:02d}" for i in order]
        np.testing.assert_array_equal(copied[f"k{order[0]:02d}"].read(), np.arange(8.0) + order[0])
        assert copied[f"k{order[-1]:02d}"].metadata["index"] == order[-1]
    finally:
        dest.context.close()


def test_cli_copy(flat, slow_links, tiled_server, second_server, monkeypatch, capsys):
    from tiled_core.cli import main

    path, order = flat
    source_proxy, dest_proxy = slow_links
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    monkeypatch.setenv("TILED_SOURCE_API_KEY", tiled_server.api_key)
    monkeypatch.setenv("TILED_DEST_API_KEY", second_server.api_key)
    target = f"entry-cli-{uuid.uuid4().hex[:8]}"
    assert main(["copy", f"{source_proxy.uri}/metadata/{path}", f"{dest_proxy.uri}/metadata/{target}",
                 "--create", "--no-progress"]) == 0
    assert f"copied {N} nodes" in capsys.readouterr().out
    _check(second_server, target, order, dest_proxy)


def test_prefect_copy_nodes(flat, slow_links, prefect_harness, tiled_server, second_server):
    from prefect import flow

    from prefect_tiled import TiledCredentials
    from prefect_tiled.copy import copy_nodes

    path, order = flat
    source_proxy, dest_proxy = slow_links
    source = TiledCredentials(uri=source_proxy.uri, api_key=tiled_server.api_key)
    dest = TiledCredentials(uri=dest_proxy.uri, api_key=second_server.api_key)
    target = f"entry-prefect-{uuid.uuid4().hex[:8]}"

    @flow
    def mirror():
        return copy_nodes(source, dest, path, target)

    try:
        summary = mirror()
    finally:
        TiledCredentials.close_clients()
    assert summary["nodes"] == N and summary["failed"] == 0
    _check(second_server, target, order, dest_proxy)


def test_dagster_copy_asset(flat, slow_links, tiled_server, second_server):
    from dagster import materialize

    from dagster_tiled import TiledResource, tiled_copy_asset

    path, order = flat
    source_proxy, dest_proxy = slow_links
    target = f"entry-dagster-{uuid.uuid4().hex[:8]}"
    resources = {"tiled_source": TiledResource(uri=source_proxy.uri, api_key=tiled_server.api_key),
                 "tiled_dest": TiledResource(uri=dest_proxy.uri, api_key=second_server.api_key)}
    result = materialize([tiled_copy_asset("mirror", path, target)], resources=resources)
    assert result.success
    _check(second_server, target, order, dest_proxy)
