"""Shared fixtures: real Tiled servers on loopback ports, started once per session."""

from __future__ import annotations

import os
import secrets
import warnings
import uuid

import pytest

from tiled_core.server import ConfiguredTiledServer, LocalTiledServer

from _session import MAIN_API_KEY

#: Token lifetimes of the password-protected server: short, so refresh is exercised.
ACCESS_TOKEN_SECONDS = 3

# No telemetry from anything a test starts.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


#: The session's shared servers, watched by ``_revive_crashed_servers``.
_SHARED_SERVERS: list[LocalTiledServer] = []


@pytest.fixture(scope="session")
def tiled_server():
    """The main real server: a writable temporary catalog with a random, recognisable API key (``MAIN_API_KEY``)."""
    with LocalTiledServer(api_key=MAIN_API_KEY) as server:
        _SHARED_SERVERS.append(server)
        yield server


@pytest.fixture(scope="session")
def second_server():
    """A second, independent server (copy tests); started only when asked for."""
    with LocalTiledServer() as server:
        _SHARED_SERVERS.append(server)
        yield server


@pytest.fixture(scope="session")
def killable_server(tmp_path_factory):
    """A server the tests kill, crash and restart (the fault, restart and copy tests of a worker share it).

    Its directory survives restarts. A test or module that uses it calls
    ``running(killable_server)`` first (an earlier one may have left it down)
    and works under keys of its own: other modules' nodes are there too.
    It is public (``--public``: anyone may read, only the key holder write).
    """
    with LocalTiledServer(tmp_path_factory.mktemp("killable"), public=True) as server:
        yield server


@pytest.fixture(autouse=True)
def _revive_crashed_servers():
    """Restart a shared server that died during a test (same port, same data).

    tiled 0.2.20 servers have segfaulted here under heavy concurrent load (in
    libc, in a server thread). The test that was running then fails by itself;
    this keeps every later test from failing with "connection refused" too.
    """
    yield
    for server in _SHARED_SERVERS:
        if server.has_crashed():
            warnings.warn(f"{server!r} exited during this test; restarting it. Log tail:\n{server.log_tail(15)}")
            server.restart()


@pytest.fixture(scope="session")
def dask_client():
    """A real distributed.LocalCluster: 2 worker processes, 2 threads each (started when asked for).

    Not dask's default scheduler (``set_as_default=False``): tests send work to
    it explicitly (``dask_client.compute``), and other modules' plain
    ``.compute()`` calls stay on their own threads.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's test harness (a temporary Prefect server and SQLite database), started once per process.

    Its modules share one xdist worker (``_SHARED_WORKER``), so the suite starts it once.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


#: Modules that must run in one worker process because they share a costly session fixture.
_SHARED_WORKER = {"tests/test_prefect_tiled.py": "prefect", "tests/test_secrets.py": "prefect"}

#: Session fixtures that cost seconds of CPU each time a worker starts one (a tiled server, a cluster):
#: the scheduler keeps the modules that use one on as few workers as it can.
_COSTLY_FIXTURES = ("second_server", "small_limit_server", "auth_server", "killable_server", "dask_client")

#: Seconds of the long scopes (measured with ``-n 3``): they go first, so no long one is left for the
#: end while the other workers idle. Other scopes count a tenth of a second per test; only the order matters.
_LONG_SCOPES = {
    "prefect": 150, "tests/test_dagster_tiled.py": 100, "tests/test_faults_writes.py": 74,
    "tests/test_faults_copy.py": 52, "tests/test_copy.py": 49, "tests/test_faults_reads.py": 48,
    "tests/test_writes.py": 42, "tests/test_auth.py": 38, "tests/test_example_flows.py": 36,
    "tests/test_container.py": 34, "tests/test_restart.py": 30, "tests/test_sparse.py": 28,
    "tests/test_array.py": 27, "tests/test_server.py": 25, "tests/test_dagster_ui.py": 24,
    "tests/test_queries_encoding.py": 21, "tests/test_awkward.py": 19,
}


def _scope_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return _SHARED_WORKER.get(module, module)


def _costly_fixtures(scope: str, rootdir) -> frozenset[str]:
    """The costly session fixtures a scope's modules name (read from their source: a guess, never a rule)."""
    modules = [m for m, s in _SHARED_WORKER.items() if s == scope] or [scope]
    text = ""
    for module in modules:
        try:
            text += (rootdir / module).read_text()
        except OSError:
            pass
    return frozenset(name for name in _COSTLY_FIXTURES if name in text)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Send whole modules to a worker (module-scoped servers start once), the Prefect ones to the same worker.

    Long scopes go first. A worker is given the longest scope that needs none of the costly session
    fixtures another worker has already started and it has not (a tiled server costs seconds of CPU),
    unless that would pass over one more than twice as long: so each is started by as few workers as
    the balance allows.
    """
    from pathlib import Path

    from xdist.scheduler import LoadScopeScheduling

    rootdir = Path(str(config.rootpath))

    class ByModule(LoadScopeScheduling):
        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            self._started: dict = {}  # node -> the costly fixtures its scopes use
            self._costly: dict[str, frozenset[str]] = {}

        def _split_scope(self, nodeid: str) -> str:
            return _scope_of(nodeid)

        def _weight(self, scope: str) -> float:
            return _LONG_SCOPES.get(scope, len(self.workqueue[scope]) / 10)

        def _assign_work_unit(self, node) -> None:
            if not self._costly:  # the first assignment: the queue is complete; longest first
                for scope in sorted(self.workqueue, key=self._weight, reverse=True):
                    self.workqueue.move_to_end(scope)
                    self._costly[scope] = _costly_fixtures(scope, rootdir)
            mine = self._started.setdefault(node, set())
            elsewhere = set().union(*(s for n, s in self._started.items() if n is not node))
            scopes = list(self.workqueue)
            floor = self._weight(scopes[0]) / 2  # never pass over a scope more than twice as long
            chosen = next((scope for scope in scopes if self._weight(scope) >= floor
                           and not (self._costly.get(scope, frozenset()) - mine) & elsewhere), scopes[0])
            mine.update(self._costly.get(chosen, ()))
            self.workqueue.move_to_end(chosen, last=False)
            super()._assign_work_unit(node)

    return ByModule(config, log)


@pytest.fixture(scope="session")
def auth_server():
    """A password-protected server (tiled's DictionaryAuthenticator): users alice and bob.

    ``auth_server.passwords`` maps user -> password (random per session);
    access tokens live ACCESS_TOKEN_SECONDS.
    """
    passwords = {"alice": "pw-a-" + secrets.token_hex(8), "bob": "pw-b-" + secrets.token_hex(8)}
    with ConfiguredTiledServer.with_passwords(
        passwords, access_token_max_age=ACCESS_TOKEN_SECONDS, refresh_token_max_age=3600
    ) as server:
        server.passwords = passwords
        yield server


SLOW_LINK_LATENCY = 0.02  # seconds each way: 40 ms per round trip, as between two facilities


@pytest.fixture()
def slow_links(tiled_server, second_server):
    """``(source proxy, dest proxy)`` adding ``SLOW_LINK_LATENCY`` each way: the main server as the source,
    the second as the destination."""
    from _proxy import FaultProxy

    with FaultProxy("127.0.0.1", tiled_server.port) as source, FaultProxy("127.0.0.1", second_server.port) as dest:
        source.latency(SLOW_LINK_LATENCY)
        dest.latency(SLOW_LINK_LATENCY)
        yield source, dest


@pytest.fixture(scope="module")
def proxy(tiled_server):
    """A fault-injecting, request-recording loopback proxy in front of the main server (tests/_proxy.py)."""
    from _proxy import FaultProxy

    with FaultProxy("127.0.0.1", tiled_server.port) as p:
        yield p


@pytest.fixture(scope="session")
def ref_root(tiled_server):
    """The reference `tiled.client` connected to the main server (interop, test data)."""
    from tiled.client import from_uri as ref_from_uri

    client = ref_from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    yield client
    client.context.close()


@pytest.fixture
def ref_scratch(ref_root):
    """A fresh, empty container (written by the reference client) for one test."""
    return ref_root.create_container(f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def root(tiled_server):
    """A tiled_core client on the root of the main server."""
    from tiled_core.client import from_uri

    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    yield client
    client.context.close()


@pytest.fixture
def scratch(root, ref_scratch):
    """The same fresh container as `ref_scratch`, seen through tiled_core."""
    return root[ref_scratch.item["id"]]


@pytest.fixture(scope="module", params=["numpy", "dask"])
def mode_root(request, tiled_server):
    """A tiled_core root client in each structure-client mode ("numpy", then "dask")."""
    from tiled_core.client import from_uri

    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key, structure_clients=request.param)
    yield client
    client.context.close()


@pytest.fixture(scope="module")
def node(mode_root, stored):
    """The container a test module filled (its ``stored`` fixture gives the key), in each mode."""
    return mode_root[stored]


@pytest.fixture(scope="module")
def ref_node(ref_root, stored):
    """The same container through the reference client."""
    return ref_root[stored]


@pytest.fixture(scope="session")
def small_limit_server():
    """A server whose response size limit is 20 kB, to exercise reads that must be split."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TILED_RESPONSE_BYTESIZE_LIMIT", "20000")
        server = LocalTiledServer().start()  # the variable stays in this process only while starting
    try:
        yield server
    finally:
        server.stop()
