"""Getting an API key given directly to ``from_uri`` onto Dask workers, out of band.

A key passed as ``api_key=`` has no source a worker could read it from, so it is
not put into task graphs at all (pickling the node's session handle fails).
:func:`share_credentials` ships it once per cluster inside a Dask *worker
plugin* (``Client.register_plugin``): the scheduler forwards the plugin to each
current and future worker, whose ``setup`` files the key in a per-process table
under a random token. From then on the graph carries only
``WorkerCredential(token)``, which workers resolve from that table.

On a long-lived cluster serving many clients or flows, plugins do not pile
up: one plugin per credential and cluster (sharing the same key again reuses
it), replaced when a context shares a different key, and removed from the
cluster when the last context that shared it closes (its workers then forget
the key and close the sessions they opened with it).

The key is therefore never in a task, a task's ``run_spec`` on the scheduler,
the dashboard or the logs; it does live (pickled) in the scheduler's table of
worker plugins, so the scheduler must be as trusted as the workers. Prefer an
environment variable on the workers (``EnvVarCredential``) when you can.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import uuid
import weakref

from distributed.diagnostics.plugin import WorkerPlugin

from ._handles import CredentialSource, close_reopened

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
        close_reopened(WorkerCredential(self._token))

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


@dataclasses.dataclass
class _Registration:
    """One credential's plugin on one cluster, and the contexts (by id) that use it."""

    name: str
    token: str
    dask_client: object
    users: set = dataclasses.field(default_factory=set)


# (scheduler address, digest of the key) -> registration, in this process only. The token is one per
# key (the same on every cluster, so a node's graphs work on any cluster it was shared with); the
# digest keeps the key itself out of these tables (the sessions hold it anyway).
_REGISTERED: dict[tuple[str, str], _Registration] = {}
_TOKENS: dict[str, str] = {}
_SHARED_BY: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # context -> {cluster: digest}


def _cluster_of(dask_client) -> str:
    scheduler = getattr(dask_client, "scheduler", None)
    return str(getattr(scheduler, "address", None) or id(dask_client))


def share_credentials(dask_client, *nodes) -> None:
    """Ship the API key of each node (client or Context) to ``dask_client``'s workers, out of band.

    Nodes whose key the workers can already find (an environment variable or
    anonymous access) are left as they are. Call it before computing graphs
    that read from (or copy to) those nodes; calling it again is cheap. One
    worker plugin per key and cluster: a key shared again reuses it; a node
    whose context now has another key gets a new one and its old one is
    released; closing the context releases its plugins, each removed from
    the cluster once no open context uses it.

    Raises TypeError for something that is not a tiled_core client or Context,
    ValueError when the credential is not an API key (a custom header).
    """
    cluster = _cluster_of(dask_client)
    for node in nodes:
        context, handle = _handle_of(node)
        if handle.source is not None and not isinstance(handle.source, WorkerCredential):
            continue
        secret = context.session.reveal_api_key()
        if secret is None:
            raise ValueError(
                f"{context!r} sends its credential in a custom header, which cannot be shared; "
                "use an API key or EnvVarCredential"
            )
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with _LOCK:
            token = _TOKENS.setdefault(digest, uuid.uuid4().hex)  # random: nothing in graphs derives from the key
            shared = _SHARED_BY.setdefault(context, {})
            previous = shared.get(cluster)
            registration = _REGISTERED.get((cluster, digest))
            fresh = registration is None
            if fresh:
                registration = _REGISTERED[(cluster, digest)] = _Registration(
                    f"tiled-core-credential-{token}", token, dask_client)
            new_user = id(context) not in registration.users
            registration.users.add(id(context))
            shared[cluster] = digest
        if fresh:
            dask_client.register_plugin(_CredentialPlugin(token, secret), name=registration.name)
        if new_user:
            context._closers.append(lambda context_id=id(context), key=(cluster, digest): _release(context_id, key))
        if previous is not None and previous != digest:
            _release(id(context), (cluster, previous))  # this context's key was replaced
        handle.use_source(WorkerCredential(token))


def _release(context_id: int, key: tuple[str, str]) -> None:
    """A context no longer uses the plugin under ``key``; unregister it when nobody does."""
    with _LOCK:
        registration = _REGISTERED.get(key)
        if registration is None:
            return
        registration.users.discard(context_id)
        if registration.users:
            return
        del _REGISTERED[key]
        if not any(digest == key[1] for _, digest in _REGISTERED):
            _TOKENS.pop(key[1], None)
    try:
        registration.dask_client.unregister_worker_plugin(registration.name)
    except Exception:  # the cluster or its client is gone already: nothing is left to remove
        pass


def registered_plugins() -> list[str]:
    """The names of the credential plugins this process has on clusters (for tests and diagnostics)."""
    with _LOCK:
        return sorted(registration.name for registration in _REGISTERED.values())
