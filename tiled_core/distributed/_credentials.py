"""Getting an API key given directly to ``from_uri`` onto Dask workers, out of band.

A key passed as ``api_key=`` has no source a worker could read it from, so it is
not put into task graphs at all (pickling the node's session handle fails).
:func:`share_credentials` ships it once per cluster inside a Dask *worker
plugin* (``Client.register_plugin``): the scheduler forwards the plugin to each
current and future worker, whose ``setup`` files the key in a per-process table
under a random token. From then on the graph carries only
``WorkerCredential(token)``, which workers resolve from that table.

The key is therefore never in a task, a task's ``run_spec`` on the scheduler,
the dashboard or the logs; it does live (pickled) in the scheduler's table of
worker plugins, so the scheduler must be as trusted as the workers. Prefer an
environment variable on the workers (``EnvVarCredential``) when you can.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid

from distributed.diagnostics.plugin import WorkerPlugin

from ._handles import CredentialSource

__all__ = ["WorkerCredential", "share_credentials", "use_credential_source"]

_SHARED: dict[str, str] = {}
_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class WorkerCredential(CredentialSource):
    """The key was shipped to the workers by :func:`share_credentials` under ``token``."""

    token: str

    def resolve(self) -> str:
        with _LOCK:
            key = _SHARED.get(self.token)
        if key is None:
            raise RuntimeError(
                "this worker has no shared Tiled credential for this graph; call "
                "tiled_core.distributed.share_credentials(dask_client, node) with a client of this cluster"
            )
        return key


class _CredentialPlugin(WorkerPlugin):
    """Files one API key under a token in each worker process. Its repr never shows the key."""

    def __init__(self, token: str, secret: str) -> None:
        self.name = f"tiled-core-credential-{token}"
        self._token = token
        self._secret = secret

    def setup(self, worker) -> None:
        with _LOCK:
            _SHARED[self._token] = self._secret

    def teardown(self, worker) -> None:
        with _LOCK:
            _SHARED.pop(self._token, None)

    def __repr__(self) -> str:
        return f"<tiled-core credential plugin {self._token}>"


def _handle_of(node):
    context = getattr(node, "context", node)
    handle = getattr(context, "session_handle", None)
    if handle is None:
        raise TypeError(f"expected a tiled_core client or Context, not {type(node).__name__}")
    return context, handle


def use_credential_source(node, source: CredentialSource) -> None:
    """Tell workers to find ``node``'s credential in ``source`` (e.g. ``EnvVarCredential("MY_KEY")``).

    For a key that the caller read from that same source; nothing is checked or shipped.
    """
    _, handle = _handle_of(node)
    handle.use_source(source)


def share_credentials(dask_client, *nodes) -> None:
    """Ship the API key of each node (client or Context) to ``dask_client``'s workers, out of band.

    Nodes whose key the workers can already find (an environment variable or
    anonymous access) are left as they are. Call it once per cluster, before
    computing graphs that read from (or copy to) those nodes.
    """
    for node in nodes:
        context, handle = _handle_of(node)
        if handle.source is not None:
            continue
        secret = context.session.reveal_api_key()
        if secret is None:
            raise ValueError(
                f"{context!r} sends its credential in a custom header, which cannot be shared; "
                "use an API key or EnvVarCredential"
            )
        token = uuid.uuid4().hex  # random: nothing in the graph is derived from the key
        dask_client.register_plugin(_CredentialPlugin(token, secret))
        handle.use_source(WorkerCredential(token))
