"""tiled_core.server: the embedded real server never outlives the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

START_AND_HANG = (
    "from tiled_core.server import LocalTiledServer; import time; "
    "server = LocalTiledServer().start(); print(server.port, server.pid, flush=True); time.sleep(600)"
)


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_server_stops_when_its_parent_is_killed():
    """SIGKILL gives the parent no chance to call stop(): the guard's pipe closes and the server exits."""
    parent = subprocess.Popen([sys.executable, "-c", START_AND_HANG], stdout=subprocess.PIPE, text=True)
    try:
        port, pid = map(int, parent.stdout.readline().split())
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        parent.kill()
        parent.wait()
        assert _gone(pid, within=30), f"server {pid} outlived its parent"
    finally:
        parent.kill()
        parent.stdout.close()


def test_a_crashed_server_is_reported_and_restarts_with_its_data(killable_server):
    """has_crashed() tells a crash; restart() brings back the same port and data."""
    import signal
    import uuid

    from tiled_core.client import from_uri

    from _checks import running

    server = running(killable_server)
    key = f"kept-{uuid.uuid4().hex[:8]}"
    from_uri(server.uri, api_key=server.api_key).write_array([1, 2, 3], key=key)
    assert not server.has_crashed()
    os.kill(server.pid, signal.SIGSEGV)  # what the 0.2.20 server has done here under load
    deadline = time.monotonic() + 10
    while not server.has_crashed() and time.monotonic() < deadline:  # our child: poll() reaps it
        time.sleep(0.1)
    assert server.has_crashed() and not server.is_running()
    port = server.port
    server.restart()
    assert not server.has_crashed() and server.port == port
    assert from_uri(server.uri, api_key=server.api_key)[key].read().tolist() == [1, 2, 3]
    # (That a kill() on purpose is no crash is checked in tests/test_restart.py, where one happens anyway.)


def test_simple_starts_a_server_of_ones_own_and_connects_to_it(tmp_path, capsys):
    import numpy as np

    from tiled_core.client import SERVERS, simple

    files = tmp_path / "files"
    files.mkdir()
    np.savetxt(files / "a.csv", np.arange(6.0).reshape(3, 2), delimiter=",", header="x,y", comments="")
    client = simple(readable_storage=files)
    server = SERVERS[-1]
    directory = server.directory
    try:
        assert capsys.readouterr().out.strip() == server.uri  # the address, printed for the user
        assert server.is_running() and client.uri.startswith(server.uri)
        np.testing.assert_array_equal(client.write_array([1, 2, 3], key="x")[:], [1, 2, 3])
        table = client.register(files / "a.csv", key="a")  # the server may read that directory
        assert list(table.read()["y"]) == [1.0, 3.0, 5.0]
        # No credentials, no access: the server has an API key of its own.
        assert httpx.get(f"{server.uri}/metadata/x").status_code == 401
    finally:
        client.context.close()
        SERVERS.pop().close()
    assert not server.is_running() and not directory.exists()  # the temporary directory is gone

    kept = tmp_path / "kept"
    again = simple(kept, api_key="secret", quiet=True)
    try:
        assert capsys.readouterr().out == "" and SERVERS[-1].api_key == "secret"
        again.write_array([4, 5], key="y")
    finally:
        again.context.close()
        SERVERS.pop().close()
    assert (kept / "catalog.db").exists()
    # Both catalogs were copied from one empty catalog built once (``serve --init`` is half a start).
    from importlib.metadata import version

    from tiled_core.server import _copy_empty_catalog

    assert _copy_empty_catalog(tmp_path / "third.db")
    assert (tmp_path / "third.db").read_bytes() == next(
        Path(tempfile.gettempdir()).glob(f"tiled-core-{os.getuid()}/empty-catalog-{version('tiled')}.db")).read_bytes()


def test_servers_of_one_process_are_forked_each_on_its_own(monkeypatch):
    """Forked from one fork server, yet separate: own process group, own key, stopped on their own."""
    from tiled_core._server_fork import ForkedServer
    from tiled_core.server import LocalTiledServer

    with LocalTiledServer() as first, LocalTiledServer() as second:
        assert isinstance(first._process, ForkedServer) and isinstance(second._process, ForkedServer)
        for server in (first, second):
            assert os.getpgid(server.pid) == server.pid  # killpg(pid) reaches that server alone
            own = httpx.get(f"{server.uri}/metadata/", headers={"Authorization": f"Apikey {server.api_key}"})
            assert own.status_code == 200
        other = httpx.get(f"{second.uri}/metadata/", headers={"Authorization": f"Apikey {first.api_key}"})
        assert other.status_code == 401
        pids = first.pid, second.pid
    assert all(_gone(pid, within=10) for pid in pids)

    monkeypatch.setenv("TILED_CORE_SERVER_FORK", "0")  # the plain subprocess, as where fork is unavailable
    with LocalTiledServer() as plain:
        assert isinstance(plain._process, subprocess.Popen)
        assert httpx.get(f"{plain.root_uri}/healthz").status_code == 200
