"""Transport reliability against the real server, through a fault-injecting loopback proxy.

A truncated or malformed response must be an error, never silently wrong
data; transient failures are retried (boundedly), deterministic ones are not;
errors carry status, detail and request id, and never the API key.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from tiled_core.client import from_uri
from tiled_core.transport import (
    AuthenticationError,
    ConnectionFailed,
    MalformedResponse,
    NotFound,
    ServerError,
    Session,
    TiledError,
    TransportError,
    TruncatedResponse,
)


ATTEMPTS = 3
DATA = np.arange(5000, dtype="float64").reshape(50, 100)


@pytest.fixture(scope="module")
def dataset(ref_root):
    """A module-wide container with one array, written by the reference client."""
    key = f"transport-{uuid.uuid4().hex[:8]}"
    container = ref_root.create_container(key, metadata={"purpose": "transport tests"})
    container.write_array(DATA, key="arr")
    return key


@pytest.fixture
def retry_env(monkeypatch):
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", str(ATTEMPTS))
    monkeypatch.setenv("TILED_RETRY_TIMEOUT", "10")


@pytest.fixture
def client(proxy, tiled_server, retry_env, dataset):
    """tiled_core through the proxy; faults and records cleared once connected."""
    c = from_uri(proxy.uri, api_key=tiled_server.api_key)
    c.context.server_info  # fetched now, so tests see only their own requests
    proxy.clear()
    yield c
    proxy.clear()
    c.context.close()


def _no_secret(exc: BaseException, key: str) -> None:
    texts = [str(exc), repr(exc), *getattr(exc, "__notes__", [])]
    for text in texts:
        assert key not in text


def _count(client) -> int:
    return client.context.session.request_count


# ---------------------------------------------------------------- truncation


def test_truncated_array_every_time_is_an_error_after_bounded_retries(client, proxy, dataset, tiled_server):
    arr = client[dataset]["arr"]
    proxy.clear()
    before = _count(client)
    proxy.cut(1000, times=None, match="/array/")
    with pytest.raises(TruncatedResponse) as info:
        arr.read()
    assert info.value.expected == DATA.nbytes
    assert info.value.received == 1000
    assert _count(client) - before == ATTEMPTS
    assert len(proxy.targets()) == ATTEMPTS
    assert any("gave up after" in note for note in getattr(info.value, "__notes__", []))
    _no_secret(info.value, tiled_server.api_key)


def test_truncated_array_once_is_retried_with_correct_data(client, proxy, dataset):
    arr = client[dataset]["arr"]
    proxy.clear()
    before = _count(client)
    proxy.cut(1000, times=1, match="/array/")
    result = arr.read()
    np.testing.assert_array_equal(result, DATA)
    assert _count(client) - before == 2
    assert proxy.faults_applied == 1


def test_truncated_sliced_read_and_block_read(client, proxy, dataset):
    arr = client[dataset]["arr"]
    proxy.cut(10, times=None, match="/array/")
    with pytest.raises(TruncatedResponse):
        arr[3:9, ::-2]
    with pytest.raises(TruncatedResponse):
        arr.read_block((0, 0))
    proxy.clear()
    proxy.cut(10, times=1, match="/array/")
    np.testing.assert_array_equal(arr[3:9, ::-2], DATA[3:9, ::-2])


@pytest.mark.parametrize("cut_at", [0, 1, 64])
def test_truncated_metadata_document(client, proxy, dataset, cut_at, tiled_server):
    proxy.cut(cut_at, times=None, match="/metadata/")
    with pytest.raises(TruncatedResponse) as info:
        client[dataset]
    assert info.value.received == cut_at
    assert info.value.expected > cut_at
    _no_secret(info.value, tiled_server.api_key)


def test_truncated_metadata_once_recovers(client, proxy, dataset):
    proxy.cut(5, times=1, match="/metadata/")
    node = client[dataset]
    assert node.metadata["purpose"] == "transport tests"
    assert proxy.faults_applied == 1


def test_truncated_listing_is_an_error(client, proxy, dataset):
    proxy.cut(20, times=None, match="/search/")
    with pytest.raises(TruncatedResponse):
        list(client[dataset])


def test_truncated_over_httpx_stream_path(proxy, tiled_server, dataset, retry_env):
    """The same guarantee on the httpx path (used when compression is negotiated)."""
    session = Session(proxy.uri, api_key=tiled_server.api_key, compression="gzip")
    try:
        out = np.empty_like(DATA)
        proxy.clear()
        proxy.cut(100, times=None, match="/array/")
        with pytest.raises(TruncatedResponse):
            session.read_into(f"array/full/{dataset}/arr", None, accept="application/octet-stream",
                              out=memoryview(out.reshape(-1).view(np.uint8)))
        assert session.request_count == ATTEMPTS
        proxy.clear()
        proxy.cut(100, times=1, match="/array/")
        session.read_into(f"array/full/{dataset}/arr", None, accept="application/octet-stream",
                          out=memoryview(out.reshape(-1).view(np.uint8)))
        np.testing.assert_array_equal(out, DATA)
    finally:
        session.close()
        proxy.clear()


def test_truncated_export_leaves_no_file(client, proxy, dataset, tmp_path):
    arr = client[dataset]["arr"]
    target = tmp_path / "out.csv"
    proxy.cut(30, times=None, match="/array/full")
    with pytest.raises(TransportError):
        arr.export(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- malformed


def test_wrong_size_array_body_is_malformed(client, proxy, dataset):
    arr = client[dataset]["arr"]
    proxy.respond(200, headers={"content-type": "application/octet-stream"}, body=b"\0" * 7,
                  times=None, match="/array/")
    with pytest.raises(MalformedResponse):
        arr.read()
    proxy.clear()
    proxy.respond(200, headers={"content-type": "application/octet-stream"}, body=b"\0" * (DATA.nbytes + 8),
                  times=None, match="/array/")
    with pytest.raises(MalformedResponse):
        arr.read()


def test_garbage_document_is_malformed(client, proxy, dataset):
    proxy.respond(200, headers={"content-type": "application/x-msgpack"}, body=b"\xc1\xc1\xc1",
                  match="/metadata/")
    with pytest.raises(MalformedResponse):
        client[dataset]
    proxy.respond(200, headers={"content-type": "text/html"}, body=b"<html>login</html>", match="/metadata/")
    with pytest.raises(MalformedResponse):
        client[dataset]


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [503, 429])
def test_transient_status_with_retry_after_is_retried(client, proxy, dataset, status):
    before = _count(client)
    proxy.respond(status, headers={"Retry-After": "0.5", "content-type": "application/json"},
                  body=b'{"detail": "busy"}', match="/metadata/")
    start = time.monotonic()
    node = client[dataset]
    elapsed = time.monotonic() - start
    assert node.metadata["purpose"] == "transport tests"
    assert _count(client) - before == 2
    assert len(proxy.targets()) == 2
    assert elapsed >= 0.45  # the server's Retry-After was honoured


def test_transient_status_on_array_read_is_retried_after_retry_after(client, proxy, dataset):
    arr = client[dataset]["arr"]
    proxy.clear()
    before = _count(client)
    proxy.respond(503, headers={"Retry-After": "0.5"}, body=b"busy", match="/array/")
    start = time.monotonic()
    np.testing.assert_array_equal(arr.read(), DATA)
    assert time.monotonic() - start >= 0.45
    assert _count(client) - before == 2


def test_transient_status_every_time_gives_up(client, proxy, dataset):
    before = _count(client)
    proxy.respond(503, headers={"Retry-After": "0", "content-type": "application/json"},
                  body=b'{"detail": "down for maintenance"}', times=None, match="/metadata/")
    with pytest.raises(ServerError) as info:
        client[dataset]
    assert info.value.status == 503
    assert info.value.detail == "down for maintenance"
    assert _count(client) - before == ATTEMPTS


def test_dropped_connection_is_retried(client, proxy, dataset):
    proxy.drop(match="/metadata/")
    node = client[dataset]
    assert node.metadata["purpose"] == "transport tests"
    assert proxy.faults_applied == 1


def test_dropped_connection_every_time_is_connection_failed(client, proxy, dataset):
    proxy.drop(times=None, match="/metadata/")
    with pytest.raises(ConnectionFailed):
        client[dataset]


def test_500_is_not_retried(client, proxy, dataset):
    before = _count(client)
    proxy.respond(500, headers={"content-type": "application/json", "x-tiled-request-id": "abc123"},
                  body=b'{"detail": "Internal server error"}', times=None, match="/metadata/")
    with pytest.raises(ServerError) as info:
        client[dataset]
    assert _count(client) - before == 1
    assert len(proxy.targets()) == 1
    assert info.value.status == 500
    assert info.value.request_id == "abc123"
    assert "abc123" in str(info.value)


def test_post_is_not_retried_on_503(client, proxy, dataset):
    """The transport never resends a POST on 503; a create without a key cannot be looked up, so it fails."""
    container = client[dataset]
    proxy.clear()
    before = _count(client)
    proxy.respond(503, headers={"Retry-After": "0"}, body=b"busy", method="POST")
    with pytest.raises(ServerError) as info:
        container.create_container()
    assert info.value.status == 503
    assert _count(client) - before == 1
    assert "cannot be looked up" in str(info.value.__notes__)


def test_create_answered_503_is_resolved_by_looking_the_key_up(client, proxy, dataset):
    """503 from a gateway: maybe acted on. The key is looked up (absent) before the one create more."""
    container = client[dataset]
    proxy.clear()
    proxy.respond(503, headers={"Retry-After": "0"}, body=b"busy", method="POST")
    container.create_container("made-after-lookup")
    methods = [method for method, target, _ in proxy.requests if dataset in target]
    assert methods == ["POST", "GET", "POST"]
    assert "made-after-lookup" in container


def test_real_server_500_carries_status_detail_request_id(root, ref_scratch, tiled_server):
    """A wrong-sized upload makes the real server fail with 500: reported, not retried."""
    ref_scratch.write_array(np.zeros(10), key="z")
    session = root.context.session
    before = session.request_count
    with pytest.raises(ServerError) as info:
        session.send("PUT", f"array/full/{ref_scratch.item['id']}/z", content=b"x" * 7,
                     content_type="application/octet-stream")
    error = info.value
    assert error.status == 500
    assert error.detail
    assert error.request_id and len(error.request_id) >= 8
    assert error.request_id in str(error)
    assert session.request_count - before == 1
    _no_secret(error, tiled_server.api_key)


def test_real_server_404_is_not_found_with_request_id(root, tiled_server):
    session = root.context.session
    with pytest.raises(NotFound) as info:
        session.get_document("metadata/no-such-node-anywhere")
    assert info.value.status == 404
    assert "no-such-node-anywhere" in info.value.detail
    assert info.value.request_id
    assert info.value.url.endswith("/metadata/no-such-node-anywhere")
    _no_secret(info.value, tiled_server.api_key)
    with pytest.raises(KeyError):
        root["no-such-node-anywhere"]


def test_404_from_proxy_is_key_error(client, proxy, dataset):
    proxy.respond(404, headers={"content-type": "application/json"}, body=b'{"detail": "No such entry"}',
                  match="/metadata/")
    with pytest.raises(KeyError):
        client[dataset]


def test_wrong_key_error_names_server_not_key(proxy, dataset):
    secret = "s3cret-" + uuid.uuid4().hex
    with pytest.raises(AuthenticationError) as info:
        from_uri(proxy.uri, api_key=secret)
    _no_secret(info.value, secret)
    assert f"127.0.0.1:{proxy.port}" in str(info.value)
    assert info.value.status == 401
    assert info.value.request_id
    # and the key never travelled in a URL
    assert all(secret not in target for target in proxy.targets())
    assert any(headers.get("Authorization") == f"Apikey {secret}" for _, _, headers in proxy.requests)


def test_errors_never_contain_the_key_through_every_failure(client, proxy, dataset, tiled_server):
    key = tiled_server.api_key
    arr = client[dataset]["arr"]
    errors: list[BaseException] = []
    for arm in (
        lambda: proxy.cut(3, times=None),
        lambda: proxy.drop(times=None),
        lambda: proxy.respond(503, headers={"Retry-After": "0"}, body=b"x", times=None),
        lambda: proxy.respond(500, body=b"oops", times=None),
    ):
        proxy.clear()
        arm()
        for action in (lambda: client[dataset], lambda: arr.read(), lambda: list(client[dataset])):
            with pytest.raises(TiledError) as info:
                action()
            errors.append(info.value)
    assert len(errors) == 12
    for error in errors:
        _no_secret(error, key)
        for chained in (error.__cause__, error.__context__):
            if chained is not None:
                _no_secret(chained, key)


def test_a_closed_client_says_so_instead_of_reconnecting(tiled_server):
    """After ``context.close()`` nothing is sent: the bulk path would otherwise open fresh sockets."""
    from tiled_core.transport import ClientClosed

    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    node = client.write_array(np.arange(4), key=f"closed-{uuid.uuid4().hex[:8]}")
    client.context.close()
    before = client.context.session.request_count
    for action in (node.read, lambda: node.read_block((0,)), lambda: list(client), lambda: client.create_container("x")):
        with pytest.raises(ClientClosed, match="closed"):
            action()
    assert client.context.session.request_count == before


# ---------------------------------------------------------------- pipelined, ordered writes
def _creates(parent_path: str, keys) -> list:
    return [(f"metadata/{parent_path}", {"id": key, "structure_family": "container", "metadata": {"key": key},
                                         "specs": [], "data_sources": []}) for key in keys]


def test_ordered_creates_travel_together_and_are_applied_in_order(client, proxy, dataset):
    """``send_in_order``: all requests sent at once on one connection (all inside the slow link together:
    one round trip), applied in order; a clash in the middle is that request's Conflict alone."""
    from tiled_core.transport import Conflict

    parent = client[dataset].create_container()
    keys = [f"k{i:02d}" for i in range(12)]
    proxy.clear()
    proxy.latency(0.3)
    try:
        outcomes = client.context.session.send_in_order("POST", _creates(parent.path, keys[:5] + ["k02"] + keys[5:]))
    finally:
        proxy.latency(0)
    assert [isinstance(o, Conflict) for o in outcomes] == [False] * 5 + [True] + [False] * 7
    assert [o.get("data", o)["id"] for o in outcomes if not isinstance(o, Conflict)] == keys  # each its own reply
    assert list(client[parent.path]) == keys
    assert proxy.peak_in_flight == 13


def test_a_connection_lost_mid_pipeline_fails_the_rest_and_resends_nothing(client, proxy, dataset):
    """The answers before the loss stand; the requests after it fail (applied or not is unknown) and are
    not sent again: nothing is created twice, nothing out of order."""
    parent = client[dataset].create_container()
    keys = [f"k{i:02d}" for i in range(10)]
    proxy.clear()
    proxy.drop(method="POST", skip=4)  # the 5th create: the connection closed unanswered, nothing forwarded
    outcomes = client.context.session.send_in_order("POST", _creates(parent.path, keys))
    assert not any(isinstance(o, Exception) for o in outcomes[:4])
    assert all(isinstance(o, ConnectionFailed) for o in outcomes[4:])
    assert list(client[parent.path]) == keys[:4]
    assert [m for m, _, _ in proxy.requests].count("POST") == 5


def test_refused_credentials_mid_pipeline_are_resent_one_by_one(client, proxy, dataset):
    """401 (an expired token): nothing was applied from there on, so those requests go again through
    ``send``, in order."""
    parent = client[dataset].create_container()
    keys = [f"k{i:02d}" for i in range(6)]
    proxy.clear()
    proxy.status(401, method="POST", skip=2, times=4)  # the pipelined 3rd..6th
    outcomes = client.context.session.send_in_order("POST", _creates(parent.path, keys))
    assert not any(isinstance(o, Exception) for o in outcomes)
    assert list(client[parent.path]) == keys
    assert [m for m, _, _ in proxy.requests].count("POST") == 6 + 4
