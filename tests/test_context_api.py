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
from tiled_core.client import from_context, hide_logs, record_history, show_logs
from tiled_core.client.auth import CannotRefreshAuthentication
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



def _record_bar_totals(monkeypatch) -> list:
    """The totals of the progress bars drawn from now on (each still drawn)."""
    from tiled_core.client import _progress_state

    totals = []
    real_track = _progress_state.track

    def recording_track(total, install):
        totals.append(total)
        return real_track(total, install)

    monkeypatch.setattr(_progress_state, "track", recording_track)
    return totals

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


# -- progress bars, the retry indicator, the fetch gate ---------------------------------------


class _PeakSemaphore:
    """A semaphore that counts its acquisitions and the most holders it had at once."""

    def __init__(self, value: int) -> None:
        import threading

        self._semaphore = threading.Semaphore(value)
        self._lock = threading.Lock()
        self.holders = self.peak = self.acquired = 0

    def acquire(self, *args, **kwargs):
        self._semaphore.acquire(*args, **kwargs)
        with self._lock:
            self.holders += 1
            self.acquired += 1
            self.peak = max(self.peak, self.holders)
        return True

    def release(self):
        with self._lock:
            self.holders -= 1
        self._semaphore.release()


@pytest.fixture(scope="module")
def chunky(tiled_server):
    """A container with a 10-chunk array and a 4-partition table (through the reference client,
    which keeps dask's chunks and partitions)."""
    import dask.array as da
    import dask.dataframe as dd

    from tiled.client import from_uri as reference_from_uri

    reference = reference_from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    key = f"chunky-{uuid.uuid4().hex[:10]}"
    node = reference.create_container(key)
    node.write_array(da.arange(10 * 30 * 40, chunks=30 * 40, dtype="f8").reshape(10, 30, 40).rechunk((1, 30, 40)),
                     key="cube")
    node.write_dataframe(dd.from_pandas(pd.DataFrame({"x": np.arange(40.0)}), npartitions=4), key="table")
    yield key
    reference.context.close()


def _connect(tiled_server, **kwargs):
    from tiled_core.client import from_uri

    return from_uri(tiled_server.uri, api_key=tiled_server.api_key, **kwargs)


def _split_small_dask_reads(monkeypatch) -> None:
    """Let dask reads of these small test arrays take several requests (they would be one)."""
    from tiled_core.distributed import _array_tasks

    monkeypatch.setattr(_array_tasks, "ONE_REQUEST_BYTES", 1)


def test_dask_fetches_hold_the_context_semaphore(tiled_server, chunky, monkeypatch):
    _split_small_dask_reads(monkeypatch)
    client = _connect(tiled_server, structure_clients="dask", max_connections=2)
    with client.context as context:
        assert context.max_connections == 2 and context.throttle() is context._concurrent_request_semaphore
        gate = _PeakSemaphore(2)
        context._concurrent_request_semaphore = gate
        cube, table = client[chunky]["cube"], client[chunky]["table"]
        assert cube.chunks[0] == (1,) * 10 and table.structure().npartitions == 4
        expected = np.arange(10 * 30 * 40, dtype="f8").reshape(10, 30, 40)
        np.testing.assert_array_equal(cube.read().compute(), expected)
        assert gate.acquired == cube.fetch_count() > 2  # every fetch took a slot ...
        assert 0 < gate.peak <= 2  # ... and never more than max_connections at once
        assert list(table.read().compute()["x"]) == list(np.arange(40.0))
        assert gate.acquired == cube.fetch_count() + 4 and gate.peak <= 2 and gate.holders == 0


def test_show_progress_setting(tiled_server, monkeypatch):
    monkeypatch.delenv("TILED_SHOW_PROGRESS", raising=False)
    with Context(tiled_server.uri) as context:
        assert context.show_progress is True  # allowed; drawn only in interactive sessions
    for value, expected in (("0", False), ("no", False), ("false", False), ("1", True)):
        monkeypatch.setenv("TILED_SHOW_PROGRESS", value)
        with Context(tiled_server.uri) as context:
            assert context.show_progress is expected
    monkeypatch.setenv("TILED_SHOW_PROGRESS", "0")
    with Context(tiled_server.uri, show_progress=True) as context:
        assert context.show_progress is True
    monkeypatch.setenv("TILED_SHOW_PROGRESS", "1")
    client = _connect(tiled_server, show_progress=False)  # from_uri passes it on
    with client.context as context:
        assert context.show_progress is False


def test_no_progress_bar_outside_interactive_sessions(tiled_server, chunky, capfd):
    client = _connect(tiled_server, structure_clients="dask", show_progress=True)
    with client.context as context:
        with context.tracking_progress(total=10) as state:  # pytest is not an interactive session
            assert state is None and context.progress_state is None
            client[chunky]["cube"].compute()
        client[chunky]["cube"].compute()
    assert capfd.readouterr().err == ""  # quiet by default: nothing drawn, nothing printed


def test_progress_bar_advanced_by_fetches(tiled_server, chunky, monkeypatch):
    from tiled_core.client import _progress_state, utils

    monkeypatch.setattr(utils, "is_interactive", lambda: True)
    _split_small_dask_reads(monkeypatch)
    client = _connect(tiled_server, structure_clients="dask", show_progress=True)
    with client.context as context:
        cube = client[chunky]["cube"]
        total = cube.fetch_count()
        with context.tracking_progress(total=total) as state:
            assert isinstance(state, _progress_state.ProgressState) and context.progress_state is state
            with context.tracking_progress(total=3) as inner:  # no nested bars: the outer one counts
                assert inner is None and context.progress_state is state
            cube.read().compute()
            assert state._progress.tasks[state._task_id].completed == total  # one step per fetch
        assert context.progress_state is None
        context.show_progress = False
        with context.tracking_progress(total=total) as state:
            assert state is None

        # The reads draw their own bars: compute() of lazy clients, read() of in-memory ones.
        totals = _record_bar_totals(monkeypatch)
        context.show_progress = True
        cube.compute()
        client[chunky]["table"].compute()
        numpy_cube = _connect(tiled_server, show_progress=True)
        with numpy_cube.context:
            monkeypatch.setattr(type(numpy_cube[chunky]["cube"]), "RESPONSE_BYTESIZE_LIMIT", 30 * 40 * 8)
            np.testing.assert_array_equal(numpy_cube[chunky]["cube"].read()[9], np.arange(10800, 12000).reshape(30, 40))
        assert totals == [total, 4, 10]


def test_retry_indicator(tiled_server, monkeypatch, capsys):
    from tiled_core.client.auth import CannotRefreshAuthentication
    from tiled_core.client.utils import StandaloneRetryIndicator

    monkeypatch.setattr("time.sleep", lambda seconds: None)
    with Context(tiled_server.uri, api_key=tiled_server.api_key) as context:
        tries = 0
        for attempt in retry_context(context):
            with attempt:
                tries += 1
                if tries < 3:
                    assert (context.retry_indicator is not None) is (tries == 2)
                    raise httpx.ConnectError("refused")
        assert tries == 3 and context.retry_indicator is None  # hidden once the retries are over
        assert capsys.readouterr().err.count("Retrying") == 1  # one plain line off a terminal, not one per try
        with pytest.raises(CannotRefreshAuthentication):  # not worth retrying: no indicator
            for attempt in retry_context(context):
                with attempt:
                    raise CannotRefreshAuthentication("no refresh token")
        assert "Retrying" not in capsys.readouterr().err

        # Under a progress bar the indicator is a spinner below it.
        monkeypatch.setattr("tiled_core.client.utils.is_interactive", lambda: True)
        context.show_progress = True
        with context.tracking_progress(total=4) as state:
            context.signal_retry()
            assert state._retrying and context.retry_indicator is None
            context.signal_retry_resolved()
            assert not state._retrying
    indicator = StandaloneRetryIndicator()
    indicator.show()
    indicator.show()
    indicator.reset()
    assert capsys.readouterr().err.count("Retrying") == 1 and not indicator._showing


def test_transport_retries_show_the_indicator(proxy, tiled_server, monkeypatch, capsys):
    from tiled_core.client import from_uri

    monkeypatch.setattr("time.sleep", lambda seconds: None)
    monkeypatch.setattr("tiled_core.client.utils.is_interactive", lambda: True)
    client = from_uri(proxy.uri, api_key=tiled_server.api_key)
    with client.context as context:
        signals = []
        monkeypatch.setattr(context, "signal_retry", lambda: signals.append("retry"))
        monkeypatch.setattr(context, "signal_retry_resolved", lambda: signals.append("resolved"))
        proxy.status(503, times=2)
        list(client)
        assert signals == ["retry", "retry", "resolved"]
        signals.clear()
        list(client)
        assert signals == []  # no retry, no signal
        monkeypatch.undo()
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    for interactive, lines in ((False, 0), (True, 1)):  # scripts and pipelines stay quiet
        monkeypatch.setattr("tiled_core.client.utils.is_interactive", lambda: interactive)
        client = from_uri(proxy.uri, api_key=tiled_server.api_key)
        with client.context:
            proxy.status(503, times=1)
            list(client)
        assert capsys.readouterr().err.count("Retrying") == lines


def test_server_info_attributes_and_app(tiled_server):
    with Context(tiled_server.uri) as context:
        info = context.server_info
        assert info["api_version"] == info.api_version and isinstance(info, dict)
        assert info.authentication == info["authentication"] and isinstance(info.authentication, dict)
        assert [f for f in info.formats] == list(info["formats"])
        with pytest.raises(AttributeError):
            info.no_such_field
        assert context.app is None


def test_from_app_keeps_the_app():
    from tiled.adapters.mapping import MapAdapter
    from tiled.server.app import build_app

    app = build_app(MapAdapter({}))
    with Context.from_app(app) as context:
        assert context.app is app and list(from_context(context)) == []


def test_token_directory_sessions(auth_server, tmp_path, monkeypatch):
    """A login kept as token files (the reference client's layout), refreshed and revoked through Tiled."""
    from tiled_core.client.auth import TiledAuth
    from tiled_core.client.context import password_grant

    monkeypatch.setenv("TILED_CACHE_DIR", str(tmp_path))
    password = auth_server.passwords["alice"]
    with Context(auth_server.uri) as context:
        provider = context.server_info.authentication.providers[0]
        with httpx.Client() as raw:
            with pytest.raises(httpx.HTTPStatusError):
                password_grant(raw, provider.links.auth_endpoint, provider.provider, "alice", "wrong")
            tokens = password_grant(raw, provider.links.auth_endpoint, provider.provider, "alice", password)
        context.configure_auth(tokens)
        auth = context.http_client.auth
        assert isinstance(auth, TiledAuth) and context.authenticated
        assert context.whoami()["identities"][0]["id"] == "alice"
        directory = context._token_directory()
        assert {p.name for p in directory.iterdir()} >= {"access_token", "refresh_token"}
        assert (directory / "refresh_token").stat().st_mode & 0o777 == 0o600
        assert tokens["access_token"] not in repr(auth) and tokens["refresh_token"] not in repr(auth)
        assert tokens["refresh_token"] not in pickle.dumps(auth).decode("latin-1")

        assert set(context.tokens) == {"access_token", "refresh_token"}
        assert tokens["access_token"] not in repr(context.tokens)
        refreshed = context.force_auth_refresh()  # Tiled's own refresh (no client_id: not an OAuth2 provider)
        assert refreshed["refresh_token"] == auth.sync_get_token("refresh_token", reload_from_disk=True)

        # A stale access token: the 401 leads to a refresh through the same client.
        auth.sync_set_token("access_token", "stale")
        assert context.whoami()["identities"][0]["id"] == "alice"
        assert auth.sync_get_token("access_token") != "stale"  # refreshed (a JWT of the same second may repeat)

        # Another connection finds the session in the token directory.
        with Context(auth_server.uri) as other:
            assert other.use_cached_tokens() and other.whoami()["identities"][0]["id"] == "alice"

        context.logout()  # revokes the session on the server and removes the files
        assert not context.authenticated and not (directory / "refresh_token").exists()
        stale = TiledAuth(context.server_info.authentication.links.refresh_session,
                          context.http_client.cookies.get("tiled_csrf"), None)
        stale.sync_tokens(tokens)
        stale.sync_set_token("access_token", "stale")
        with httpx.Client(auth=stale, cookies=context.http_client.cookies) as raw:
            with pytest.raises(CannotRefreshAuthentication):  # the revoked session cannot be refreshed
                raw.get(context.api_uri + "auth/whoami")


def test_composite_read_counts_all_parts_fetches(tiled_server, monkeypatch):
    from tiled_core.client import utils

    monkeypatch.setattr(utils, "is_interactive", lambda: True)
    totals = _record_bar_totals(monkeypatch)
    client = _connect(tiled_server, show_progress=True)
    with client.context:
        composite = client.create_container(f"comp-{uuid.uuid4().hex[:8]}", specs=["composite"])
        composite.write_array(np.arange(12.0).reshape(3, 4), key="small")
        composite.write_array(np.arange(100.0).reshape(10, 10), key="large")
        monkeypatch.setattr(ArrayClient, "RESPONSE_BYTESIZE_LIMIT", 100)  # 800 bytes: several requests
        parts = composite.base["small"].fetch_count(), composite.base["large"].fetch_count()
        assert parts[0] == 1 and parts[1] > 1
        dataset = composite.read()
        np.testing.assert_array_equal(dataset["large"].values, np.arange(100.0).reshape(10, 10))
        assert totals == [sum(parts)]  # one bar for the whole read (the parts' own reads draw none)
        composite.read(variables=["small"])
        assert totals == [sum(parts)]  # one fetch: no bar
