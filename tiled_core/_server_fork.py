"""Start ``tiled serve`` processes by forking one that has already imported the server.

Importing tiled's server (FastAPI, SQLAlchemy, pandas, zarr...) is nearly all of
the 3 CPU-seconds a server takes to start. A process that starts several (a test
session, a pipeline with a source and a destination) pays it once: the first
start launches a *fork server*, ``python -m tiled_core._server_fork``, which
imports the server modules and then forks a child per server. Each child is the
real ``tiled serve`` command (tiled's own command line, run as ``python -m tiled``
would), in a session of its own, with its own environment, working directory,
log file and guard pipe (see ``_server_guard``): only the import is shared.

The fork server is a child of the process that started it and exits when that
process goes (its socket closes). Servers do not depend on it: each watches the
guard pipe that the starting process holds, so they stop when that process dies
even if the fork server died first. Where forking is not available (not Linux),
``spawn`` returns ``None`` and the caller starts the server as a plain subprocess.

Usage (internal): ``python -m tiled_core._server_fork FD``.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

#: Modules the server's start imports; a failure to import one only makes starts slower.
_PRELOAD = (
    "tiled.commandline.main", "tiled.commandline._serve", "tiled.server.app", "tiled.server.router",
    "tiled.catalog.adapter", "tiled.config", "tiled.authenticators", "tiled.adapters.zarr",
    "tiled.adapters.parquet", "tiled.adapters.arrow", "tiled.adapters.sql", "tiled.adapters.csv",
    "tiled.adapters.hdf5", "tiled.adapters.tiff", "tiled.adapters.awkward_buffers",
    "tiled.adapters.sparse_blocks_parquet", "uvicorn", "uvicorn.loops.auto", "uvicorn.protocols.http.auto",
)
_MESSAGE_BYTES = 1 << 20


# -- the starting process's side ---------------------------------------------------------------

class ForkedServer:
    """The part of ``subprocess.Popen`` that ``LocalTiledServer`` uses, for a forked server.

    ``stdin`` is the write end of the server's guard pipe; ``poll``/``wait``
    learn the exit status from the fork server, which reaps its children.
    """

    def __init__(self, pid: int, stdin, launcher: "_Launcher") -> None:
        self.pid = pid
        self.stdin = stdin
        self.returncode: int | None = None
        self._launcher = launcher

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._launcher.returncode(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._launcher.wait(self.pid, timeout)
        return self.returncode


class _Launcher:
    """One fork server (per starting process and server interpreter) and the exit codes it reports."""

    def __init__(self, python: str) -> None:
        self.owner = os.getpid()
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen(
                [python, "-m", "tiled_core._server_fork", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C at a terminal stops the servers through their guards, not it
            )
        self._lock = threading.Lock()  # one request at a time on the socket
        self._exits: dict[int, int] = {}
        self._changed = threading.Condition()
        self._reply: dict | None = None
        self._lost = False
        self._sock.settimeout(120)  # the fork server's imports
        try:
            reply = self._receive()
        finally:
            self._sock.settimeout(None)
        if reply.get("ready") is not True:
            raise OSError(f"the fork server did not start: {reply}")
        threading.Thread(target=self._read_exits, name="tiled-core-fork-server", daemon=True).start()
        atexit.register(self.close)

    def _receive(self) -> dict:
        data = self._sock.recv(_MESSAGE_BYTES)
        return json.loads(data) if data else {}

    def _read_exits(self) -> None:
        while True:
            try:
                message = self._receive()
            except OSError:
                message = {}
            with self._changed:
                if not message:
                    self._lost = True
                elif "exited" in message:
                    self._exits[message["exited"]] = message["returncode"]
                else:
                    self._reply = message
                self._changed.notify_all()
            if not message:
                return

    def spawn(self, argv: list[str], env: dict, log_fd: int, stdin_fd: int) -> int:
        request = json.dumps({"argv": argv, "env": env, "cwd": os.getcwd()}).encode()
        with self._lock, self._changed:
            self._reply = None
            socket.send_fds(self._sock, [request], [log_fd, stdin_fd])
            if not self._changed.wait_for(lambda: self._reply is not None or self._lost, timeout=30):
                raise OSError("the fork server did not answer")
            if self._lost:
                raise OSError("the fork server exited")
            return self._reply["pid"]

    def returncode(self, pid: int) -> int | None:
        with self._changed:
            if pid in self._exits:
                return self._exits[pid]
            if self._lost:  # nobody reaps it for us any more: tell by whether it still exists
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return -1
            return None

    def wait(self, pid: int, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while (code := self.returncode(pid)) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise subprocess.TimeoutExpired(f"tiled server {pid}", timeout)
                # once the fork server is gone nothing notifies: look again every 0.1 s
                self._changed.wait(0.1 if self._lost else remaining)
            return code

    def close(self) -> None:
        """Let the fork server go (its socket closes, it exits) and reap it; its servers run on."""
        if os.getpid() != self.owner:  # a forked copy of the starting process: not ours to stop
            return
        self._sock.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def alive(self) -> bool:
        return not self._lost and self._process.poll() is None


_launchers: dict[str, _Launcher] = {}
_launchers_lock = threading.Lock()


def spawn(python: str, argv: list[str], env: dict, log) -> ForkedServer | None:
    """Start ``python -m tiled_core._server_guard *argv`` as a forked child; ``None`` where that cannot be done."""
    if not sys.platform.startswith("linux") or os.environ.get("TILED_CORE_SERVER_FORK") == "0":
        return None
    try:
        with _launchers_lock:
            launcher = _launchers.get(python)
            if launcher is None or launcher.owner != os.getpid() or not launcher.alive():
                launcher = _launchers[python] = _Launcher(python)
        read_end, write_end = os.pipe()
        try:
            pid = launcher.spawn(argv, env, log.fileno(), read_end)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
    except OSError:
        return None  # the plain subprocess still works
    return ForkedServer(pid, os.fdopen(write_end, "wb"), launcher)


# -- the fork server -----------------------------------------------------------------------------

def _preload() -> None:
    import importlib

    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional adapter; the child imports what it needs
            pass


def _run_child(sock: socket.socket, request: dict, log_fd: int, stdin_fd: int) -> None:
    """In the forked child: become the server process, as if started by Popen."""
    import random

    from tiled_core import _server_guard

    sock.close()
    os.dup2(stdin_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(stdin_fd)
    os.close(log_fd)
    env = dict(request["env"])
    # tiled's settings draw their random defaults when imported, here before the fork: give each
    # server fresh ones, as a server started on its own has (its configuration still wins).
    env.setdefault("TILED_SINGLE_USER_API_KEY", secrets.token_hex(32))
    env.setdefault("TILED_SECRET_KEYS", json.dumps([secrets.token_hex(32)]))
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    random.seed()
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    sys.stdin = os.fdopen(0, "r")
    sys.argv = ["tiled_core._server_guard", *request["argv"]]
    try:
        _server_guard.main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported in the server's log, as an uncaught error would be
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _serve(sock: socket.socket) -> None:
    send_lock = threading.Lock()

    def send(message: dict) -> None:
        with send_lock:
            sock.send(json.dumps(message).encode())

    def reap(pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            send({"exited": pid, "returncode": code})
        except OSError:
            pass

    send({"ready": True})
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, _MESSAGE_BYTES, 2)
        except OSError:
            return
        if not data:
            return  # the starting process is gone
        request = json.loads(data)
        log_fd, stdin_fd = fds
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()  # a group of its own: killpg(pid) reaches the server and nothing else
            except OSError:
                pass
            _run_child(sock, request, log_fd, stdin_fd)
        try:
            os.setpgid(pid, pid)  # before the pid is handed out, whichever of the two runs first
        except OSError:
            pass
        os.close(log_fd)
        os.close(stdin_fd)
        threading.Thread(target=reap, args=(pid,), daemon=True).start()
        send({"pid": pid})


def main() -> None:
    import warnings

    # Python 3.12+ warns on fork() beside threads; the only others here wait in waitpid.
    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
    sock = socket.socket(fileno=int(sys.argv[1]))
    _preload()
    _serve(sock)


if __name__ == "__main__":
    main()
