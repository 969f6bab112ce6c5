"""Secret hygiene: a recognisable API key and password, hunted on every surface (issue 9, part 5).

The session's main server, started with the key ``SECRETKEY<hex>``, and the password-protected
``auth_server`` (whose password, login tokens and API keys join the hunt as
they appear) are exercised through every surface a secret could leak to:
reprs and ``str`` of every object reachable from the public API, log output at
DEBUG (httpx and httpcore included), exception messages and tracebacks,
pickles and Dask graphs (the scheduler's task specs), Prefect logs, runs and
block documents, Dagster event logs and materialization metadata, the CLI's
output, and token and cache files (and their modes). A secret is searched
for as itself, URL-quoted, base64-encoded at any alignment, and for the
key also its first eight characters (what some clients show).

Every log record of every test here is searched too (``debug_logs``).
"""

from __future__ import annotations

import base64
import collections
import collections.abc
import contextlib
import importlib
import inspect
import json
import logging
import os
import pickle
import pkgutil
import secrets
import socket
import stat
import subprocess
import sys
import traceback
import uuid
import warnings
from pathlib import Path
from urllib.parse import quote

import cloudpickle
import numpy as np
import pytest
from distributed.diagnostics.plugin import SchedulerPlugin

from dagster_tiled import DaskResource, TiledIOManager, TiledResource
from prefect_tiled import TiledCredentials
from tiled_core.client import from_uri

from _session import MAIN_API_KEY

ROOT = Path(__file__).resolve().parents[1]
KEY = MAIN_API_KEY  # the main server's: "SECRETKEY<hex>"
WRONG_KEY = "SECRETKEYWRONG" + secrets.token_hex(16)
OUR_PACKAGES = ("tiled_core", "prefect_tiled", "dagster_tiled")


# ------------------------------------------------------------------ the hunt


def _base64_forms(secret: str) -> set[str]:
    """What any base64 text holding ``secret`` contains, whatever the alignment (both alphabets)."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode()
        core = encoded[4 if offset else 0:-4]  # drop the groups shared with the prefix and the tail
        forms |= {core, core.translate(str.maketrans("+/", "-_"))}
    return forms


class Hunt:
    """The secrets searched for, and how many surfaces were searched (by kind)."""

    def __init__(self) -> None:
        self.needles: dict[str, str] = {}
        self.surfaces: collections.Counter = collections.Counter()

    def add(self, name: str, secret: str, *, first_eight: bool = False) -> None:
        self.needles[secret] = name
        self.needles.setdefault(quote(secret, safe=""), f"{name} (URL-quoted)")
        for form in _base64_forms(secret):
            self.needles.setdefault(form, f"{name} (base64)")
        if first_eight:
            self.needles.setdefault(secret[:8], f"the first 8 characters of {name}")

    def check(self, surface: str, *blobs) -> None:
        """Fail (without printing the secret) if any blob holds a secret."""
        self.surfaces[surface.partition(":")[0]] += 1
        for blob in blobs:
            text = bytes(blob).decode("latin-1") if isinstance(blob, (bytes, bytearray, memoryview)) else str(blob)
            found = [name for needle, name in self.needles.items() if needle in text]
            if found:
                for needle in sorted(self.needles, key=len, reverse=True):  # longest first: no pieces left
                    text = text.replace(needle, "<SECRET>")
                at = text.index("<SECRET>")
                pytest.fail(f"{surface}: {found[0]} found, in ...{text[max(0, at - 80):at + 120]!r}...", pytrace=False)


HUNT = Hunt()
HUNT.add("the API key", KEY, first_eight=True)
HUNT.add("a wrong API key", WRONG_KEY)


@pytest.fixture(scope="module")
def hunt(auth_server):
    HUNT.add("alice's password", auth_server.passwords["alice"])
    HUNT.add("bob's password", auth_server.passwords["bob"])
    yield HUNT
    print("\nsecret surfaces checked:", dict(HUNT.surfaces), "total", sum(HUNT.surfaces.values()))


class _Records(logging.Handler):
    """Every record, formatted as a log file would show it (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - as logging's own handlers do
            self.handleError(record)


@pytest.fixture(autouse=True)
def debug_logs(hunt, request):
    """Every log record at DEBUG (httpx, httpcore, tiled_core, Prefect, Dagster, distributed) is searched."""
    handler = _Records()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", "httpx", "httpcore", "tiled_core")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    # Loggers that do not propagate to the root get the handler directly.
    apart = [logging.getLogger(n) for n in ("prefect", "dagster", "distributed") if not logging.getLogger(n).propagate]
    for logger in [root, *apart]:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in [root, *apart]:
            logger.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    hunt.check(f"log:{request.node.name}", "\n".join(handler.lines))


# ------------------------------------------------------------------ servers and clients


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """A fresh cache/token directory and profile directories; no key in the environment."""
    base = tmp_path_factory.mktemp("secrets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TILED_CACHE_DIR", str(base / "cache"))  # not created: tiled_core makes it
        patch.setenv("TILED_PROFILES", str(base / "profiles"))
        patch.setenv("TILED_SITE_PROFILES", str(base / "no-site-profiles"))
        patch.delenv("TILED_API_KEY", raising=False)
        (base / "profiles").mkdir()
        yield base


@pytest.fixture(scope="module")
def server(environment, tiled_server):
    """The session's main server, whose single-user key is the recognisable KEY (other modules' nodes are there too)."""
    assert tiled_server.api_key == KEY
    return tiled_server


@pytest.fixture(scope="module")
def keyed(server):
    """A client given the key directly."""
    client = from_uri(server.uri, api_key=KEY)
    yield client
    client.context.close()


@pytest.fixture
def env_key(monkeypatch):
    """TILED_API_KEY holds the key (clients made now take it from there)."""
    monkeypatch.setenv("TILED_API_KEY", KEY)


@pytest.fixture(scope="module")
def tree(keyed, server):
    """One node of every structure family under a fresh container; returns its path."""
    import awkward as ak
    import pandas as pd
    import sparse
    import xarray as xr

    from tiled_core.client.xarray import write_xarray_dataset
    from tiled_core.structures import Asset, DataSource, Management

    box = keyed.create_container(f"s-{uuid.uuid4().hex[:8]}", metadata={"purpose": "secret hygiene"})
    box.write_array(np.arange(12.0).reshape(3, 4), key="array", metadata={"unit": "mm"})
    box.write_array(np.zeros(2, dtype=[("a", "f8"), ("b", "i4")]), key="records")
    box.write_dataframe(pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}), key="table")
    coo = sparse.COO(np.array([[0, 2], [1, 3]]), np.array([1.5, -2.0]), shape=(3, 4))
    box.write_sparse(coords=coo.coords, data=coo.data, shape=coo.shape, key="sparse")
    box.write_awkward(ak.Array([[1.0, 2.0], [], [3.0]]), key="ragged")
    write_xarray_dataset(box, xr.Dataset({"v": ("t", np.arange(4.0))}, coords={"t": np.arange(4)}), key="dataset")
    box.create_container("inner", metadata={"level": 2})
    box.write_ragged([[1.0, 2.0], [3.0]], key="jagged")
    composite = box.create_container("composite", specs=["composite"])
    composite.write_array(np.arange(3.0), key="part")
    blob = server.directory / "data" / f"blob-{uuid.uuid4().hex[:8]}.bin"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"\x00\x01" * 64)
    box.new("bytes", [DataSource(structure_family="bytes", structure={}, mimetype="application/octet-stream",
                                 assets=[Asset(data_uri=blob.as_uri(), is_directory=False, parameter="data_uris",
                                               num=0, size=128)], management=Management.external)], key="blob")
    return box.path


@pytest.fixture(scope="module")
def login(auth_server, environment, hunt):
    """alice logged in (tokens saved in the token file); her tokens join the hunt."""
    from tiled_core.client import Context, from_context

    with Context(auth_server.uri) as context:
        context.login(username="alice", password=auth_server.passwords["alice"], remember_me=True)
        tokens = context.tokens
        hunt.add("alice's access token", tokens["access_token"])
        hunt.add("alice's refresh token", tokens["refresh_token"])
        yield from_context(context)


# ------------------------------------------------------------------ reprs of everything reachable

_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), np.ndarray, np.generic, type)
_METHODS = ("structure", "keys", "values", "items", "head", "first")  # zero-argument calls that only read


def _ours(obj) -> bool:
    return type(obj).__module__.split(".")[0] in OUR_PACKAGES


def _public_attributes(obj):
    """Values of ``obj``'s public properties and read-only zero-argument methods (errors skipped)."""
    for name in dir(type(obj)):
        if name.startswith("_"):
            continue
        attribute = inspect.getattr_static(obj, name, None)
        if isinstance(attribute, property) or type(attribute).__name__ == "cached_property":
            with contextlib.suppress(Exception):
                yield getattr(obj, name)
        elif name in _METHODS and callable(attribute):
            with contextlib.suppress(Exception):
                yield getattr(obj, name)()


def _children(obj):
    if isinstance(obj, _LEAVES):
        return []
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)[:20]
    if not _ours(obj):
        return []
    found = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            with contextlib.suppress(AttributeError):
                found.append(getattr(obj, slot))
    found += list(_public_attributes(obj))
    if isinstance(obj, collections.abc.Mapping):
        with contextlib.suppress(Exception):
            found += [value for _, value in zip(range(5), obj.items())]
    elif isinstance(obj, collections.abc.Iterable) and not isinstance(obj, collections.abc.Iterator):
        with contextlib.suppress(Exception):
            found += [value for _, value in zip(range(5), obj)]
    return found


def _costly(obj) -> bool:
    """Objects whose properties and views send requests: only a few of each class are explored."""
    from tiled_core.client.writing._revisions import MetadataRevisions
    from tiled_core.client.base import BaseClient
    from tiled_core.iterviews import IterViewBase

    return isinstance(obj, (BaseClient, IterViewBase, MetadataRevisions))


def _reachable(roots, explored_per_class: int = 3) -> list:
    """Every object of our packages reachable from ``roots`` through attributes, properties and views.

    Breadth first. Of the classes whose exploration sends requests, only the first few
    instances are explored, but every instance found is returned.
    """
    seen: dict[int, object] = {}
    explored: collections.Counter = collections.Counter()
    ours = []
    frontier = collections.deque(roots)
    while frontier:
        obj = frontier.popleft()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj  # (kept alive, so ids stay unique)
        if _ours(obj):
            ours.append(obj)
            if _costly(obj):
                explored[type(obj)] += 1
                if explored[type(obj)] > explored_per_class:
                    continue
        frontier.extend(_children(obj))
    return ours


def _public_modules():
    """Our modules whose dotted names have no private part."""
    for package_name in OUR_PACKAGES:
        package = importlib.import_module(package_name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                yield importlib.import_module(info.name)


def _public_names() -> tuple[set[type], list]:
    """The classes (exceptions apart: see the error tests) and other values named in public ``__all__``s."""
    classes, values = set(), []
    for module in _public_modules():
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if inspect.isclass(value):
                if value.__module__.split(".")[0] in OUR_PACKAGES and not issubclass(value, BaseException):
                    classes.add(value)
            elif not (inspect.isfunction(value) or inspect.ismodule(value) or value is None):
                values.append(value)
    return classes, values


#: Public classes the walk does not reach, and why they cannot hold a secret (or where they are checked).
_NOT_REACHED = {
    "WorkerCredential": "made by share_credentials: checked in test_distributed_task_specs_and_logs",
    "HandlerTable": "built per call from TiledIOManager.type_handlers(), whose handlers are reached",
    "TiledCopy": "a frozen dataclass of paths and resource names (no credential field)",
    "WriteTarget": "a dataclass of a client (whose repr is checked) and a flag",
    "Settings": "client.register's frozen dataclass of walk options (readers, callables; no credential field)",
    "PackedRagged": "the ragged codec's intermediate numpy buffers (no credential field)",
}


def test_reprs_of_everything_reachable(hunt, server, keyed, tree, login, auth_server, environment):
    from dagster import EnvVar

    from tiled_core import queries
    from tiled_core.client import Context, from_context, record_history
    from tiled_core.client.cache import Cache, ThreadingMode
    from tiled_core.client.sync import copy
    from tiled_core.client.auth import TiledAuth
    from tiled_core.client.transport import Transport
    from tiled_core.client.utils import ProgressState, StandaloneRetryIndicator

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TILED_API_KEY", KEY)
        env_lazy = from_uri(server.uri, structure_clients="dask")
    cached = from_uri(server.uri, api_key=KEY, cache=Cache())
    # Another spelling of the server's address: an in-memory login would drop alice's token file.
    with Context(auth_server.uri.replace("127.0.0.1", "localhost")) as bob:
        bob.login(username="bob", password=auth_server.passwords["bob"], remember_me=False)
        api_key = login.context.create_api_key(note="secrets test", expires_in="10m")
        hunt.add("a new API key", api_key["secret"])
        query_objects = [
            queries.Eq("unit", "mm"), queries.NotEq("unit", "m"), queries.Contains("tags", "x"),
            queries.Comparison("gt", "level", 1), queries.In("unit", ["mm"]), queries.NotIn("unit", ["m"]),
            queries.KeyPresent("unit"), queries.Like("unit", "m%"), queries.Regex("unit", "m+"),
            queries.FullText("secret"), queries.KeyLookup("array"), queries.KeysFilter(["array"]),
            queries.SpecsQuery(["xarray_dataset"]), queries.StructureFamilyQuery("array"),
            queries.AccessTagsFilter(["public"]), queries.Key("unit"), queries.Key("unit") == "mm",
        ]
        box = keyed[tree]
        searched = [box.search(q) for q in query_objects if isinstance(q, queries.Query)]
        progress = []
        with record_history() as history:  # requests with API key and bearer headers, and their responses
            keyed[tree].refresh()
            bob.whoami()
        with record_history() as revalidated:  # the second lookup is a 304 answered from the cache
            cached[tree], cached[tree]
        assert any(type(r).__name__ == "CachedResponse" for r in revalidated.responses)
        summary = copy(box, keyed.create_container(f"copy-{uuid.uuid4().hex[:6]}"), progress=progress.append)
        batch = keyed.create_container(f"batch-{uuid.uuid4().hex[:6]}").batch()
        batch.write_array(np.arange(3), key="written", metadata={"by": "a batch"})
        batch.wait()
        public_classes, public_values = _public_names()
        token_directory_login = TiledAuth(server.uri + "/api/v1/auth/session/refresh", None, None)
        directory_token = "tok-" + uuid.uuid4().hex
        hunt.add("a token-directory access token", directory_token)
        token_directory_login.sync_tokens({"access_token": directory_token, "refresh_token": directory_token + "r"})
        from rich.progress import Progress

        bar = ProgressState(Progress(), 0, None)
        roots = [token_directory_login, bar, StandaloneRetryIndicator(),
            *public_values, server, auth_server, keyed, env_lazy, cached, cached[tree], login, login.context,
            from_context(bob), bob, api_key, list(keyed[tree].values()), list(env_lazy[tree].values()),
            query_objects, searched, box.sort(("unit", -1)), summary, progress, history, revalidated, Transport(),
            batch, ThreadingMode.SERIALIZED,
            box.search_deep(queries.Eq("unit", "mm")), box.include_data_sources()["blob"].data_sources(),
            TiledCredentials(uri=server.uri, api_key=KEY), TiledCredentials(uri=server.uri, api_key=KEY).get_client(),
            TiledResource(uri=server.uri, api_key=KEY), TiledResource(uri=server.uri, api_key=EnvVar("TILED_API_KEY")),
            TiledIOManager(tiled=TiledResource(uri=server.uri, api_key=KEY)), DaskResource(),
        ]
        found = _reachable(roots)
        for obj in found:
            hunt.check(f"repr:{type(obj).__qualname__}", repr(obj), str(obj))
    covered = {cls for obj in found for cls in type(obj).__mro__}  # a base's repr runs in its subclasses
    missing = sorted(c.__qualname__ for c in public_classes - covered if c.__qualname__ not in _NOT_REACHED)
    assert missing == [], ", ".join(missing)
    assert len(found) > 100
    login.context.revoke_api_key(api_key["first_eight"])
    TiledCredentials.close_clients()
    env_lazy.context.close()
    cached.context.close()


# ------------------------------------------------------------------ exceptions and tracebacks


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - any error is what is inspected
        return error
    pytest.fail("no error was raised", pytrace=False)


def _check_error(hunt, case: str, error: BaseException) -> None:
    """Message, repr, the formatted traceback with every chained cause, and the error's pickle."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    with contextlib.suppress(Exception):
        texts.append(pickle.dumps(error))  # errors travel from Dask workers pickled
    hunt.check(f"error:{case}", *texts)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def quick_retries(monkeypatch):
    """Few, fast retries, so failures that are retried end soon."""
    monkeypatch.setenv("TILED_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("TILED_RETRY_TIMEOUT", "3")


@pytest.fixture(scope="module")
def faulty(server):
    """A fault-injecting proxy in front of the keyed server."""
    from _proxy import FaultProxy

    with FaultProxy("127.0.0.1", server.port) as proxy:
        yield proxy


def test_errors_and_tracebacks(hunt, server, keyed, tree, auth_server, login, faulty, quick_retries, environment):
    from tiled_core.client import Context
    from tiled_core.transport import (
        AuthenticationError, ConnectionFailed, NotFound, PermissionDenied, RequestTimeout, ServerError,
        TruncatedResponse,
    )

    wrong_password = "pw-wrong-" + secrets.token_hex(8)
    hunt.add("a wrong password", wrong_password)
    refused = f"http://127.0.0.1:{_free_port()}/api/v1"
    errors: dict[str, tuple[type, BaseException]] = {}

    def expect(case: str, kind: type, call) -> None:
        errors[case] = (kind, _raised(call))

    expect("wrong key", AuthenticationError, lambda: from_uri(server.uri, api_key=WRONG_KEY))
    expect("wrong key in the URI", AuthenticationError, lambda: from_uri(f"{server.uri}?api_key={WRONG_KEY}"))
    expect("key with a space", ValueError, lambda: from_uri(server.uri, api_key=KEY[:12] + " " + KEY[12:]))
    expect("connection refused, key in the URI", ConnectionFailed, lambda: from_uri(f"{refused}?api_key={KEY}"))
    expect("connection refused", ConnectionFailed, lambda: from_uri(refused, api_key=KEY))
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        expect("timeout", RequestTimeout,
               lambda: from_uri(f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1", api_key=KEY, timeout=0.5))

    def wrong_login():
        with Context(auth_server.uri) as context:
            context.login(username="alice", password=wrong_password)

    expect("wrong password", AuthenticationError, wrong_login)
    scoped = login.context.create_api_key(scopes=["read:metadata"], expires_in="10m", note="metadata only")
    hunt.add("a scoped API key", scoped["secret"])
    box = login.create_container(f"s-{uuid.uuid4().hex[:8]}")
    box.write_array(np.arange(4.0), key="data")
    metadata_only = from_uri(auth_server.uri, api_key=scoped["secret"])
    expect("403 on a read", (PermissionDenied, AuthenticationError), lambda: metadata_only[box.path]["data"].read())
    expect("403 on a write", (PermissionDenied, AuthenticationError),
           lambda: metadata_only[box.path].write_array(np.arange(2), key="refused"))
    expect("404 as KeyError", KeyError, lambda: keyed[f"{tree}/no-such-node"])
    expect("404", NotFound, lambda: keyed.context.session.get_document(f"metadata/{tree}/no-such-node"))
    proxied = from_uri(faulty.uri, api_key=KEY)
    array = proxied[tree]["array"]
    faulty.respond(500, headers={"content-type": "application/json"}, body=b'{"detail": "boom"}', match="/metadata/")
    expect("500 on a document", ServerError, lambda: proxied[tree])
    faulty.respond(500, headers={"content-type": "application/json"}, body=b'{"detail": "boom"}', match="/array/")
    expect("500 on bulk data", ServerError, array.read)
    faulty.respond(503, headers={"retry-after": "0"}, match="/array/", times=None)
    expect("503 until retries run out", ServerError, array.read)
    faulty.clear()
    faulty.cut(8, match="/array/", times=None)
    expect("truncated body", TruncatedResponse, array.read)
    faulty.clear()
    faulty.drop(match="/metadata/", times=None)
    expect("connection dropped", ConnectionFailed, lambda: proxied[tree])
    faulty.clear()
    for case, (kind, error) in errors.items():
        assert isinstance(error, kind), (case, type(error))
        _check_error(hunt, case, error)
    proxied.context.close()
    metadata_only.context.close()
    login.context.revoke_api_key(scoped["first_eight"])


def test_profile_errors_do_not_show_expanded_secrets(hunt, environment, server, monkeypatch):
    from tiled_core.client import from_profile
    from tiled_core.profiles import ProfileError

    monkeypatch.setenv("SECRETS_TEST_KEY", KEY)
    (environment / "profiles" / "broken.yml").write_text(
        f"broken:\n  uri: {server.uri}\n  headers: Apikey ${{SECRETS_TEST_KEY}}\n"  # a string, not a mapping
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            error = _raised(lambda: from_profile("broken"))
        assert isinstance(error, ProfileError) and "headers" in str(error)
        _check_error(hunt, "profile with a schema error", error)
        assert caught  # the invalid profile was also reported while scanning
        hunt.check("warning:profile with a schema error", *(str(w.message) for w in caught))
    finally:
        (environment / "profiles" / "broken.yml").unlink()


def test_debug_logs_of_reads_writes_and_failures(hunt, debug_logs, server, keyed, tree, auth_server, quick_retries):
    from tiled_core.client import Context

    # A login session from start to end: password, tokens, refresh, logout.
    with Context(auth_server.uri.replace("127.0.0.1", "localhost")) as context:
        context.login(username="bob", password=auth_server.passwords["bob"], remember_me=False)
        hunt.add("bob's access token", context.tokens["access_token"])
        hunt.add("bob's refresh token", context.tokens["refresh_token"])
        refreshed = context.force_auth_refresh()
        hunt.add("bob's refreshed access token", refreshed["access_token"])
        hunt.add("bob's refreshed refresh token", refreshed["refresh_token"])
        assert context.whoami()["identities"][0]["id"] == "bob"
        context.logout()
    box = keyed[tree]
    for key in ("array", "table", "sparse", "ragged", "dataset"):
        box[key].read()
    box["inner"].write_array(np.ones(3), key=f"w-{uuid.uuid4().hex[:6]}", metadata={"step": "log test"})
    box["inner"].update_metadata({"touched": True})
    _raised(lambda: from_uri(server.uri, api_key=WRONG_KEY))
    _raised(lambda: box["no-such-node"])
    logged = "\n".join(debug_logs.lines)
    # The records searched (at teardown, with every other record) are the real DEBUG ones.
    for expected in ("send_request_headers", "HTTP Request: POST", "HTTP Request: PATCH", "401 Unauthorized",
                     "auth/session/refresh", "auth/session/revoke"):
        assert expected in logged


# ------------------------------------------------------------------ pickles and Dask graphs


def test_pickles_and_dask_graphs(hunt, server, keyed, tree, login, environment, monkeypatch):
    from tiled_core.client import Context

    pickle.dumps(keyed.context)  # files its credential under a token: the held credential itself never pickles
    refused = [keyed.context.session, keyed.context.session.auth, keyed.context.session_handle,
               login.context.session.auth, login.context.tokens, keyed.context._held[1]]
    for obj in refused:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            error = _raised(lambda: dumps(obj))
            assert isinstance(error, TypeError)
            _check_error(hunt, f"pickling {type(obj).__name__}", error)
    # Contexts and clients pickle, their credential behind a random token that only this process resolves.
    with Context(server.uri, api_key=KEY, headers={"Authorization": f"Apikey {KEY}"}) as context:
        for obj in (keyed, keyed[tree]["array"], keyed.context, login, login.context, context):
            for dumps in (pickle.dumps, cloudpickle.dumps):
                hunt.check(f"pickle:{type(obj).__name__}", dumps(obj))
        assert pickle.loads(pickle.dumps(context)).api_key == KEY  # resolved here
    # What may be pickled names where the credential is, never the credential.
    monkeypatch.setenv("TILED_API_KEY", KEY)
    lazy = from_uri(server.uri, structure_clients="dask")
    monkeypatch.delenv("TILED_API_KEY")
    shippable = [lazy.context.session_handle, login.context.session_handle, from_uri(server.uri, api_key=KEY,
                 cache=None).context.session_handle.source]
    box = lazy[tree]
    graphs = {
        "array": box["array"].read(),
        "array selection": box["array"][1:, ::2],
        "table": box["table"].read(),
        "dataset": box["dataset"].read(),
    }
    for name, collection in graphs.items():
        graph = dict(collection.__dask_graph__())
        shippable.append(graph)
        assert "TILED_API_KEY" in repr(graph) or b"TILED_API_KEY" in cloudpickle.dumps(graph), name
    for obj in shippable:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            with contextlib.suppress(TypeError, pickle.PicklingError, AttributeError):  # local functions
                hunt.check(f"pickle:{type(obj).__name__}", dumps(obj))
        hunt.check(f"pickle:{type(obj).__name__} (cloudpickle)", cloudpickle.dumps(obj))
    # The same graphs from a client given the key directly cannot be pickled at all.
    direct = from_uri(server.uri, api_key=KEY, structure_clients="dask")
    error = _raised(lambda: cloudpickle.dumps(dict(direct[tree]["array"].read().__dask_graph__())))
    _check_error(hunt, "pickling a graph of a client given the key", error)
    np.testing.assert_array_equal(graphs["array"].compute(scheduler="sync"), np.arange(12.0).reshape(3, 4))
    for client in (lazy, direct):
        client.context.close()


class _TaskSpecs(SchedulerPlugin):
    """A scheduler plugin keeping every task spec the scheduler receives, pickled (as workers get them)."""

    name = "tiled-core-secrets-test-specs"

    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def update_graph(self, scheduler, *, tasks=(), **kwargs) -> None:
        for key in tasks:
            task = scheduler.tasks.get(key)
            if task is not None and task.run_spec is not None:
                self.blobs.append(cloudpickle.dumps(task.run_spec))


def _recorded_specs(dask_scheduler):
    return list(dask_scheduler.plugins[_TaskSpecs.name].blobs)


def test_distributed_task_specs_and_logs(hunt, dask_client, server, keyed, tree):
    from tiled_core.client import Context
    from tiled_core.client._dispatch import client_for_item
    from tiled_core.client.sync import copy
    from tiled_core.distributed import share_credentials
    from tiled_core.transport import AuthenticationError

    dask_client.register_plugin(_TaskSpecs(), name=_TaskSpecs.name)
    lazy = from_uri(server.uri, api_key=KEY, structure_clients="dask")  # the key given directly
    share_credentials(dask_client, lazy)  # shipped once, out of band
    handle = lazy.context.session_handle
    hunt.check("repr:a shared credential", repr(handle), repr(handle.source), str(handle.source))
    box = lazy[tree]
    array = dask_client.compute(box["array"].read()).result()
    np.testing.assert_array_equal(array, np.arange(12.0).reshape(3, 4))
    assert len(dask_client.compute(box["table"].read()).result()) == 3
    summary = copy(keyed[tree], keyed.create_container(f"copy-{uuid.uuid4().hex[:6]}"), dask_client=dask_client)
    assert summary.failed == 0 and summary.nodes >= 6
    # A task that fails on a worker: its error and traceback come back pickled.
    wrong = Context(server.uri, api_key=WRONG_KEY)
    rejected = client_for_item(wrong, "dask", box["array"].item)
    share_credentials(dask_client, rejected)
    error = _raised(lambda: dask_client.compute(rejected.read()).result())
    assert isinstance(error, AuthenticationError)
    _check_error(hunt, "error raised on a worker", error)
    specs = dask_client.run_on_scheduler(_recorded_specs)
    assert len(specs) >= 4 and any(b"WorkerCredential" in blob for blob in specs)
    for blob in specs:
        hunt.check("graph:scheduler task spec", blob)
    hunt.check("log:scheduler", json.dumps(dask_client.get_scheduler_logs(n=10_000)))
    hunt.check("log:workers", json.dumps(dask_client.get_worker_logs(n=10_000)))
    dask_client.unregister_scheduler_plugin(_TaskSpecs.name)
    wrong.close()
    lazy.context.close()


# ------------------------------------------------------------------ Prefect


def test_prefect_logs_runs_and_block_documents(hunt, server, keyed, tree, prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client

    from prefect_tiled.tasks import read_node, search_nodes, write_node
    from test_prefect_tiled import _api_filter, _database_bytes, _drain_logs

    @flow
    def pipeline(credentials: TiledCredentials, rejected: TiledCredentials, box: str) -> list[bool]:
        write_node(credentials, f"{box}/written", np.arange(5.0), metadata={"by": "prefect"})
        search_nodes(credentials, box, query={"unit": "mm"})
        read_node(credentials, f"{box}/written")
        failures = [read_node(credentials, f"{box}/no-such-node", return_state=True),
                    read_node(rejected, f"{box}/written", return_state=True)]
        return [state.is_failed() for state in failures]

    name = f"secrets-{uuid.uuid4().hex[:8]}"
    # The session's harness also holds other modules' runs: this test's run is the one that is new.
    earlier_runs = {run["id"] for run in _api_filter("flow_runs")}
    try:
        TiledCredentials(uri=server.uri, api_key=KEY).save(name)
        loaded = TiledCredentials.load(name)
        hunt.check("repr:loaded TiledCredentials", repr(loaded), str(loaded), loaded.model_dump_json())
        wrong = TiledCredentials(uri=server.uri, api_key=WRONG_KEY)
        assert pipeline(loaded, wrong, tree) == [True, True]  # both failures happened (and were logged)
        _drain_logs()
        logs, runs, tasks = _api_filter("logs"), _api_filter("flow_runs"), _api_filter("task_runs")
        artifacts, blocks = _api_filter("artifacts"), _api_filter("block_documents")
        with get_client(sync_client=True) as client:
            shown = client.read_block_document_by_name(name, "tiled-credentials", include_secrets=False)
        stored = _database_bytes()
    finally:
        TiledCredentials.close_clients()
    messages = "\n".join(log["message"] for log in logs)
    # What is searched holds the runs: the writes, the missing node and the rejected key.
    assert "wrote numpy.ndarray" in messages and "no-such-node" in messages and "rejected" in messages
    assert len([run for run in runs if run["id"] not in earlier_runs]) == 1
    assert len(tasks) >= 5 and artifacts and blocks
    hunt.check("prefect:logs", messages, json.dumps(logs))
    hunt.check("prefect:flow runs", json.dumps(runs))
    hunt.check("prefect:task runs", json.dumps(tasks))
    hunt.check("prefect:artifacts", json.dumps(artifacts))
    hunt.check("prefect:block documents", json.dumps(blocks), repr(shown), json.dumps(shown.data, default=str))
    hunt.check("prefect:database", stored)


# ------------------------------------------------------------------ Dagster


def test_dagster_event_logs_and_metadata(hunt, server, tree, tmp_path, monkeypatch):
    from dagster import DagsterInstance, EnvVar, asset, materialize
    from dagster._serdes import serialize_value

    monkeypatch.setenv("SECRETS_TEST_TILED_KEY", KEY)
    monkeypatch.setenv("SECRETS_TEST_WRONG_KEY", WRONG_KEY)
    tiled = TiledResource(uri=server.uri, api_key=EnvVar("SECRETS_TEST_TILED_KEY"), base_path=f"{tree}/dagster")
    rejected = TiledResource(uri=server.uri, api_key=EnvVar("SECRETS_TEST_WRONG_KEY"))
    resolved = []

    @asset
    def stored(tiled: TiledResource) -> np.ndarray:
        resolved.append(tiled)  # the resource as the run sees it: the key resolved
        print("stored with", tiled)  # compute logs capture what assets print
        return np.arange(6.0)

    @asset
    def broken(stored: np.ndarray) -> None:
        raise RuntimeError("failing on purpose, after loading")

    directory = tmp_path / "dagster-home"
    directory.mkdir()
    with DagsterInstance.local_temp(tempdir=str(directory)) as instance:
        results = [
            materialize([stored], resources={"tiled": tiled, "io_manager": TiledIOManager(tiled=tiled)},
                        instance=instance),
            materialize([stored, broken], resources={"tiled": tiled, "io_manager": TiledIOManager(tiled=tiled)},
                        instance=instance, selection=[broken], raise_on_error=False),
            materialize([stored], resources={"tiled": rejected, "io_manager": TiledIOManager(tiled=rejected)},
                        instance=instance, raise_on_error=False),
        ]
        assert [result.success for result in results] == [True, False, False]
        texts = [repr(resolved[0]), str(resolved[0])]
        for result in results:
            texts.append(serialize_value(instance.get_run_by_id(result.run_id)))
            texts += [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
            texts += [e.event_specific_data.error.to_string() for e in result.get_step_failure_events()]
            texts += [serialize_value(e.step_materialization_data.materialization.metadata)
                      for e in result.get_asset_materialization_events()]
    joined = "\n".join(texts)
    assert "failing on purpose" in joined and "dagster/uri" in joined and "AuthenticationError" in joined
    hunt.check("dagster:resolved resource", texts[0], texts[1])
    hunt.check("dagster:runs, event logs, failures and materialization metadata", joined)
    files = [path for path in directory.rglob("*") if path.is_file()]
    assert any(path.suffix == ".db" for path in files)  # run and event storage
    for path in files:
        hunt.check(f"dagster:file {path.name}", path.read_bytes())


# ------------------------------------------------------------------ the CLI


def test_cli_output(hunt, server, keyed, tree, capsys, monkeypatch, quick_retries):
    from tiled_core.cli import main

    uri = f"{server.uri}/metadata/{tree}"
    dest = keyed.create_container(f"cli-{uuid.uuid4().hex[:6]}")
    refused = f"http://127.0.0.1:{_free_port()}/api/v1"
    cases = [  # (arguments, key in TILED_API_KEY, expected exit status)
        (["ls", uri, "--long"], KEY, 0),
        (["search", uri, "unit=mm", "--long"], KEY, 0),
        (["copy", f"{uri}/inner", f"{server.uri}/metadata/{dest.path}", "--no-progress"], KEY, 0),
        (["ls", uri], WRONG_KEY, 1),
        (["ls", f"{uri}/no-such-node"], KEY, 1),
        (["ls", refused], KEY, 1),
        (["ls", f"{uri}?api_key={KEY}"], None, 2),
        (["ls", uri, "--api-key", KEY], None, 2),  # the reference CLI's option, tried out of habit
        (["ls", uri, f"--api-key={KEY}"], None, 2),
    ]
    outputs = []
    for arguments, key, status in cases:
        if key is None:
            monkeypatch.delenv("TILED_API_KEY", raising=False)
        else:
            monkeypatch.setenv("TILED_API_KEY", key)
        try:
            code = main(arguments)
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
        out, err = capsys.readouterr()
        outputs.append((arguments[0], code, out, err))
        assert code == status, (arguments[0], code, err[-300:].replace(KEY, "<KEY>"))
        hunt.check(f"cli:{arguments[0]} (exit {code})", out, err)
    assert "array" in outputs[0][2] and "copied" in outputs[2][2] and "rejected" in outputs[3][3]
    # As a separate process, as pipelines run it.
    env = {**os.environ, "TILED_API_KEY": WRONG_KEY,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "integrations")])}
    completed = subprocess.run([sys.executable, "-m", "tiled_core.cli", "ls", uri], capture_output=True, env=env,
                               timeout=120)
    assert completed.returncode == 1 and b"rejected" in completed.stderr
    hunt.check("cli:subprocess (exit 1)", completed.stdout, completed.stderr)


# ------------------------------------------------------------------ token and cache files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_and_cache_files(hunt, server, keyed, tree, login, environment):
    from tiled_core.client.cache import Cache
    from tiled_core.transport import cache_directory, token_file_for

    directory = cache_directory()
    assert directory == environment / "cache"
    token_file = token_file_for(login.context.api_uri)
    assert token_file.exists() and token_file.parent.parent == directory
    # Files 0600, directories 0700, including the cache directory tiled_core made.
    for path in (token_file, token_file.with_name(token_file.name + ".lock")):
        assert _mode(path) == 0o600, path.name
    assert _mode(token_file.parent) == 0o700 and _mode(directory) == 0o700
    assert not list(token_file.parent.glob(".tokens-*"))  # no temporary copies left behind
    # The token file holds the login's tokens (that is its job), but no password and no key.
    not_tokens = Hunt()
    for needle, name in HUNT.needles.items():
        if "token" not in name:
            not_tokens.needles[needle] = name
    not_tokens.check("file:token file", token_file.read_bytes())
    hunt.surfaces["file"] += 1
    # The response cache, filled through an API key and a login session.
    cache = Cache()
    with_key = from_uri(server.uri, api_key=KEY, cache=cache)
    for key in ("array", "table", "sparse", "ragged", "dataset"):
        with_key[tree][key].read()
    login.context.cache = cache
    try:
        login.context.whoami()
        list(login)
    finally:
        login.context.cache = None
    with_key.context.close()
    assert cache.count() > 0
    cache_files = sorted(directory.glob(cache.filepath.name + "*"))
    assert cache.filepath in cache_files
    for path in cache_files:
        assert _mode(path) == 0o600, path.name
        hunt.check(f"file:{path.name}", path.read_bytes())
