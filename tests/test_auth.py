"""Logins, token refresh and storage, API keys: against a real password-protected server.

The server (``auth_server`` in conftest) uses tiled's DictionaryAuthenticator
with users alice and bob and 3-second access tokens. A loopback proxy counts
requests (refreshes, 401s) from outside the client. Token files go to a
temporary ``TILED_CACHE_DIR`` per test. Child processes play the pipelines
that share one token file, and a pseudo-terminal plays the user at a prompt.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import select
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from tiled_core.client import from_context, from_profile, from_uri
from tiled_core.client.login._password import CannotPrompt
from tiled_core.client.context import Context
from tiled_core.transport import AuthenticationError, LoginRequired, PermissionDenied, token_file_for

from _proxy import FaultProxy
from conftest import ACCESS_TOKEN_SECONDS

ROOT = Path(__file__).resolve().parents[1]
DEVICE_CODE_NOTE = "DictionaryAuthenticator is an internal (password) provider: tiled 0.2.20 offers no device code for it"


@pytest.fixture(autouse=True)
def token_dir(tmp_path, monkeypatch):
    """Token files (and default caches) in a fresh directory; no key from the environment."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("TILED_CACHE_DIR", str(directory))
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    monkeypatch.delenv("TILED_FORCE_PROMPT", raising=False)
    return directory


@pytest.fixture(scope="module")
def auth_proxy(auth_server):
    """The loopback proxy in front of the password-protected server."""
    with FaultProxy("127.0.0.1", auth_server.port) as p:
        yield p


@pytest.fixture
def login(auth_server):
    """``login(user, uri=..., remember_me=...)`` -> a logged-in Context, closed afterwards."""
    contexts = []

    def make(user: str = "alice", *, uri: str | None = None, remember_me: bool = True) -> Context:
        context = Context(uri or auth_server.uri)
        contexts.append(context)
        context.login(username=user, password=auth_server.passwords[user], remember_me=remember_me)
        return context

    yield make
    for context in contexts:
        context.close()


def _child_env(token_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TILED_API_KEY", "TILED_FORCE_PROMPT")}
    env["TILED_CACHE_DIR"] = str(token_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _secrets_of(context: Context) -> list[str]:
    tokens = context.tokens
    return [tokens["access_token"], tokens["refresh_token"]]


def _assert_absent(secrets: list[str], *texts: str) -> None:
    """No secret in any text (failures name neither, so pytest's report does not leak them)."""
    for i, secret in enumerate(secrets):
        for j, text in enumerate(texts):
            leaked = secret in text
            assert not leaked, f"secret #{i} appears in text #{j}"


# ------------------------------------------------------------------ logging in


def test_login_with_arguments(auth_server, login, token_dir):
    context = login("alice")
    assert context.authenticated
    assert context.whoami()["identities"][0]["id"] == "alice"
    client = from_context(context)
    key = f"a-{uuid.uuid4().hex[:8]}"
    client.write_array(np.arange(6.0), key=key)
    np.testing.assert_array_equal(client[key].read(), np.arange(6.0))
    assert set(context.tokens) == {"access_token", "refresh_token"}
    assert "alice" in repr(context)
    # The token file: one per server, mode 0600 in a 0700 directory.
    path = token_file_for(context.api_uri)
    assert path.parent.parent == token_dir
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    same = json.loads(path.read_text())["access_token"] == context.tokens["access_token"]
    assert same


def test_wrong_password_is_a_clear_error(auth_server, token_dir):
    wrong = "wrong-" + uuid.uuid4().hex
    with Context(auth_server.uri) as context:
        with pytest.raises(AuthenticationError) as info:
            context.login(username="alice", password=wrong)
        assert "username or password" in str(info.value) and f"127.0.0.1:{auth_server.port}" in str(info.value)
        assert info.value.status == 401
        _assert_absent([wrong], str(info.value), repr(info.value))
        assert not context.authenticated
    assert not token_file_for(auth_server.uri).exists()


def test_no_terminal_means_an_error_not_a_prompt(auth_server):
    """In-process: stdin is not a terminal under pytest."""
    with Context(auth_server.uri) as context:
        with pytest.raises(CannotPrompt, match="no terminal"):
            context.login(username="alice")
        with pytest.raises(CannotPrompt, match="no terminal"):
            context.login()
    with pytest.raises(AuthenticationError, match="needs a login") as info:
        from_uri(auth_server.uri)
    assert "from_context" in str(info.value)


def test_pipeline_without_credentials_fails_at_once(auth_server, token_dir):
    """A child whose stdin is an open pipe nobody writes to: it must fail, not wait for input."""
    script = textwrap.dedent(f"""
        from tiled_core.client import from_uri
        from tiled_core.client.context import Context
        try:
            Context({auth_server.uri!r}).login(username="alice")
        except Exception as error:
            print("login:", type(error).__name__)
        from_uri({auth_server.uri!r})
    """)
    completed = subprocess.run(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, capture_output=True, text=True,
        env=_child_env(token_dir), timeout=120,
    )
    assert "login: CannotPrompt" in completed.stdout
    assert completed.returncode != 0 and "AuthenticationError" in completed.stderr


def test_prompt_at_a_terminal_hides_the_password(auth_server, token_dir):
    """A child on a pseudo-terminal answers the prompts; the password is never echoed."""
    import pty

    password = auth_server.passwords["bob"]
    script = textwrap.dedent(f"""
        from tiled_core.client import from_uri
        client = from_uri({auth_server.uri!r})
        print("LOGGED-IN-AS", client.context.whoami()["identities"][0]["id"], flush=True)
    """)
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        os.execve(sys.executable, [sys.executable, "-c", script], _child_env(token_dir))
    output = b""

    def read_until(marker: bytes | None, timeout: float = 120) -> None:
        """Read the child's terminal until ``marker`` shows (None: until the child closes it)."""
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker is None or marker not in output:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {marker!r} in {output!r}")
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child has exited
                chunk = b""
            if not chunk:
                if marker is None:
                    return
                raise AssertionError(f"child ended before {marker!r}: {output!r}")
            output += chunk

    try:
        read_until(b"Username:")
        os.write(fd, b"bob\n")
        read_until(b"Password for bob")
        os.write(fd, password.encode() + b"\n")
        read_until(None)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"LOGGED-IN-AS bob" in output
    assert password.encode() not in output
    assert os.waitstatus_to_exitcode(status) == 0
    assert token_file_for(auth_server.uri).exists()  # remember_me is the default


def test_remember_me_false_keeps_tokens_in_memory(login, auth_server):
    context = login("alice", remember_me=False)
    assert not token_file_for(auth_server.uri).exists()
    assert context.whoami()["identities"][0]["id"] == "alice"
    with pytest.raises(TypeError, match="remember_me=True"):
        pickle.dumps(context.session_handle)


def test_a_login_context_pickles_without_its_tokens(login, auth_server, token_dir):
    """Pickled, a logged-in context carries a handle, not the tokens; here the copy shares the session."""
    for remember_me in (False, True):
        context = login("bob", remember_me=remember_me)
        blob = pickle.dumps(context)
        _assert_absent(_secrets_of(context) + [auth_server.passwords["bob"]], blob.decode("latin-1"))
        copy = pickle.loads(blob)
        try:
            assert copy.whoami()["identities"][0]["id"] == "bob"
            copy.force_auth_refresh()  # refreshed with the copy's own connection, into the shared store
            shared = context.session.auth.store.load().access_token == copy.tokens["access_token"]
            assert shared  # (not compared in the assertion: a failure would print the tokens)
            assert context.whoami()["identities"][0]["id"] == "bob"
        finally:
            copy.close()
    script = textwrap.dedent("""
        import pickle, sys
        context = pickle.loads(sys.stdin.buffer.read())
        print(context.whoami()["identities"][0]["id"])
    """)
    # In another process: the token file (remember_me=True) is where it finds the session.
    completed = subprocess.run([sys.executable, "-c", script], input=blob, capture_output=True,
                               env=_child_env(token_dir), timeout=120)
    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
    assert completed.stdout.decode().strip() == "bob"


def test_saved_tokens_log_in_later_connections(login, auth_server):
    login("alice")
    client = from_uri(auth_server.uri)  # no credentials given: the token file is used
    try:
        assert "alice" in repr(client.context)
        assert client.context.whoami()["identities"][0]["id"] == "alice"
    finally:
        client.context.close()


def test_deprecated_arguments_warn(auth_server, login):
    login("alice")
    with pytest.warns(UserWarning, match="username"):
        client = from_uri(auth_server.uri, username="alice")
    client.context.close()


def test_device_code_not_offered_by_password_provider(auth_server):
    with Context(auth_server.uri) as context:
        (provider,) = context.server_info["authentication"]["providers"]
    assert provider["mode"] == "internal", DEVICE_CODE_NOTE
    assert "client_id" not in provider["links"] and "token_endpoint" not in provider["links"]


# ------------------------------------------------------------------ refresh


def _refreshes(proxy: FaultProxy) -> int:
    return sum(1 for method, target, _ in proxy.requests if method == "POST" and "session/refresh" in target)


def _unauthorized(proxy: FaultProxy) -> int:
    return sum(1 for _, _, status in proxy.responses if status == 401)


def test_refresh_ahead_of_expiry(login, auth_proxy):
    context = login("alice", uri=auth_proxy.uri)
    client = from_context(context)
    before = context.tokens["access_token"]
    auth_proxy.clear()
    time.sleep(ACCESS_TOKEN_SECONDS)  # the access token has (nearly) expired
    list(client)
    assert _refreshes(auth_proxy) == 1
    assert _unauthorized(auth_proxy) == 0  # refreshed before sending, not after a refusal
    changed = context.tokens["access_token"] != before  # (never let pytest print a token)
    assert changed
    # The refresh came first, then the request with the new token.
    methods = [method for method, _, _ in auth_proxy.requests]
    assert methods[:2] == ["POST", "GET"]


def _pretend_fresh(path: Path) -> None:
    """Make a token file claim a long-lived access token (as a skewed clock would)."""
    data = json.loads(path.read_text())
    data["expires_at"] = time.time() + 3600
    path.write_text(json.dumps(data))


def test_refresh_on_401_for_documents_and_bulk_data(login, auth_proxy, auth_server):
    context = login("alice", uri=auth_proxy.uri)
    key = f"r-{uuid.uuid4().hex[:8]}"
    from_context(context).write_array(np.arange(100.0), key=key)
    _pretend_fresh(token_file_for(auth_proxy.uri))
    client = from_uri(auth_proxy.uri)  # loads the file: believes its token is good for an hour
    try:
        array = client[key]
        time.sleep(ACCESS_TOKEN_SECONDS + 0.5)  # now it is not
        auth_proxy.clear()
        np.testing.assert_array_equal(array.read(), np.arange(100.0))  # the bulk (http.client) path
        assert _unauthorized(auth_proxy) == 1 and _refreshes(auth_proxy) == 1
        _pretend_fresh(token_file_for(auth_proxy.uri))
        client.context.session.auth._tokens = client.context.session.auth.store.load()
        time.sleep(ACCESS_TOKEN_SECONDS + 0.5)
        auth_proxy.clear()
        assert client[key].metadata == {}  # the httpx path
        assert _unauthorized(auth_proxy) == 1 and _refreshes(auth_proxy) == 1
        _pretend_fresh(token_file_for(auth_proxy.uri))
        client.context.session.auth._tokens = client.context.session.auth.store.load()
        time.sleep(ACCESS_TOKEN_SECONDS + 0.5)
        auth_proxy.clear()
        client[key].write(np.arange(100.0) * 2)  # a streamed body: refused once (401), then sent anew
        assert _unauthorized(auth_proxy) == 1 and _refreshes(auth_proxy) == 1
        np.testing.assert_array_equal(client[key].read(), np.arange(100.0) * 2)
    finally:
        client.context.close()


def test_force_auth_refresh(login, auth_proxy):
    context = login("alice", uri=auth_proxy.uri)
    before = context.session.auth.tokens.expires_at
    auth_proxy.clear()
    after = context.force_auth_refresh()
    assert _refreshes(auth_proxy) == 1
    assert context.session.auth.tokens.expires_at > before
    same = dict(context.tokens) == dict(after)  # (never let pytest print a token)
    assert same
    with Context(context.api_uri) as anonymous:
        with pytest.raises(RuntimeError, match="not logged in"):
            anonymous.force_auth_refresh()


def test_revoked_session_is_a_clear_error(login, auth_server):
    context = login("alice", remember_me=False)
    secrets = _secrets_of(context)
    session_id = context.whoami()["sessions"][-1]["uuid"]
    context.session.send("DELETE", f"auth/session/revoke/{session_id}")
    with pytest.raises(LoginRequired, match="expired or was revoked") as info:
        context.force_auth_refresh()
    _assert_absent(secrets, str(info.value), repr(info.value))
    assert dict(context.tokens) == {}


def test_ended_saved_session_falls_back_to_a_clear_error(login, auth_server):
    """Saved tokens whose session was revoked: connecting from a pipeline says to log in, at once."""
    context = login("alice")
    session_id = context.whoami()["sessions"][-1]["uuid"]
    context.session.send("DELETE", f"auth/session/revoke/{session_id}")
    path = token_file_for(auth_server.uri)
    data = json.loads(path.read_text())
    data["expires_at"] = time.time() - 1  # due for a refresh, which the server now refuses
    path.write_text(json.dumps(data))
    with pytest.raises(AuthenticationError, match="needs a login"):
        from_uri(auth_server.uri)
    assert not path.exists()  # the dead session's tokens were dropped


# ------------------------------------------------------------------ logout


def test_logout_revokes_and_forgets(login, auth_server):
    context = login("alice")
    path = token_file_for(auth_server.uri)
    refresh_token = context.tokens["refresh_token"]
    other = from_uri(auth_server.uri)  # shares the token file
    try:
        context.logout()
        assert not path.exists() and dict(context.tokens) == {} and not context.authenticated
        # Server side: the session cannot be refreshed any more.
        response = httpx.post(f"{auth_server.uri}/auth/session/refresh", json={"refresh_token": refresh_token})
        assert response.status_code == 401
        with pytest.raises(AuthenticationError):
            from_context(context)
        # Another connection that shared the file cannot refresh either: a clear error.
        with pytest.raises(LoginRequired, match="log in again"):
            other.context.force_auth_refresh()
        context.logout()  # idempotent
    finally:
        other.context.close()


# ------------------------------------------------------------------ several processes

_WORKER = textwrap.dedent("""
    import sys, time
    from tiled_core.client import from_uri
    uri, seconds, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    client = from_uri(uri)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if mode == "refresh":
            client.context.force_auth_refresh()
        else:
            list(client)
        done += 1
    print("OK", done, flush=True)
""")


@pytest.mark.parametrize("mode", ["requests", "refresh"])
def test_processes_share_one_token_file(login, auth_proxy, token_dir, mode):
    """Pipelines in several processes refresh one login's tokens together: nothing fails, the file stays whole.

    "requests": each process reads for ~2.5 token lifetimes (refreshing ahead of
    expiry, under the file lock); "refresh": each forces refreshes in a tight loop.
    """
    login("alice", uri=auth_proxy.uri)
    seconds = 2.5 * ACCESS_TOKEN_SECONDS if mode == "requests" else 3.0
    children = [
        subprocess.Popen([sys.executable, "-c", _WORKER, auth_proxy.uri, str(seconds), mode],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env(token_dir))
        for _ in range(3)
    ]
    try:
        for child in children:
            out, err = child.communicate(timeout=180)
            assert child.returncode == 0, err
            assert out.startswith("OK ") and int(out.split()[1]) > 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    path = token_file_for(auth_proxy.uri)
    assert set(json.loads(path.read_text())) >= {"access_token", "refresh_token", "expires_at"}  # whole JSON
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".tokens-*"))  # no temporary files left behind
    # The file's session is alive: a new connection uses it (refreshing it if due) without logging in.
    client = from_uri(auth_proxy.uri)
    try:
        same = client.context.tokens["access_token"] == json.loads(path.read_text())["access_token"]
        assert same
        assert client.context.whoami()["identities"][0]["id"] == "alice"
    finally:
        client.context.close()
    if mode == "requests":
        # Each refresh served every process: far fewer than one per process per lifetime.
        assert _refreshes(auth_proxy) < 3 * 3


def test_session_handle_reopens_from_the_token_file(login, auth_server, token_dir):
    context = login("alice")
    handle_bytes = pickle.dumps(context.session_handle)
    _assert_absent(_secrets_of(context), handle_bytes.decode("latin-1"))
    script = textwrap.dedent("""
        import pickle, sys
        handle = pickle.loads(sys.stdin.buffer.read())
        print(handle.get().get_document("auth/whoami")["identities"][0]["id"])
    """)
    completed = subprocess.run([sys.executable, "-c", script], input=handle_bytes, capture_output=True,
                               env=_child_env(token_dir), timeout=120)
    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout.decode().strip() == "alice"


# ------------------------------------------------------------------ API keys


def test_api_key_create_use_revoke(login, auth_server, monkeypatch, tmp_path):
    context = login("alice")
    info = context.create_api_key(note="pipeline", expires_in="1h")
    secret = info["secret"]
    assert info["note"] == "pipeline" and secret[:8] == info["first_eight"]
    assert secret not in repr(info) and secret not in str(info)
    # 1. the api_key argument
    client = from_uri(auth_server.uri, api_key=secret)
    assert client.context.whoami()["identities"][0]["id"] == "alice"
    assert client.context.which_api_key()["note"] == "pipeline"
    assert secret not in repr(client.context) + repr(client.context.session) + repr(client.context.session.auth)
    client.context.close()
    # 2. TILED_API_KEY
    monkeypatch.setenv("TILED_API_KEY", secret)
    client = from_uri(auth_server.uri)
    assert client.context.whoami()["identities"][0]["id"] == "alice"
    client.context.close()
    monkeypatch.delenv("TILED_API_KEY")
    # 3. a profile (the key from the environment, expanded when the profile is read)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "lab.yml").write_text(
        f"lab:\n  uri: {auth_server.uri}\n  headers:\n    Authorization: Apikey ${{LAB_KEY}}\n"
    )
    monkeypatch.setenv("TILED_PROFILES", str(profiles))
    monkeypatch.setenv("TILED_SITE_PROFILES", str(tmp_path / "no-site-profiles"))
    monkeypatch.setenv("LAB_KEY", secret)
    client = from_profile("lab")
    assert client.context.whoami()["identities"][0]["id"] == "alice"
    client.context.close()
    client = from_profile("lab", headers={}, api_key=secret)  # an override, as with from_uri
    assert client.context.whoami()["identities"][0]["id"] == "alice"
    client.context.close()
    # revoked: a clear error that does not show the key
    context.revoke_api_key(info["first_eight"])
    with pytest.raises(AuthenticationError, match="wrong, expired or revoked") as caught:
        from_uri(auth_server.uri, api_key=secret)
    _assert_absent([secret], str(caught.value), repr(caught.value))


def test_expired_api_key_is_a_clear_error(login, auth_server):
    info = login("bob").create_api_key(expires_in=1, note="short-lived")
    time.sleep(2)
    with pytest.raises(AuthenticationError, match="wrong, expired or revoked") as caught:
        from_uri(auth_server.uri, api_key=info["secret"])
    _assert_absent([info["secret"]], str(caught.value), repr(caught.value))


def test_api_key_scopes_limit_access(login, auth_server):
    context = login("alice")
    key = f"s-{uuid.uuid4().hex[:8]}"
    from_context(context).write_array(np.arange(3.0), key=key)
    info = context.create_api_key(scopes=["read:metadata"], expires_in="5m")
    client = from_uri(auth_server.uri, api_key=info["secret"])
    try:
        assert key in client
        with pytest.raises((PermissionDenied, AuthenticationError)):
            client[key].read()
    finally:
        client.context.close()
        context.revoke_api_key(info["first_eight"])


def test_api_key_argument_errors(login):
    context = login("alice")
    with pytest.raises(ValueError, match="duration"):
        context.create_api_key(expires_in="soon")
    with pytest.raises(TypeError, match="scopes"):
        context.create_api_key(scopes="read:data")
    with pytest.raises(ValueError, match="first 8"):
        context.revoke_api_key("abc")
    with pytest.raises(RuntimeError, match="An API key is set"):
        with Context(context.api_uri, api_key="0" * 16) as keyed:
            keyed.login(username="alice", password="x")


# ------------------------------------------------------------------ no secrets anywhere


def test_no_secret_in_reprs_logs_or_errors(auth_server, auth_proxy, caplog, token_dir):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + uuid.uuid4().hex
    texts: list[str] = []
    with Context(auth_proxy.uri) as context:
        try:
            context.login(username="alice", password=wrong)
        except AuthenticationError as error:
            texts += [str(error), repr(error)]
        password = auth_server.passwords["alice"]
        context.login(username="alice", password=password)
        secrets = _secrets_of(context) + [password, wrong]
        key = context.create_api_key(expires_in="5m")
        secrets.append(key["secret"])
        auth = context.session.auth
        texts += [repr(context), str(context.tokens), repr(context.tokens), repr(auth), repr(auth.store),
                  repr(auth.tokens), repr(context.session), repr(key), str(key), repr(context.session_handle)]
        auth_proxy.respond(401, headers={"content-type": "application/json"}, body=b'{"detail": "nope"}',
                      match="session/refresh", times=None)
        try:
            try:
                context.force_auth_refresh()
            except LoginRequired as error:
                texts += [str(error), repr(error)]
        finally:
            auth_proxy.clear()
        with pytest.raises(TypeError):
            pickle.dumps(auth)
    for error_text in texts:
        _assert_absent(secrets, error_text)
    _assert_absent(secrets, caplog.text)
    assert "POST" in caplog.text  # httpx did log the requests: the check above saw real log lines
