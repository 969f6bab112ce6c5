"""The scripting and debugging surface of a Context, against the real servers of conftest.

``Context.http_client`` (raw requests with the context's credential),
``record_history``/``show_logs``, ``tiled_core.client.utils``, the prompt hooks
``username_input``/``password_input``, the class-level limits, ``smoke.read``,
and errors that are ``httpx.HTTPStatusError``s too.
"""

from __future__ import annotations

import logging
import pickle
import uuid

import httpx
import numpy as np
import pandas as pd
import pytest

from tiled_core.client import context as context_module
from tiled_core.client import hide_logs, record_history, show_logs
from tiled_core.client.array import ArrayClient
from tiled_core.client.base import BaseClient
from tiled_core.client.context import Context
from tiled_core.client.login._password import CannotPrompt
from tiled_core.client.smoke import read as smoke_read
from tiled_core.client.transport import Transport
from tiled_core.client.utils import ClientError, handle_error, retry_context, should_retry
from tiled_core.structures import Spec
from tiled_core.transport import NotFound


@pytest.fixture(scope="module")
def box(tiled_server):
    """A fresh container with a chunked array and a wide table, through tiled_core."""
    from tiled_core.client import from_uri

    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    node = client.create_container(f"ctx-{uuid.uuid4().hex[:10]}")
    node.write_array(np.arange(6 * 50 * 40, dtype="f8").reshape(6, 50, 40), key="cube")
    node.write_dataframe(pd.DataFrame({f"column_{i:03d}": np.arange(3) for i in range(60)}), key="wide")
    yield node
    client.context.close()


def test_http_client_carries_the_credential_and_is_recorded(box, tiled_server, caplog):
    http = box.context.http_client
    url = box.context.api_uri + f"metadata/{box.path}/cube"
    with record_history() as history:
        reply = http.get(url)
    assert reply.status_code == 200 and reply.json()["data"]["id"] == "cube"
    assert [r.url for r in history.requests] == [httpx.URL(url)]
    assert history.responses[0].status_code == 200
    # Without the context's credential the same request is refused.
    assert httpx.get(url).status_code == 401
    show_logs()
    try:
        with caplog.at_level(logging.DEBUG, logger="tiled_core.client"):
            box["cube"].read(slice=(0, 0))
    finally:
        hide_logs()
    lines = [r.getMessage() for r in caplog.records if r.name == "tiled_core.client"]
    assert any("array/full" in line for line in lines)
    assert any("authorization:Apikey [redacted]" in line for line in lines)
    for text in [*lines, repr(http), repr(box.context), repr(history), str(history)]:
        assert tiled_server.api_key not in text


def test_errors_are_http_status_errors(box):
    http = box.context.http_client
    with pytest.raises(NotFound) as raised:
        handle_error(http.get(box.context.api_uri + f"metadata/{box.path}/nope"))
    assert isinstance(raised.value, httpx.HTTPStatusError) and isinstance(raised.value, ClientError)
    assert raised.value.response.status_code == 404
    assert raised.value.request.url.path.endswith("/nope")
    with pytest.raises(httpx.HTTPStatusError) as raised:  # our own request path too
        box.context.session.get_document(f"metadata/{box.path}/nope")
    assert raised.value.response.status_code == 404 and raised.value.response.request is raised.value.request
    copy = pickle.loads(pickle.dumps(raised.value))  # no request (with its credential header) inside
    assert copy.status == raised.value.status and b"Apikey" not in pickle.dumps(raised.value)
    assert should_retry(raised.value) is False


def test_api_key_property_switches_credentials(box, tiled_server):
    context = Context(tiled_server.uri)
    try:
        assert context.api_key is None and not context.authenticated
        with pytest.raises(ValueError):
            context.api_key = "has space"  # refused before any request
        context.api_key = tiled_server.api_key
        assert context.http_client.get(context.api_uri + f"metadata/{box.path}").status_code == 200
        context.api_key = None
        assert context.http_client.get(context.api_uri + f"metadata/{box.path}").status_code == 401
    finally:
        context.close()


def test_response_size_limit_splits_reads(box, monkeypatch):
    cube = box["cube"]
    frame = 50 * 40 * 8
    monkeypatch.setattr(ArrayClient, "RESPONSE_BYTESIZE_LIMIT", frame)
    with record_history() as history:
        data = cube.read()
    assert sum("array/full" in r.url.path for r in history.requests) == 6
    np.testing.assert_array_equal(data, np.arange(6 * 50 * 40, dtype="f8").reshape(6, 50, 40))
    monkeypatch.setattr(ArrayClient, "RESPONSE_BYTESIZE_LIMIT", 80)  # 10 elements per response
    with record_history() as history:
        part = cube[1:4, ::-2, 5]
    assert sum("array/full" in r.url.path for r in history.requests) > 3
    np.testing.assert_array_equal(part, data[1:4, ::-2, 5])
    assert "shape=(6, 50, 40)" in repr(cube) and "dtype=float64" in repr(cube)


def test_url_limit_switches_to_post(box, monkeypatch):
    table = box["wide"]
    columns = table.columns[::2]
    for limit, method in ((80_000, "GET"), (10, "POST")):
        monkeypatch.setattr(BaseClient, "URL_CHARACTER_LIMIT", limit)
        with record_history() as history:
            frame = table.read(columns)
        assert list(frame.columns) == columns
        assert {r.method for r in history.requests if "/table/" in r.url.path} == {method}


def test_prompt_hooks_answer_a_login_without_a_terminal(auth_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TILED_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TILED_FORCE_PROMPT", raising=False)
    with Context(auth_server.uri) as context:
        with pytest.raises(CannotPrompt):  # pytest's stdin is no terminal, and no hook is set
            context.login(remember_me=False)
        monkeypatch.setattr(context_module, "username_input", lambda: "alice")
        monkeypatch.setattr(context_module, "password_input", lambda: auth_server.passwords["alice"])
        context.login(remember_me=False)
        assert context.whoami()["identities"][0]["id"] == "alice"
        reply = context.http_client.get(context.api_uri + "auth/whoami")  # the bearer token rides along
        assert reply.status_code == 200
        assert auth_server.passwords["alice"] not in repr(context)


def test_smoke_read_and_specs(box, tiled_server):
    from tiled.structures.core import Spec as ReferenceSpec

    assert smoke_read(box) == []
    assert Spec("xdi", "1.0") == ReferenceSpec("xdi", version="1.0")
    assert ReferenceSpec("xdi") in [Spec("xdi")] and hash(Spec("a")) == hash(ReferenceSpec("a"))
    assert Spec("a") != Spec("a", "2")


def test_retry_context_and_transport(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    tries = []
    for attempt in retry_context():
        with attempt:
            tries.append(attempt.num)
            if len(tries) < 3:
                raise httpx.ConnectError("refused")
    assert tries == [1, 2, 3]
    with pytest.raises(ValueError):
        for attempt in retry_context():
            with attempt:
                tries.append(attempt.num)
                raise ValueError("not a transient failure")
    assert tries[-1] == 1
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "inside.example")
    transport = Transport()
    assert transport._transport_for_url(httpx.URL("https://outside.example/")) is not transport.transport
    assert transport._transport_for_url(httpx.URL("https://inside.example/")) is transport.transport
    assert Transport(trust_env=False)._mounts == {}
    with pytest.raises(TypeError):
        Transport(cache=object())
