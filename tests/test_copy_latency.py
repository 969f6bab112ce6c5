"""A copy across a slow link: source and destination each behind a proxy adding latency (tests/_proxy.py).

Never asserts wall-clock times (the machine is shared): it checks that the
tree arrives identical and in order, that the copy makes no more round trips
than it needs, and that it keeps several requests in flight at once.
"""

from __future__ import annotations

import uuid

import numpy as np

from tiled_core.client import from_uri
from tiled_core.client.sync import copy

from _copy_helpers import assert_same_tree

N_SMALL = 24


def test_proxy_latency_does_not_serialize_connections(tiled_server):
    """Each connection waits on its own: 8 requests sent at once are all inside the proxy together."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from _proxy import FaultProxy

    with FaultProxy("127.0.0.1", tiled_server.port) as proxy:
        proxy.latency(1.0)  # long enough for 8 threads to get their requests in, even on a busy machine
        url = f"http://127.0.0.1:{proxy.port}/healthz"
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: httpx.get(url, timeout=30).status_code, range(8)))
        assert statuses == [200] * 8
        assert proxy.peak_in_flight == 8  # serialized connections would never have more than 1
        assert len(proxy.requests) == 8


def test_copy_over_slow_link_identical_in_order_with_requests_overlapping(tiled_server, second_server, slow_links):
    from tiled.client import from_uri as ref_from_uri

    source_proxy, dest_proxy = slow_links
    src_root = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    dst_root = from_uri(second_server.uri, api_key=second_server.api_key)
    top = src_root.create_container(f"slow-src-{uuid.uuid4().hex[:8]}", metadata={"top": True})
    flat = top.create_container("flat", metadata={"n": N_SMALL})
    order = np.random.default_rng(7).permutation(N_SMALL)  # not sorted: the order is the creation order
    for i in order:
        flat.write_array(np.arange(16, dtype="f8") + i, key=f"k{i:02d}", metadata={"index": int(i)})
    import dask.array as da

    top.write_array(da.from_array(np.arange(64 * 32, dtype="i4").reshape(64, 32), chunks=(16, 32)), key="chunked")
    nested = top.create_container("nested", specs=["grp"])
    nested.create_container("deeper").write_array(np.ones((3, 3)), key="leaf")
    dest = dst_root.create_container(f"slow-dst-{uuid.uuid4().hex[:8]}")

    via_source = from_uri(source_proxy.uri, api_key=tiled_server.api_key)
    via_dest = from_uri(dest_proxy.uri, api_key=second_server.api_key)
    source_node, dest_node = via_source[top.item["id"]], via_dest[dest.item["id"]]
    source_proxy.clear()
    dest_proxy.clear()
    summary = copy(source_node, dest_node, progress=False)

    containers, chunked_units = 3, 1  # flat, nested, deeper; "chunked": 4 equal blocks, moved as one region
    data_nodes = N_SMALL + 2  # the small arrays, "chunked", "leaf"
    assert summary.nodes == containers + data_nodes and summary.failed == 0
    # One GET and one PUT per unit of data, one POST per node, a listing and a mark to clear per
    # container (the flat one's listing in two pages: a small first one), the top's listing and its
    # mark, the mark of "chunked" (no marked container above it): nothing per node beyond what it needs.
    needed = 2 * (N_SMALL + 1 + chunked_units) + containers + data_nodes + 2 * containers + 1 + 1 + 1 + 1
    made = len(source_proxy.requests) + len(dest_proxy.requests)
    assert made <= needed, (made, needed, [(m, t.split("?")[0]) for p in slow_links for m, t, _ in p.requests
                                           if not t.startswith(("/api/v1/array/", "/api/v1/metadata/slow-dst"))])
    # Requests overlap: data moves while creates go on, each connection waiting on its own, and the
    # ordered creates of one container travel together on one connection (pipelined).
    from tiled_core.copy._engine import PIPELINE

    assert dest_proxy.peak_in_flight >= PIPELINE

    ref_src = ref_from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    ref_dst = ref_from_uri(second_server.uri, api_key=second_server.api_key)
    try:
        assert_same_tree(ref_src[top.item["id"]], ref_dst[dest.item["id"]], ordered=True)
        assert list(ref_dst[dest.item["id"]]["flat"]) == [f"k{i:02d}" for i in order]
    finally:
        for client in (ref_src, ref_dst):
            client.context.close()
        for client in (src_root, dst_root, via_source, via_dest):
            client.context.close()
