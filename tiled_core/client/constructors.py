"""Entry points: from_uri, from_profile, from_context."""

from __future__ import annotations

from typing import Any

from ..transport import NotFound
from ._dispatch import client_for_item, resolve_structure_clients
from .context import UNSET, Context

__all__ = ["from_uri", "from_profile", "from_context"]


def from_context(
    context: Context,
    structure_clients: Any = "numpy",
    node_path_parts: list[str] | None = None,
    include_data_sources: bool = False,
    remember_me: bool = True,
):
    """A client for the node at ``node_path_parts`` (default: the root) over ``context``.

    Sends one request (the node's metadata). Raises KeyError for an unknown node.
    """
    resolve_structure_clients(structure_clients)  # bad values fail before any request
    parts = [p for p in (node_path_parts or []) if p]
    params = [("omit_links", "true")] + ([("include_data_sources", "true")] if include_data_sources else [])
    try:
        item = context.session.get_document("metadata/" + "/".join(parts), params)["data"]
    except NotFound:
        raise KeyError("/".join(parts)) from None
    return client_for_item(context, structure_clients, item, include_data_sources=include_data_sources)


def from_uri(
    uri: str,
    structure_clients: Any = "numpy",
    *,
    cache: Any = UNSET,
    remember_me: bool = True,
    username: str | None = None,
    auth_provider: str | None = None,
    api_key: str | None = None,
    verify: Any = True,
    prompt_for_reauthentication: Any = None,
    headers: dict[str, str] | None = None,
    timeout: Any = None,
    include_data_sources: bool = False,
    auth: Any = None,
    max_connections: int = 16,
    show_progress: Any = None,
    trust_env: bool = True,
):
    """Connect to a node on a Tiled server.

    Arguments:
        uri: the server (``http://host:port``), its API (``.../api/v1``) or any
            node (``.../api/v1/metadata/a/b``).
        structure_clients: ``"numpy"`` (in-memory results) or ``"dask"`` (lazy).
        api_key: the API key (default: ``TILED_API_KEY``); sent in a header.
        headers, timeout, verify, max_connections, trust_env: connection settings.

    One round trip: the node's own metadata (the server's about document is
    fetched later, only if needed). Raises KeyError for an unknown node,
    AuthenticationError for a rejected key, ConnectionFailed when nothing answers.
    """
    if username is not None or auth_provider is not None or auth is not None:
        raise NotImplementedError("login with username/auth_provider/auth is not part of tiled_core yet; use api_key")
    context, node_path_parts = Context.from_any_uri(
        uri, headers=headers, api_key=api_key, cache=cache, timeout=timeout, verify=verify,
        max_connections=max_connections, trust_env=trust_env,
    )
    try:
        return from_context(context, structure_clients, node_path_parts, include_data_sources)
    except BaseException:
        context.close()
        raise


def from_profile(name: str, structure_clients: Any = None, **kwargs):
    """Connect using a named profile (see ``tiled_core.profiles``); keyword arguments override it."""
    from .. import profiles

    content = profiles.profile_to_from_uri_kwargs(profiles.resolve_profile(name))
    if structure_clients is not None:
        content["structure_clients"] = structure_clients
    content.update(kwargs)
    uri = content.pop("uri")
    return from_uri(uri, **content)
