"""Bad-input matrix (issue 9, deliverable 3): each input gets a clear, specific error.

Every case names the exception type and a phrase of its message, and, where
the input can be judged without the server, checks that no request was sent
(``context.session.request_count`` of the client, or the fault proxy's
``requests`` for connections that never got a client).

Inputs covered elsewhere, not repeated here:

* URIs ``ftp://``, ``file://``, no scheme, no host; ``structure_clients``
  "cupy", "", "NUMPY", 42; an unreachable (closed loopback) port; wrong key,
  wrong key in the URI, no key: ``test_connect.py``.
* Keys refused for writes (``/ ? #``, control characters, ``%XX``, ``.``,
  ``..``, empty, blank, padded, over 255 bytes) and odd keys that work
  (spaces inside, unicode, emoji, ``\\``, ``%``, ``+&=;``):
  ``test_writes.py::test_keys_the_server_cannot_address_fail_before_any_request``,
  ``::test_unusual_but_addressable_keys_work_in_both_clients``,
  ``test_container.py::test_invalid_keys_fail_before_any_request``; missing
  keys (``""``, ``"n0//leaf"``, ...): ``test_container.py::test_missing_keys``.
* 16 bad selections and 6 bad block indices: ``test_array.py``; object
  arrays: ``test_array.py::test_object_arrays_are_refused``.
* NaN, infinity, sets, objects, complex numbers, non-string keys in metadata:
  ``test_metadata.py::test_metadata_json_cannot_carry_fails_before_any_request``.
* Foreign query objects: ``test_container.py::test_search_rejects_foreign_queries_before_any_request``;
  Regex on the SQL catalog: ``test_queries_encoding.py``.
* Unknown export formats: ``test_array.py::test_unsupported_export_format_is_value_error``,
  ``test_dataframe.py::test_export_columns_and_buffer``.
* Wrong, expired and revoked API keys (created and revoked through the
  server's API): ``test_auth.py::test_api_key_create_use_revoke``,
  ``::test_expired_api_key_is_a_clear_error``.
* Profile files with schema errors (16 kinds), malformed YAML, missing
  environment variables: ``test_profiles.py``.
* Corrupt, foreign and locked cache files, a file damaged while in use:
  ``test_cache.py``.
"""

from __future__ import annotations

import http.server
import socket
import sqlite3
import threading
import uuid

import httpx
import numpy as np
import pytest

from tiled_core import queries
from tiled_core.client import from_context, from_profile, from_uri
from tiled_core.client.cache import Cache
from tiled_core.client.context import Context
from tiled_core.profiles import ProfileError
from tiled_core.queries._base import query_dataclass
from tiled_core.transport import (
    AuthenticationError,
    CacheWarning,
    ConnectionFailed,
    MalformedResponse,
    NotFound,
)

from _checks import running

# ================================================================ fixtures


@pytest.fixture(scope="module")
def client(tiled_server):
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    yield client
    client.context.close()


@pytest.fixture(scope="module")
def box(client):
    """A container for this module, holding ``arr`` (10 int64 in two blocks of 5)."""
    import dask.array as da

    box = client.create_container(f"bad-{uuid.uuid4().hex[:8]}")
    box.write_array(da.arange(10, chunks=5), key="arr")
    return box


@pytest.fixture(scope="module")
def arr(box):
    return box["arr"]


def _count(node) -> int:
    return node.context.session.request_count


@pytest.fixture
def quiet_proxy(proxy):
    """The fault proxy in front of the main server, with nothing recorded yet."""
    proxy.clear()
    yield proxy
    proxy.clear()


# ================================================================ connecting


def _uri_cases(port: int) -> list:
    return [
        # (uri, error, message)
        (None, TypeError, "must be a string"),
        (b"http://127.0.0.1/api/v1", TypeError, "must be a string"),
        ("http://[::1", ValueError, "malformed URI"),
        ("http://127.0.0.1:99999/api/v1", ValueError, "invalid port"),
        ("http://127.0.0.1:abc/api/v1", ValueError, "invalid port"),
        ("http://127.0.0.1:0/api/v1", ValueError, "invalid port"),
        ("http://exa mple.org/api/v1", ValueError, "spaces or control characters"),
        (f"http://user:hunter2@127.0.0.1:{port}/api/v1", ValueError, "no user name or password"),
        (f"ws://127.0.0.1:{port}/api/v1", ValueError, "http:// or https://"),
        (f"http://127.0.0.1:{port}/api/v1/bogus/route", ValueError, "cannot tell which node"),
        (f"http://127.0.0.1:{port}/api /v1", ValueError, "spaces or control characters"),
        (f"http://127.0.0.1:{port}/api/v1???x", ValueError, "query parameters other than api_key"),
        (f"http://127.0.0.1:{port}/api/v1?api_key=k&page=2", ValueError, "query parameters other than api_key"),
        (f"http://127.0.0.1:{port}/api/v1#frag", ValueError, "fragment"),
        (f"http://u:hunter2@127.0.0.1:{port}/api/v1#x", ValueError, "fragment"),
    ]


@pytest.mark.parametrize("case", range(15), ids=["None", "bytes", "open-ipv6", "port-99999", "port-abc", "port-0",
                                                  "space-in-host", "user-password", "ws-scheme", "unknown-route",
                                                  "space-in-path", "junk-query", "other-query", "fragment",
                                                  "password-and-fragment"])
def test_malformed_and_unsupported_uris(quiet_proxy, case):
    uri, error, message = _uri_cases(quiet_proxy.port)[case]
    with pytest.raises(error, match=message) as info:
        from_uri(uri, api_key="k")
    assert "hunter2" not in str(info.value)  # a password in a URI is never echoed
    assert quiet_proxy.requests == []


SETTINGS = {
    "timeout=0": ({"timeout": 0}, ValueError, "positive, finite"),
    "timeout=-1": ({"timeout": -1}, ValueError, "positive, finite"),
    "timeout=nan": ({"timeout": float("nan")}, ValueError, "positive, finite"),
    "timeout=inf": ({"timeout": float("inf")}, ValueError, "positive, finite"),
    "timeout read=0": ({"timeout": {"read": 0}}, ValueError, "timeout 'read'"),  # was a non-blocking socket
    "timeout=True": ({"timeout": True}, TypeError, "not bool"),
    "timeout='10'": ({"timeout": "10"}, TypeError, "not str"),
    "max_connections=0": ({"max_connections": 0}, ValueError, "at least 1"),
    "max_connections=1.5": ({"max_connections": 1.5}, TypeError, "whole number"),
    "header line break": ({"headers": {"X-Note": "a\r\nX-Evil: 1"}}, ValueError, "printable ASCII"),
    "header non-string": ({"headers": {"X-Note": 1}}, TypeError, "both strings"),
    "api_key unicode": ({"api_key": "ключ-secret"}, ValueError, "printable ASCII"),
    "api_key line break": ({"api_key": "abc\nsecret"}, ValueError, "whitespace"),
    "api_key empty": ({"api_key": ""}, ValueError, "api_key is empty"),
    "verify missing file": ({"verify": "/no/such/ca-bundle.pem"}, FileNotFoundError, "ca-bundle.pem"),
    "structure_clients unimportable": ({"structure_clients": {"array": "no.such.module:X"}}, ValueError,
                                       "cannot be loaded"),
    "structure_clients no class": ({"structure_clients": {"array": "tiled_core.client.array"}}, ValueError,
                                   "package.module:ClassName"),
    "structure_clients not a class": ({"structure_clients": {"array": 42}}, TypeError, "client class"),
    "structure_clients list": ({"structure_clients": ["numpy"]}, TypeError, "'numpy', 'dask' or a mapping"),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_bad_connection_settings_fail_before_any_request(quiet_proxy, tiled_server, name):
    kwargs, error, message = SETTINGS[name]
    kwargs = {"api_key": tiled_server.api_key, **kwargs}
    with pytest.raises(error, match=message) as info:
        from_uri(quiet_proxy.uri, **kwargs)
    assert "secret" not in str(info.value)
    assert quiet_proxy.requests == []


def test_an_empty_api_key_is_refused_even_with_tiled_api_key_set(quiet_proxy, monkeypatch, tiled_server):
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    with pytest.raises(ValueError, match="api_key is empty"):
        from_uri(quiet_proxy.uri, api_key="")
    assert quiet_proxy.requests == []


def test_profile_values_the_client_refuses_name_the_profile(tmp_path, monkeypatch, tiled_server, quiet_proxy):
    """Values the profile schema accepts but the client refuses (schema errors: see test_profiles.py)."""
    import yaml

    monkeypatch.setenv("TILED_PROFILES", str(tmp_path))
    monkeypatch.setenv("TILED_SITE_PROFILES", str(tmp_path / "none"))
    profiles = {
        "zero": {"uri": quiet_proxy.uri, "timeout": 0},
        "ftp": {"uri": "ftp://127.0.0.1/api/v1"},
        "header": {"uri": quiet_proxy.uri, "headers": {"X-Note": "a\nb"}},
    }
    (tmp_path / "lab.yml").write_text(yaml.safe_dump(profiles))
    for name, message in (("zero", "positive"), ("ftp", "http:// or https://"), ("header", "printable ASCII")):
        with pytest.raises(ProfileError, match=f"profile '{name}' in .*lab.yml: .*{message}"):
            from_profile(name, api_key=tiled_server.api_key)
    assert quiet_proxy.requests == []


def test_https_to_a_plain_server_fails_at_once(tiled_server):
    context = Context(tiled_server.uri.replace("http://", "https://"), api_key=tiled_server.api_key)
    try:
        with pytest.raises(ConnectionFailed, match="TLS handshake .* plain http:// server"):
            from_context(context)
        assert context.session.request_count == 1  # the same next time: not retried
    finally:
        context.close()


def test_a_path_with_no_tiled_api_is_not_an_unknown_node(tiled_server):
    with pytest.raises(NotFound, match="no Tiled API at") as info:
        from_uri(f"{tiled_server.root_uri}/nope/api/v1", api_key=tiled_server.api_key)
    assert not isinstance(info.value, KeyError)  # was KeyError('')


# ---------------------------------------------------------------- servers that answer garbage


class _Garbage(http.server.BaseHTTPRequestHandler):
    """A non-Tiled web server: an HTML page, a JSON document, a redirect loop."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/json"):
            body, kind = b'{"status": "ok", "version": "1.0"}', "application/json"
        else:
            body, kind = b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Listener:
    """A TCP listener on loopback that answers every connection with ``reply`` bytes (or nothing) and closes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.connections = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(5)
            with conn:
                if not self.reply:
                    continue
                try:
                    conn.recv(65536)  # the request, so that closing does not reset the connection
                    conn.sendall(self.reply)
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(65536)  # until the client hangs up
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone would not
        except OSError:
            pass
        self._socket.close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def few_retries(monkeypatch):
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("TILED_RETRY_TIMEOUT", "5")


@pytest.mark.parametrize("path, message", [
    ("/html", "expected a msgpack or JSON document, got text/html"),
    ("/json", "not a Tiled node document"),  # was KeyError('data'), as if a node were missing
    ("/loop", "too many redirects"),  # was a raw httpx.TooManyRedirects
])
def test_a_web_server_that_is_not_tiled(web_server, path, message, few_retries):
    with pytest.raises(MalformedResponse, match=message):
        from_uri(web_server + path, api_key="k", timeout=5)


@pytest.mark.parametrize("reply, error, message, attempts", [
    (bytes(range(256)) * 4, MalformedResponse, "not valid HTTP", 1),  # not retried: it would answer the same
    (b"HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n", MalformedResponse, "not valid HTTP", 1),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-msgpack\r\nContent-Encoding: gzip\r\n"
     b"Content-Length: 5\r\n\r\nabcde", MalformedResponse, "Content-Encoding", 1),
    (b"", ConnectionFailed, "connection broke", 2),  # accepts and hangs up: retried (bounded), then reported
], ids=["binary", "bad-content-length", "bad-gzip", "hang-up"])
def test_a_tcp_listener_that_does_not_speak_http(reply, error, message, attempts, few_retries):
    listener = _Listener(reply)
    try:
        with pytest.raises(error, match=message) as info:
            from_uri(f"http://127.0.0.1:{listener.port}/api/v1", api_key="k", timeout=5)
        assert f"127.0.0.1:{listener.port}" in str(info.value)
        assert listener.connections == attempts
    finally:
        listener.close()


# ================================================================ keys


@pytest.mark.parametrize("key, error", [
    ("..", KeyError),  # was the parent container (URL normalisation)
    (".", KeyError),  # was the container itself
    ("arr/../arr", KeyError),
    (5, TypeError),
    (("arr", 5), TypeError),  # was KeyError
    (None, TypeError),
])
def test_lookups_of_keys_no_node_can_have(box, key, error):
    before = _count(box)
    with pytest.raises(error):
        box[key]
    assert _count(box) == before


def test_keys_stored_through_the_raw_api_are_readable(box, tiled_server):
    """``?``, ``#`` and spaces: refused for writes (the reference client cannot address them),
    but a node another program stored under such a key is read correctly (keys are URL-quoted)."""
    odd = ["q?x=1", "frag#1", "two words", "ünï"]
    for key in odd:
        response = httpx.post(f"{tiled_server.uri}/metadata/{box.path}",
                              json={"id": key, "structure_family": "container", "metadata": {"key": key},
                                    "specs": [], "data_sources": []},
                              headers={"Authorization": f"Apikey {tiled_server.api_key}"})
        assert response.status_code == 200, response.text
    for key in odd:
        assert box[key].metadata["key"] == key
    assert set(odd) <= set(box.keys())
    with pytest.raises(ValueError, match="cannot carry"):
        box.create_container("q?x=2")


# ================================================================ writing where one cannot


def test_deleting_the_root_or_a_parent_is_refused_before_any_request(client, box):
    keys_before = sorted(box.keys())
    before = _count(box)
    with pytest.raises(KeyError):
        box.delete_contents(keys=[".."], recursive=True, external_only=False)  # was DELETE of the root's children
    with pytest.raises(KeyError):
        client.delete_contents(keys=["/"])
    for key in ("", "/", ".."):
        with pytest.raises(ValueError, match="key"):
            client.delete(key, recursive=True)
    assert _count(box) == before
    assert sorted(box.keys()) == keys_before


def test_writing_into_an_array_node(arr, box, tiled_server):
    before = _count(arr)
    with pytest.raises(AttributeError, match="write_array"):
        arr.write_array(np.arange(3), key="child")
    with pytest.raises(AttributeError, match="create_container"):
        arr.create_container("child")
    with pytest.raises(TypeError, match="index for axis 0"):
        arr["child"]
    assert _count(arr) == before
    with pytest.raises(KeyError):  # one request: the server has no such node under an array
        from_uri(f"{tiled_server.uri}/metadata/{box.path}/arr/child", api_key=tiled_server.api_key)


@pytest.fixture(scope="module")
def public_server(killable_server):
    """A server that lets anyone read (``--public``) but only the key holder write: the session's killable one."""
    return running(killable_server)


def test_anonymous_writes_to_a_public_server(public_server, monkeypatch):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    owner = from_uri(public_server.uri, api_key=public_server.api_key)
    anonymous = from_uri(public_server.uri)
    try:
        key = f"shared-{uuid.uuid4().hex[:8]}"
        owner.create_container(key, metadata={"v": 1}).write_array(np.arange(3), key="a")
        node = anonymous[key]
        np.testing.assert_array_equal(node["a"].read(), np.arange(3))  # reading is allowed
        attempts = {
            "write_array": lambda: node.write_array(np.arange(3), key="b"),
            "create_container": lambda: node.create_container("c"),
            "update_metadata": lambda: node.update_metadata({"v": 2}),
            "write": lambda: node["a"].write(np.zeros(3, dtype=int)),
            "delete": lambda: node.delete("a"),
        }
        for what, attempt in attempts.items():
            with pytest.raises(AuthenticationError, match="Requires scopes") as info:
                attempt()
            assert info.value.status == 401, what
        shared = owner[key]
        assert list(shared.keys()) == ["a"] and dict(shared.metadata) == {"v": 1}
        np.testing.assert_array_equal(shared["a"].read(), np.arange(3))
    finally:
        owner.context.close()
        anonymous.context.close()


# ================================================================ selections and blocks


@pytest.mark.parametrize("call, error, message", [
    (lambda a: a.read(True), TypeError, "boolean"),  # was read as index 1 (numpy: a new axis)
    (lambda a: a[False], TypeError, "boolean"),
    (lambda a: a.read(np.array([0, 1])), TypeError, "not ndarray"),  # was "truth value ... is ambiguous"
    (lambda a: a.read(10**30), IndexError, "out of bounds"),
    (lambda a: a.read(-(10**30)), IndexError, "out of bounds"),
    (lambda a: a.read_block((True,)), TypeError, "boolean"),  # was block 1
    (lambda a: a.read_block((10**30,)), IndexError, "out of range"),
    (lambda a: a.read_block(np.array([0])), TypeError, "not ndarray"),
], ids=["True", "False", "index-array", "huge", "huge-negative", "block-True", "block-huge", "block-array"])
def test_absurd_selections_and_blocks(arr, call, error, message):
    before = _count(arr)
    with pytest.raises(error, match=message):
        call(arr)
    assert _count(arr) == before


@pytest.mark.parametrize("selection", [(Ellipsis, None), (None, slice(2, 7)), (3, None), (None, Ellipsis, None)],
                         ids=["trailing", "leading", "after-int", "around-ellipsis"])
def test_numpy_newaxis_in_selections(arr, box, tiled_server, selection):
    expected = np.arange(10)[selection]
    got = arr[selection]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    lazy = from_uri(box.uri, api_key=tiled_server.api_key, structure_clients="dask")["arr"]
    np.testing.assert_array_equal(lazy[selection].compute(), expected)
    lazy.context.close()


def test_a_masked_array_is_refused_not_stored_without_its_mask(box, arr):
    masked = np.ma.masked_array(np.arange(5.0), mask=[0, 1, 0, 0, 1])
    before = _count(box)
    with pytest.raises(TypeError, match="masked arrays cannot be written.*filled"):
        box.write_array(masked, key="masked")
    with pytest.raises(TypeError, match="masked arrays"):
        arr.write_block(np.ma.masked_array(np.arange(5), mask=[1, 0, 0, 0, 0]), (0,))
    assert _count(box) == before


def test_a_row_multiindex_is_refused_before_the_create(box):
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"], "v": [0.5, 1.5, 2.5]}).set_index(["a", "b"])
    before = _count(box)
    with pytest.raises(ValueError, match=r"MultiIndex \(\['a', 'b'\]\).*reset_index"):
        box.write_dataframe(frame, key="multi")
    assert _count(box) == before
    node = box.write_dataframe(frame.reset_index(), key="multi")  # what the message says to do reads back
    pd.testing.assert_frame_equal(node.read(), frame.reset_index(), check_dtype=False)


# ================================================================ dtypes


@pytest.mark.parametrize("dtype, message", [
    ("float128", "no float128 type"),
    ("complex256", "no complex256 type"),
    ("M8", "no time unit"),  # was a node created and left empty (500 on the data)
    ("m8", "no time unit"),
    ("V0", "zero-length"),
    ([("a", "f8", (2,))], "sub-array"),
    ([("a", "i4"), ("raw", "V4")], "void"),
    ([("a", "f16")], "field 'a'"),
], ids=["float128", "complex256", "datetime64-generic", "timedelta64-generic", "V0", "subarray-field",
        "void-field", "float128-field"])
def test_dtypes_the_server_cannot_store(box, dtype, message):
    before = _count(box)
    with pytest.raises(TypeError, match=message):
        box.write_array(np.zeros(3, dtype=dtype), key="dtype-case")
    assert _count(box) == before


def test_dtypes_at_the_edge_that_the_server_stores(box):
    """Kept apart from the refused ones above: they round-trip (checked against tiled 0.2.20)."""
    for i, dtype in enumerate(["V3", "M8[10s]", [("a", "i4"), ("b", "U2")], ">f8"]):
        data = np.zeros(3, dtype=dtype)
        node = box.write_array(data, key=f"edge-{i}")
        assert node.read().dtype == data.dtype


# ================================================================ metadata and specs


def _nested(levels: int):
    value = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("metadata, error, message", [
    (_nested(251), ValueError, "nested more than 250 levels"),  # was "of type dict is not JSON-serialisable"
    (_nested(5000), ValueError, "nested more than 250 levels"),  # was RecursionError
    ({"x": [[], _nested(260)]}, ValueError, r"metadata\['x'\]\[1\]"),
    ({"text": "ok\ud800"}, ValueError, "not valid Unicode"),  # a lone surrogate
    ({"ok\udfff": 1}, ValueError, "not valid Unicode"),
    ({"big": 2**64}, ValueError, "beyond the 64 bits"),
    ({"small": -(2**63) - 1}, ValueError, "beyond the 64 bits"),
], ids=["depth-251", "depth-5000", "deep-inside-list", "surrogate-value", "surrogate-key", "int-2**64",
        "int-below-int64"])
def test_metadata_json_cannot_carry(box, metadata, error, message):
    node = box["arr"]
    before = _count(box)
    with pytest.raises(error, match=message):
        box.create_container("meta-case", metadata=metadata)
    with pytest.raises(error, match=message):
        node.update_metadata(metadata)
    assert _count(box) == before


def test_metadata_at_the_limits_round_trips(box, client):
    """250 levels, 64-bit integers and a 2 MiB string are stored as given: the server (tiled 0.2.20)
    has no size limit for metadata (64 MB was accepted in a trial), only its JSON encoder's depth."""
    metadata = {"deep": _nested(249), "ints": [2**64 - 1, -(2**63)], "blob": "x" * (2 << 20)}
    box.create_container("limits", metadata=metadata)
    assert client[box.path]["limits"].metadata.to_dict() == metadata
    node = box["limits"]
    node.update_metadata({"deep2": _nested(249), "more": 1})  # a JSON Patch wraps it in two more levels
    assert box["limits"].metadata["more"] == 1 and box["limits"].metadata.to_dict()["deep2"] == _nested(249)


def test_too_many_specs(box):
    before = _count(box)
    with pytest.raises(ValueError, match="at most 20"):  # the server's 422, now before sending
        box.create_container("specs-case", specs=[f"spec{i}" for i in range(21)])
    assert _count(box) == before
    assert len(box.create_container("specs-20", specs=[f"spec{i}" for i in range(20)]).specs) == 20


# ================================================================ queries


@query_dataclass
class _Approx(queries.Query):
    """A query type of one's own that no server knows."""

    name = "approx"
    key: str = "x"

    def __post_init__(self) -> None:
        self._encode_now()

    def _fields(self):
        return [("key", self.key)]


def test_unknown_query_type_is_refused(box):
    box.context.server_info  # noqa: B018 -- fetched once per context; the check itself sends nothing
    before = _count(box)
    with pytest.raises(ValueError, match="does not support the query type 'approx'"):
        box.search(_Approx())  # the server ignored it: the search matched everything
    assert _count(box) == before


# ================================================================ the response cache


DAMAGE = {
    "truncated body": "UPDATE bodies SET body = substr(body, 1, 7)",
    "garbled body": "UPDATE bodies SET body = randomblob(length(body))",  # same length: caught by the checksum
    "missing body": "DELETE FROM bodies",
    "unreadable headers": "UPDATE responses SET headers = 'not json'",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_entry_is_dropped_and_fetched_again(tiled_server, box, tmp_path, damage):
    path = tmp_path / "cache.db"
    first = from_uri(tiled_server.uri, api_key=tiled_server.api_key, cache=Cache(path))
    try:
        first[box.path]["arr"].read()
    finally:
        first.context.close()
    stored = Cache(path).count()
    assert stored >= 3
    with sqlite3.connect(path) as conn:
        conn.execute(DAMAGE[damage])
    cache = Cache(path)
    with pytest.warns(CacheWarning, match="dropped a damaged entry"):
        again = from_uri(tiled_server.uri, api_key=tiled_server.api_key, cache=cache)
        try:
            np.testing.assert_array_equal(again[box.path]["arr"].read(), np.arange(10))
        finally:
            again.context.close()
    assert cache.usable and cache.count() == stored  # rebuilt entry by entry
