"""Run a real Tiled server in a subprocess on a loopback port.

Used by the tests, the examples and the embedded default of the main job. The
server itself comes from the ``tiled[server]`` package (``pip install
"tiled-core[server]"``); ``tiled_core`` never imports it, it only runs it.

A process that starts several servers pays for importing the server once: the
first start launches a fork server that imports it, and every server is forked
from there (``tiled_core._server_fork``; about 0.5 s and 0.3 CPU-s a start
instead of 3). ``TILED_CORE_SERVER_FORK=0`` starts each as a plain subprocess.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from . import _server_fork

__all__ = ["LocalTiledServer", "ConfiguredTiledServer", "ServerStartError"]


class ServerStartError(RuntimeError):
    """The server process exited or did not become ready in time."""


class _PortTaken(ServerStartError):
    """Another server answers on the port this one was to use."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_python() -> str:
    """The interpreter that runs ``tiled serve``: this one, or ``$TILED_CORE_SERVER_PYTHON``.

    CI tests the client against the oldest numpy/pandas/pyarrow it supports
    while the server runs in an environment of its own (tiled's server needs newer ones).
    """
    return os.environ.get("TILED_CORE_SERVER_PYTHON") or sys.executable


def _copy_empty_catalog(destination: Path) -> bool:
    """Copy an empty, initialised catalog database to ``destination``; False when there is none to copy.

    ``serve --init`` builds the catalog's schema (about 3 CPU-seconds, half of a
    server's start). It is built once per machine, user and tiled version, in the
    temporary directory, and copied for every new server after that.
    """
    if _server_python() != sys.executable:
        return False  # another environment: its tiled version is not known here
    try:
        from importlib.metadata import version

        tiled_version = version("tiled")
    except Exception:
        return False
    template = Path(tempfile.gettempdir()) / f"tiled-core-{os.getuid()}" / f"empty-catalog-{tiled_version}.db"
    template.parent.mkdir(mode=0o700, exist_ok=True)
    if template.parent.stat().st_uid != os.getuid():
        return False  # not made by this user: not to be trusted
    if not template.exists():
        building = template.with_suffix(f".{os.getpid()}.building")
        building.unlink(missing_ok=True)
        made = subprocess.run(
            [sys.executable, "-m", "tiled", "catalog", "init", f"sqlite:///{building}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "DO_NOT_TRACK": "1"},
        )
        if made.returncode != 0 or not building.exists():
            building.unlink(missing_ok=True)
            return False
        os.replace(building, template)  # atomic: a concurrent start sees all of it or none
    shutil.copyfile(template, destination)
    return True


class LocalTiledServer:
    """A real ``tiled serve catalog`` process on ``127.0.0.1``.

    Use as a context manager::

        with LocalTiledServer() as server:
            client = from_uri(server.uri, api_key=server.api_key)

    Arguments:
        directory: where the catalog and its data live. ``None`` (default) makes
            a temporary directory that is removed on ``stop()``; a given
            directory is kept, so ``restart()`` (or a new server on the same
            directory) serves the same data.
        api_key: the single-user API key; random when not given.
        port: a fixed port; a free one when not given.
        public: allow anonymous reads.
        readable_storage: directories (one, or a list) whose existing files the
            server may read, for registering them (``Container.register``).
        startup_timeout: seconds to wait for ``/healthz``.

    Raises ``ServerStartError`` (with the end of the server's log) when the
    process dies or is not ready within ``startup_timeout``.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        api_key: str | None = None,
        port: int | None = None,
        public: bool = False,
        readable_storage: str | os.PathLike | list | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if readable_storage is None:
            readable_storage = []
        elif isinstance(readable_storage, (str, os.PathLike)):
            readable_storage = [readable_storage]
        self._readable = [str(Path(r).absolute()) for r in readable_storage]
        self._owns_directory = directory is None
        self._directory = Path(directory) if directory is not None else None
        self._api_key = api_key or secrets.token_hex(16)
        self._port = port
        self._public = public
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen | None = None
        self._log_path: Path | None = None

    # -- public properties -------------------------------------------------
    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def root_uri(self) -> str:
        """``http://127.0.0.1:<port>`` (no API path)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        """The API base, ``http://127.0.0.1:<port>/api/v1``."""
        return f"{self.root_uri}/api/v1"

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise RuntimeError("server not started")
        return self._directory

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        where = self.uri if self._port is not None else "(no port yet)"
        return f"<{type(self).__name__} {where} {state}>"

    # -- life cycle ----------------------------------------------------------
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def has_crashed(self) -> bool:
        """True when the process ended by itself (not through ``stop()`` or ``kill()``)."""
        return self._process is not None and self._process.poll() is not None

    def start(self) -> "LocalTiledServer":
        if self.is_running():
            return self
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="tiled-core-server-"))
        self._directory.mkdir(parents=True, exist_ok=True)
        if self._port is not None:
            self._spawn()
            return self
        for attempt in range(3):
            # A free port can be taken by another process before the server binds it.
            self._port = _free_port()
            try:
                self._spawn()
                return self
            except _PortTaken:
                if attempt == 2:
                    raise
        return self

    def _command(self) -> list[str]:
        """The ``tiled`` command line's arguments."""
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        catalog = self.directory / "catalog.db"
        command = [
            "serve", "catalog", str(catalog),
            "--write", str(data),
            "--write", f"duckdb:///{self.directory / 'data.duckdb'}",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]
        for readable in self._readable:
            command += ["--read", readable]
        if not catalog.exists() and not _copy_empty_catalog(catalog):
            command.append("--init")
        if self._public:
            command.append("--public")
        return command

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The key goes through the environment, not argv, so `ps` does not show it.
        env["TILED_SINGLE_USER_API_KEY"] = self._api_key
        env.setdefault("DO_NOT_TRACK", "1")
        return env

    def _secrets(self) -> list[str]:
        """Values masked in ``log_tail``."""
        return [self._api_key]

    def _spawn(self) -> None:
        self._log_path = self.directory / "server.log"
        python, argv, env = _server_python(), ["tiled", *self._command()], self._environment()
        with open(self._log_path, "ab") as log:
            # Forked from a process that has imported the server already (see _server_fork), else a
            # plain subprocess: the same command either way.
            self._process = _server_fork.spawn(python, argv, env, log) or subprocess.Popen(
                # The guard stops the server when this process dies without stop(): see _server_guard.
                [python, "-m", "tiled_core._server_guard", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,
                env=env,
                start_new_session=True,  # so stop() can signal the whole group
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        url = f"{self.root_uri}/healthz"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"tiled server exited with code {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    if self._is_ours():
                        return
                    self._terminate()
                    raise _PortTaken(f"another server answers on port {self.port}")
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self._terminate()
        raise ServerStartError(
            f"tiled server on port {self.port} not ready after {self._startup_timeout}s:\n{self.log_tail()}"
        )

    def _is_ours(self) -> bool:
        # /healthz answers for any server on the port; only ours accepts our key.
        reply = httpx.get(f"{self.uri}/metadata/", headers={"Authorization": f"Apikey {self._api_key}"}, timeout=1.0)
        return reply.status_code == 200

    def log_tail(self, lines: int = 30) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _release(self) -> subprocess.Popen | None:
        """Forget the process and close our end of its guard's pipe; the process if it still runs."""
        process, self._process = self._process, None
        if process is None:
            return None
        process.stdin.close()
        return process if process.poll() is None else None

    def _terminate(self) -> None:
        process = self._release()
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), keeping its directory: a crash."""
        process = self._release()
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and directory."""
        self._terminate()
        self._spawn()

    def stop(self) -> None:
        """Stop the process; remove the directory if it was temporary."""
        self._terminate()
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    close = stop  # the reference's simple server's name for it

    def __enter__(self) -> "LocalTiledServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ConfiguredTiledServer(LocalTiledServer):
    """A real ``tiled serve config`` process on ``127.0.0.1``, from a configuration mapping.

    Arguments:
        config: the service configuration (what the YAML file would hold). In
            string values, ``{directory}`` is replaced by the server's directory.
        secrets: environment variables for the server process only. Refer to
            them in ``config`` as ``${NAME}`` (tiled expands them when it reads
            the file), so passwords stay out of files, argv and logs.
        directory, port, startup_timeout: as for ``LocalTiledServer``.

    Use ``ConfiguredTiledServer.with_passwords(...)`` for a password-protected
    server with tiled's ``DictionaryAuthenticator``. ``api_key`` is unused: a
    server with authentication providers issues keys to logged-in users.
    """

    def __init__(
        self,
        config: dict,
        *,
        secrets: dict[str, str] | None = None,
        directory: str | os.PathLike | None = None,
        port: int | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(directory, port=port, startup_timeout=startup_timeout)
        self._config = config
        self._env_secrets = dict(secrets or {})

    @classmethod
    def with_passwords(
        cls,
        users: dict[str, str],
        *,
        provider: str = "local",
        access_token_max_age: float = 900,
        refresh_token_max_age: float = 7 * 24 * 3600,
        session_max_age: float | None = None,
        allow_anonymous_access: bool = False,
        **kwargs,
    ) -> "ConfiguredTiledServer":
        """A writable catalog behind tiled's ``DictionaryAuthenticator`` (username -> password).

        Token lifetimes are in seconds; short ones make refresh testable.
        """
        secrets_env = {f"TILED_CORE_PASSWORD_{i}": password for i, password in enumerate(users.values())}
        authentication = {
            "providers": [{
                "provider": provider,
                "authenticator": "tiled.authenticators:DictionaryAuthenticator",
                "args": {"users_to_passwords": {
                    user: "${%s}" % name for user, name in zip(users, secrets_env)
                }},
            }],
            "secret_keys": ["${TILED_CORE_SECRET_KEY}"],
            "allow_anonymous_access": allow_anonymous_access,
            "access_token_max_age": access_token_max_age,
            "refresh_token_max_age": refresh_token_max_age,
        }
        if session_max_age is not None:
            authentication["session_max_age"] = session_max_age
        secrets_env["TILED_CORE_SECRET_KEY"] = secrets.token_hex(32)
        config = {
            "authentication": authentication,
            "database": {"uri": "sqlite:///{directory}/auth.db", "init_if_not_exists": True},
            "trees": [{
                "path": "/",
                "tree": "catalog",
                "args": {
                    "uri": "sqlite:///{directory}/catalog.db",
                    "writable_storage": ["{directory}/data"],
                    "init_if_not_exists": True,
                },
            }],
        }
        return cls(config, secrets=secrets_env, **kwargs)

    def _command(self) -> list[str]:
        import yaml

        (self.directory / "data").mkdir(exist_ok=True)
        path = self.directory / "config.yml"
        path.write_text(yaml.safe_dump(_fill_directory(self._config, str(self.directory))))
        return ["serve", "config", str(path),
                "--host", "127.0.0.1", "--port", str(self.port)]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("TILED_SINGLE_USER_API_KEY", None)
        env.update(self._env_secrets)
        env.setdefault("DO_NOT_TRACK", "1")
        return env

    def _secrets(self) -> list[str]:
        return list(self._env_secrets.values())

    def _is_ours(self) -> bool:
        # No single-user key here: recognise our server by its authentication providers.
        about = httpx.get(f"{self.uri}/", timeout=1.0).json()
        offered = [p.get("provider") for p in (about.get("authentication") or {}).get("providers") or []]
        wanted = [p.get("provider") for p in (self._config.get("authentication") or {}).get("providers") or []]
        return offered == wanted


def _fill_directory(value, directory: str):
    if isinstance(value, str):
        return value.replace("{directory}", directory)
    if isinstance(value, dict):
        return {k: _fill_directory(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_directory(v, directory) for v in value]
    return value
