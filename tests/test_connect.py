"""Connecting: from_uri / from_context / Context constructors, credentials, round trips.

Against the real server (and an in-process app for ``Context.from_app``). A
loopback proxy (tests/_proxy.py) sees every request either client sends, so
round trips and URLs can be counted and inspected from outside the client.
"""

from __future__ import annotations

import http.client
import pickle
import time
import uuid

import httpx
import numpy as np
import pytest

from tiled_core.client import from_context, from_uri
from tiled_core.client.array import ArrayClient, DaskArrayClient
from tiled_core.client.container import Container
from tiled_core.client.context import Context
from tiled_core.transport import AuthenticationError, ConnectionFailed



@pytest.fixture(scope="module")
def tree(ref_root):
    """``<a>/b`` (a container) holding ``c`` (an array), written by the reference client."""
    a = f"conn-{uuid.uuid4().hex[:8]}"
    node = ref_root.create_container(a, metadata={"level": "a"})
    b = node.create_container("b", metadata={"level": "b"})
    b.write_array(np.arange(6, dtype="int32").reshape(2, 3), key="c", metadata={"level": "c"})
    return a


@pytest.fixture
def no_env_key(monkeypatch):
    monkeypatch.delenv("TILED_API_KEY", raising=False)


@pytest.fixture
def no_requests(monkeypatch):
    """Any attempt to send a request fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(httpx.Client, "send", refuse)
    monkeypatch.setattr(http.client.HTTPConnection, "request", refuse)


def _close(client) -> None:
    client.context.close()


# ---------------------------------------------------------------- URI forms


def test_from_server_root_uri(tiled_server, tree, no_env_key):
    client = from_uri(tiled_server.root_uri, api_key=tiled_server.api_key)
    try:
        assert isinstance(client, Container)
        assert client.path_parts == ()
        assert client.context.api_uri == tiled_server.uri + "/"
        assert tree in client
    finally:
        _close(client)


@pytest.mark.parametrize("suffix", ["", "/"])
def test_from_api_uri(tiled_server, tree, suffix, no_env_key):
    client = from_uri(tiled_server.uri + suffix, api_key=tiled_server.api_key)
    try:
        assert client.context.api_uri == tiled_server.uri + "/"
        assert client[tree].metadata["level"] == "a"
    finally:
        _close(client)


def test_from_node_uri(tiled_server, tree, no_env_key):
    client = from_uri(f"{tiled_server.uri}/metadata/{tree}/b", api_key=tiled_server.api_key)
    try:
        assert isinstance(client, Container)
        assert client.path_parts == (tree, "b")
        assert client.metadata["level"] == "b"
        assert [k for k in client] == ["c"]
        assert client.context.session.request_count == 2  # from_uri + one page of listing
        array = from_uri(f"{tiled_server.uri}/metadata/{tree}/b/c", api_key=tiled_server.api_key)
        try:
            assert isinstance(array, ArrayClient)
            np.testing.assert_array_equal(array.read(), np.arange(6).reshape(2, 3))
        finally:
            _close(array)
    finally:
        _close(client)


def test_from_node_uri_with_other_route(tiled_server, tree, no_env_key):
    client = from_uri(f"{tiled_server.uri}/array/full/{tree}/b/c", api_key=tiled_server.api_key)
    try:
        assert client.path_parts == (tree, "b", "c")
        assert client.shape == (2, 3)
    finally:
        _close(client)


def test_unknown_node_is_key_error(tiled_server, no_env_key):
    with pytest.raises(KeyError):
        from_uri(f"{tiled_server.uri}/metadata/no-such-{uuid.uuid4().hex}", api_key=tiled_server.api_key)


def test_unknown_nested_node_is_key_error(tiled_server, tree, no_env_key):
    with pytest.raises(KeyError):
        from_uri(f"{tiled_server.uri}/metadata/{tree}/b/nope", api_key=tiled_server.api_key)


# ---------------------------------------------------------------- credentials


def test_api_key_in_uri_moves_to_a_header(proxy, tiled_server, tree, no_env_key):
    key = tiled_server.api_key
    proxy.clear()
    client = from_uri(f"{proxy.uri}/metadata/{tree}?api_key={key}")
    try:
        seen_by_httpx: list[str] = []
        client.context.session._http.event_hooks["request"].append(lambda request: seen_by_httpx.append(str(request.url)))
        assert client.metadata["level"] == "a"
        assert list(client) == ["b"]
        np.testing.assert_array_equal(client["b"]["c"].read(), np.arange(6).reshape(2, 3))  # bulk path too
        client.context.server_info
        assert len(seen_by_httpx) >= 3
        assert all(key not in url for url in seen_by_httpx)
        assert len(proxy.requests) >= 4
        for _, target, headers in proxy.requests:
            assert key not in target
            assert "api_key" not in target
            assert headers.get("Authorization") == f"Apikey {key}"
        for text in (repr(client), client.uri, repr(client.context), client.context.api_uri,
                     repr(client.context.session), repr(client["b"]["c"])):
            assert key not in text
    finally:
        _close(client)
        proxy.clear()


def test_api_key_from_environment(tiled_server, tree, monkeypatch):
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    client = from_uri(tiled_server.uri)
    try:
        assert client[tree]["b"].metadata["level"] == "b"
    finally:
        _close(client)


def test_explicit_key_beats_environment(tiled_server, tree, monkeypatch):
    monkeypatch.setenv("TILED_API_KEY", "wrong-" + uuid.uuid4().hex)
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        assert tree in client
    finally:
        _close(client)


def test_wrong_api_key(tiled_server, no_env_key):
    secret = "not-the-key-" + uuid.uuid4().hex
    with pytest.raises(AuthenticationError) as info:
        from_uri(tiled_server.uri, api_key=secret)
    message = str(info.value)
    assert secret not in message and secret not in repr(info.value)
    assert f"127.0.0.1:{tiled_server.port}" in message
    assert info.value.status == 401


def test_wrong_api_key_in_uri(tiled_server, no_env_key):
    secret = "not-the-key-" + uuid.uuid4().hex
    with pytest.raises(AuthenticationError) as info:
        from_uri(f"{tiled_server.uri}?api_key={secret}")
    assert secret not in str(info.value)
    assert secret not in info.value.url


def test_no_api_key(tiled_server, no_env_key):
    with pytest.raises(AuthenticationError) as info:
        from_uri(tiled_server.uri)
    assert f"127.0.0.1:{tiled_server.port}" in str(info.value)


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("uri", ["ftp://127.0.0.1/api/v1", "file:///tmp/x", "127.0.0.1:8000", "http:///api/v1"])
def test_bad_uri_is_value_error_before_any_request(uri, no_requests, no_env_key):
    with pytest.raises(ValueError):
        from_uri(uri, api_key="x")


@pytest.mark.parametrize("bad", ["cupy", "", "NUMPY"])
def test_bad_structure_clients_is_value_error_before_any_request(tiled_server, bad, no_requests):
    with pytest.raises(ValueError):
        from_uri(tiled_server.uri, structure_clients=bad, api_key=tiled_server.api_key)


def test_bad_structure_clients_type(tiled_server, no_requests):
    with pytest.raises(TypeError):
        from_uri(tiled_server.uri, structure_clients=42, api_key=tiled_server.api_key)


def test_structure_clients_dask_and_numpy(tiled_server, tree, no_env_key):
    for name, cls in (("numpy", ArrayClient), ("dask", DaskArrayClient)):
        client = from_uri(tiled_server.uri, structure_clients=name, api_key=tiled_server.api_key)
        try:
            node = client[tree]["b"]["c"]
            assert type(node) is cls
            result = node.read()
            if name == "dask":
                assert hasattr(result, "dask") and not isinstance(result, np.ndarray)
                result = result.compute()
            else:
                assert isinstance(result, np.ndarray)
            np.testing.assert_array_equal(result, np.arange(6).reshape(2, 3))
        finally:
            _close(client)


def test_unreachable_server_is_connection_failed(monkeypatch, no_env_key):
    monkeypatch.setenv("TILED_RETRY_TIMEOUT", "0.5")
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "3")
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        from_uri(f"http://127.0.0.1:{port}/api/v1", api_key="secret-xyz", timeout=2)
    assert time.monotonic() - start < 10
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "secret-xyz" not in str(info.value)


# ---------------------------------------------------------------- round trips


def test_from_uri_costs_one_request(tiled_server, no_env_key):
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        assert client.context.session.request_count == 1
        repr(client)
        assert client.context.session.request_count == 1
    finally:
        _close(client)


def test_from_uri_round_trips_vs_reference(proxy, tiled_server, tree, monkeypatch, no_env_key):
    """Counted twice: by the proxy (every request on the wire) and by patching httpx.Client.send."""
    from tiled.client import from_uri as ref_from_uri

    sent: list[str] = []
    original = httpx.Client.send

    def counting_send(self, request, *args, **kwargs):
        sent.append(str(request.url))
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", counting_send)

    proxy.clear()
    ref = ref_from_uri(f"{proxy.uri}/metadata/{tree}", api_key=tiled_server.api_key)
    ref_wire, ref_httpx = len(proxy.requests), len(sent)
    ref.context.close()

    proxy.clear()
    sent.clear()
    ours = from_uri(f"{proxy.uri}/metadata/{tree}", api_key=tiled_server.api_key)
    try:
        our_wire, our_httpx = len(proxy.requests), len(sent)
        assert ours.context.session.request_count == 1
        assert our_wire == our_httpx == 1
        assert ref_wire >= 1 and ref_httpx >= 1
        assert our_wire <= ref_wire
        assert our_httpx <= ref_httpx
        assert ours.metadata == dict(ref.metadata)
    finally:
        _close(ours)
        proxy.clear()


# ---------------------------------------------------------------- contexts


def test_from_context_root_and_node(tiled_server, tree, no_env_key):
    context = Context(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        assert context.session.request_count == 0  # constructing sends nothing
        root = from_context(context)
        assert root.path_parts == ()
        node = from_context(context, node_path_parts=[tree, "b"])
        assert node.path_parts == (tree, "b")
        assert node.metadata["level"] == "b"
        assert context.session.request_count == 2
        dask_node = from_context(context, "dask", node_path_parts=[tree, "b", "c"])
        assert isinstance(dask_node, DaskArrayClient)
        with pytest.raises(KeyError):
            from_context(context, node_path_parts=[tree, "zzz"])
        with pytest.raises(ValueError):
            from_context(context, "bogus")
    finally:
        context.close()


def test_context_from_any_uri(tiled_server, tree, no_env_key):
    context, parts = Context.from_any_uri(f"{tiled_server.uri}/metadata/{tree}/b", api_key=tiled_server.api_key)
    try:
        assert parts == [tree, "b"]
        assert context.api_uri == tiled_server.uri + "/"
        assert context.session.request_count == 0
        node = from_context(context, node_path_parts=parts)
        assert node.metadata["level"] == "b"
    finally:
        context.close()
    context, parts = Context.from_any_uri(tiled_server.root_uri)
    try:
        assert parts == []
        assert context.api_uri == tiled_server.uri + "/"
    finally:
        context.close()
    context, parts = Context.from_any_uri(f"{tiled_server.uri}?api_key=abc")
    try:
        assert parts == []
        assert context.session.has_api_key
        assert "abc" not in context.api_uri
    finally:
        context.close()
    with pytest.raises(ValueError):
        Context.from_any_uri("ftp://127.0.0.1/api/v1")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")  # starlette's own notice
def test_context_from_app_in_process(tmp_path):
    """An in-process ASGI app (tiled.catalog.in_memory + build_app): write with tiled_core, read back."""
    pytest.importorskip("tiled.server")
    from tiled.catalog import in_memory
    from tiled.config import Authentication
    from tiled.server.app import build_app

    (tmp_path / "data").mkdir()
    tree = in_memory(writable_storage=[str(tmp_path / "data"), f"duckdb:///{tmp_path}/data.duckdb"])
    key = "inprocess" + uuid.uuid4().hex[:8]  # the server accepts alphanumeric keys only
    app = build_app(tree, authentication=Authentication(single_user_api_key=key))
    context = Context.from_app(app)
    try:
        root = from_context(context)
        assert list(root) == []
        data = np.linspace(0, 1, 24).reshape(4, 6)
        written = root.write_array(data, key="x", metadata={"source": "test"}, dims=["row", "col"])
        sub = root.create_container("sub", metadata={"k": 1})
        sub.write_array(np.arange(3, dtype="uint8"), key="y")
        assert written.shape == (4, 6)
        assert list(root) == ["x", "sub"]
        back = root["x"]
        np.testing.assert_array_equal(back.read(), data)
        np.testing.assert_array_equal(back[1:3, ::-2], data[1:3, ::-2])
        assert back.metadata == {"source": "test"}
        assert back.dims == ("row", "col")
        np.testing.assert_array_equal(root["sub/y"].read(), np.arange(3, dtype="uint8"))
        assert key not in repr(context) and key not in context.api_uri
        with pytest.raises(TypeError, match="from_app"):  # the app lives in this process (as with the reference)
            pickle.dumps(root)
    finally:
        context.close()
