"""Pickling a Context (and so any client): everything but the secret, which stays behind a handle.

A pickle of a ``Context`` carries the server URL, the headers that are not
credentials, timeouts, TLS verification, ``max_connections``, ``trust_env``,
the retry policy, the response cache's settings, the server's about document,
where other processes may find the credential (an environment variable's
name or a token file's path, as Dask graphs carry it), and a
``LocalCredential``: a random token naming the live credential in this
process (``tiled_core.distributed._local``). Never an API key, a token or a
credential header.

Unpickled in this process (or a fork of it) the copy uses the same credential
(a login's copy shares its tokens and refreshes them with its own
connection). Elsewhere it uses the named source if that process has it (for
example ``TILED_API_KEY``), else it has no credential, and a request that
needs one fails with an error saying how to give it.

A ``from_app`` context (an ASGI app in this process) is not picklable, as with
the reference client.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import TYPE_CHECKING, Any

from ..distributed._handles import ANONYMOUS, EnvVarCredential, SessionHandle, TokenFileCredential
from ..distributed._local import LocalCredential, hold
from ..transport import ApiKeyAuth, FileTokenStore, TokenAuth
from ..transport._tokens import TokenStore

if TYPE_CHECKING:
    from .context import Context

__all__ = ["MISSING_CREDENTIAL", "reduce_context", "restore_client", "state_of_client"]

#: What a request that needs the credential says in a process that does not have it.
MISSING_CREDENTIAL = (
    "this client was unpickled in a process that does not hold its credential (credentials never travel in "
    "pickles); give one here: set context.api_key = ..., or set TILED_API_KEY before unpickling, or log in "
    "with context.login()"
)

# Header names that carry a credential: kept out of pickles (they stay behind the LocalCredential).
_SECRET_HEADER = re.compile(r"authorization|cookie|key|token|secret|passw|auth", re.IGNORECASE)


def _split_headers(headers: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    plain = {k: v for k, v in headers.items() if not _SECRET_HEADER.search(k)}
    secret = {k: v for k, v in headers.items() if _SECRET_HEADER.search(k)}
    return plain, secret


def _live_credential(context: "Context") -> tuple[Any, dict[str, str]]:
    """What authenticates this context now: an ApiKeyAuth, a token store, another httpx.Auth; and headers."""
    auth = context.session.auth
    if isinstance(auth, TokenAuth):
        auth = auth.store  # the copy refreshes with its own connection, sharing the tokens
    return auth, _split_headers(context._headers)[1]


def _local_credential(context: "Context") -> LocalCredential | None:
    """The handle naming this context's current credential (made once per credential), or None without one."""
    auth, headers = _live_credential(context)
    if auth is None and not headers:
        return None
    held = context._held
    if held is None or not held[1].same_as(auth, headers):
        held = context._held = hold(auth, headers)
    return held[0]


def reduce_context(context: "Context"):
    """``Context.__reduce__``: see the module. TypeError for ``from_app`` and unpicklable TLS settings."""
    if context._in_process or context._custom_client:
        raise TypeError(
            "a Context talking to an in-process app (Context.from_app) or through a given httpx client cannot "
            "be pickled: that app or client lives in this process; connect over HTTP (from_uri) to pickle"
        )
    verify = context._verify
    if isinstance(verify, ssl.SSLContext):
        raise TypeError("a Context with verify=<ssl.SSLContext> cannot be pickled (an SSLContext cannot); "
                        "give verify a CA bundle path instead")
    session = context.session
    state = {
        "uri": session.base_url,
        "headers": _split_headers(context._headers)[0],
        "timeout": session.timeouts,
        "verify": os.fspath(verify) if isinstance(verify, os.PathLike) else verify,
        "max_connections": context.max_connections,
        "trust_env": context._trust_env,
        "show_progress": context.show_progress,
        "retry": session.retry,
        "cache": session.cache,
        "server_info": context._server_info,
        "credential": _local_credential(context),
        "source": context.session_handle.source,
        "had_credential": session.has_credentials,
    }
    return (_rebuild_context, (state,))


def _rebuild_context(state: dict) -> "Context":
    from .context import Context

    context = Context(state["uri"], headers=state["headers"], cache=state["cache"], timeout=state["timeout"],
                      verify=state["verify"], max_connections=state["max_connections"],
                      trust_env=state["trust_env"], show_progress=state.get("show_progress"))
    session = context.session
    session.retry = state["retry"]
    context._server_info = state["server_info"]
    credential: LocalCredential | None = state["credential"]
    held = credential.resolve() if credential is not None else None
    if held is not None:
        _use_held(context, credential, held, state["source"])
    elif not _use_source(context, state["source"]) and state["had_credential"] and not session.has_credentials:
        session.credential_note = MISSING_CREDENTIAL
    return context


def _use_held(context: "Context", credential: LocalCredential, held, source) -> None:
    """Authenticate as the original did, with the credential this process holds."""
    session = context.session
    context._held = (credential, held)  # this copy keeps the credential alive too
    if held.headers:
        context._headers.update(held.headers)
        session.http_client.headers.update(held.headers)
    auth = held.auth
    if isinstance(auth, TokenStore):
        context._install_tokens(auth)
        return
    session.set_auth(auth)
    if isinstance(auth, ApiKeyAuth) and source is not None and source != ANONYMOUS:
        context._handle = SessionHandle(session, source)  # the same source workers were told of
    else:
        context._handle = SessionHandle(session, None if auth is not None or held.headers else ANONYMOUS)


def _use_source(context: "Context", source) -> bool:
    """In another process: the credential from where the original said others may find it, if it is here."""
    session = context.session
    if source is None or source == ANONYMOUS:
        return False
    if isinstance(source, TokenFileCredential):
        store = FileTokenStore(source.path)
        if store.load() is None:
            return False
        context._install_tokens(store)
        return True
    if isinstance(source, EnvVarCredential) and source.name == "TILED_API_KEY":
        return session.has_api_key  # the constructor read it already, if it is set here
    try:
        key = source.resolve()
    except Exception:  # e.g. a variable not set in this process, or a worker without the shared key
        return False
    if not key:
        return False
    session.set_auth(ApiKeyAuth(key))
    context._handle = SessionHandle(session, source)
    return True


def state_of_client(client) -> dict:
    """A client's pickled state: its attributes, without what holds a connection (no request is sent).

    A listing's deferred structure travels as the request that would fetch it
    (or as the structure, once fetched); metadata revisions are dropped.
    """
    state = dict(client.__dict__)
    state["_metadata_revisions"] = None
    pending = state.get("_pending_structure")
    if pending is not None:
        unfetched = pending.unfetched()
        if unfetched is None:
            client._load_structure()  # in memory already: no request
            state = {**state, "_pending_structure": None, "_item": client._item}
        else:
            state["_pending_structure"] = ("unfetched", *unfetched)
    return state


def restore_client(client, state: dict) -> None:
    """``BaseClient.__setstate__``: a deferred structure is fetched, when needed, with the new context."""
    pending = state.get("_pending_structure")
    if isinstance(pending, tuple):
        from .reading._lazy_structure import PageStructures

        state = {**state, "_pending_structure": PageStructures(state["_context"].session, *pending[1:])}
    client.__dict__.update(state)
