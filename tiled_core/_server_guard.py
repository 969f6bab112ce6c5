"""Run a module as ``python -m`` would, and stop it when the process that started it dies.

``LocalTiledServer`` starts ``tiled serve`` through this guard with a pipe as
its stdin and keeps the pipe's write end. However the parent ends (``stop()``,
a crash, SIGKILL, a CI job killed on timeout), the kernel closes that end, the
guard reads end-of-file and sends the server SIGTERM: no orphaned servers
holding ports and temporary directories.

Usage: ``python -m tiled_core._server_guard MODULE [ARGS...]``
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading


def _stop_when_parent_goes() -> None:
    while sys.stdin.buffer.read(4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # the server's own graceful shutdown


def main() -> None:
    module = sys.argv[1]
    sys.argv = sys.argv[1:]
    threading.Thread(target=_stop_when_parent_goes, name="parent-watch", daemon=True).start()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
