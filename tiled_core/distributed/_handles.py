"""Picklable references to a Session that never carry the secret.

In the process that made it, a handle returns the live Session. Pickled (for a
Dask worker), it carries only the server URL and a *credential source*, such as
the name of an environment variable, from which the worker reopens its own
Session once per process, with the driver's retry policy (``RetryPolicy``,
which holds no secret).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
import weakref

from ..transport import FileTokenStore, Session, TokenAuth

__all__ = ["CredentialSource", "EnvVarCredential", "TokenFileCredential", "SessionHandle", "close_reopened"]


class CredentialSource:
    """Where a worker finds its credential. Subclasses resolve it on the worker."""

    def resolve(self) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def open_session(self, base_url: str) -> Session:
        """A new Session for ``base_url`` with this credential."""
        return Session(base_url, api_key=self.resolve())


@dataclasses.dataclass(frozen=True)
class EnvVarCredential(CredentialSource):
    """The API key is in this environment variable on every worker."""

    name: str = "TILED_API_KEY"

    def resolve(self) -> str | None:
        value = os.environ.get(self.name)
        if not value:
            raise RuntimeError(f"environment variable {self.name} (the Tiled API key) is not set on this worker")
        return value


@dataclasses.dataclass(frozen=True)
class TokenFileCredential(CredentialSource):
    """A login session's token file (shared file system or same machine): workers refresh it safely together."""

    path: str

    def resolve(self) -> None:
        return None

    def open_session(self, base_url: str) -> Session:
        store = FileTokenStore(self.path)
        if store.load() is None:
            raise RuntimeError(f"no login tokens in {self.path} on this worker; log in first (client.login())")
        session = Session(base_url)
        session.set_auth(TokenAuth(store, session.token_refresher("auth/session/refresh"), server=base_url))
        return session


@dataclasses.dataclass(frozen=True)
class _Anonymous(CredentialSource):
    def resolve(self) -> None:
        return None


ANONYMOUS = _Anonymous()

_LIVE: "weakref.WeakValueDictionary[str, Session]" = weakref.WeakValueDictionary()
_REOPENED: dict[tuple, Session] = {}
_LOCK = threading.Lock()


class SessionHandle:
    """A reference to a Session that can be put in a Dask graph."""

    __slots__ = ("_id", "_base_url", "_source", "_session", "_retry")

    def __init__(self, session: Session, source: CredentialSource | None) -> None:
        self._id = uuid.uuid4().hex
        self._base_url = session.base_url
        self._source = source
        self._session = session  # keeps the connection alive as long as a graph needs it
        self._retry = None  # on workers: the driver's retry policy, from the pickle
        _LIVE[self._id] = session

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def source(self) -> CredentialSource | None:
        """Where other processes find the credential (None: it was given directly and is not shipped)."""
        return self._source

    def use_source(self, source: CredentialSource) -> None:
        """From now on, pickles of this handle tell workers to resolve the credential from ``source``."""
        if not isinstance(source, CredentialSource):
            raise TypeError(f"source must be a CredentialSource, not {type(source).__name__}")
        self._source = source

    def get(self) -> Session:
        """The live Session here, or one reopened from the credential source (once per process)."""
        if self._session is not None:
            return self._session
        if self._source is None:
            raise RuntimeError(
                f"no session for {self._base_url} in this process, and its credential was given directly "
                "(or kept in memory only), so it was not shipped; set TILED_API_KEY on the workers and connect "
                "without api_key=, log in with remember_me=True, or ship an API key once with "
                "tiled_core.distributed.share_credentials(dask_client, node)"
            )
        key = (self._base_url, self._source, self._retry)
        with _LOCK:
            session = _REOPENED.get(key)
            if session is None:
                session = self._source.open_session(self._base_url)
                if self._retry is not None:  # the driver's retry settings, not the worker's environment
                    session.retry = self._retry
                _REOPENED[key] = session
        return session

    def __reduce__(self):
        if self._source is None:
            raise TypeError(
                "this client's credential (an API key passed directly, or a login kept in memory only) is not "
                "put into pickles or task graphs; use TILED_API_KEY (or a profile), or log in with "
                "remember_me=True, so workers can find it themselves, or ship an API key once, out of band, "
                "with tiled_core.distributed.share_credentials(dask_client, node)"
            )
        retry = self._session.retry if self._session is not None else self._retry
        return (_rebuild_handle, (self._id, self._base_url, self._source, retry))

    def __dask_tokenize__(self):
        # The id (kept through pickling) tells connections apart: dask-expr shares expressions
        # with equal tokens, so two connections to one server must not tokenize alike.
        return ("tiled-core-session", self._base_url, self._id)

    def __repr__(self) -> str:
        return f"<SessionHandle {self._base_url}>"


def _rebuild_handle(handle_id: str, base_url: str, source: CredentialSource, retry=None) -> SessionHandle:
    # A module-level function, not a classmethod: cloudpickle (Prefect, Dask's fallback) pickles a
    # classmethod's function by value, dragging in this module's weak registry, which cannot be pickled.
    handle = SessionHandle.__new__(SessionHandle)
    handle._id, handle._base_url, handle._source, handle._retry = handle_id, base_url, source, retry
    handle._session = _LIVE.get(handle_id)
    return handle


def close_reopened(source: CredentialSource) -> None:
    """Close and forget this process's sessions reopened from ``source`` (its credential is gone)."""
    with _LOCK:
        keys = [key for key in _REOPENED if key[1] == source]
        sessions = [_REOPENED.pop(key) for key in keys]
    for session in sessions:
        session.close()
