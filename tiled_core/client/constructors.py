"""Entry points: from_uri, from_profile, from_context; simple (a server of your own, and a client on it)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import httpx

from ..transport import AuthenticationError, LoginRequired, NotFound
from ._dispatch import check_structure_clients, client_for_item, node_item
from .login._password import can_prompt
from .context import UNSET, Context

__all__ = ["from_uri", "from_profile", "from_context", "simple", "SERVERS"]


def from_context(
    context: Context,
    structure_clients: Any = "numpy",
    node_path_parts: list[str] | None = None,
    include_data_sources: bool = False,
    remember_me: bool = True,
):
    """A client for the node at ``node_path_parts`` (default: the root) over ``context``.

    Without other credentials, tokens saved by an earlier login to this server
    are used (``remember_me``). If the server then asks for credentials, the
    user is asked to log in at a terminal; without one (a pipeline), that is a
    clear AuthenticationError at once.

    Sends one request (the node's metadata) when no login is needed. Raises
    KeyError for an unknown node.
    """
    check_structure_clients(structure_clients)  # bad values fail before any request
    parts = [p for p in (node_path_parts or []) if p]
    params = [("omit_links", "true")] + ([("include_data_sources", "true")] if include_data_sources else [])
    if remember_me:
        context._use_cached_tokens()
    path = "metadata/" + "/".join(parts)
    try:
        item = _fetch_item(context, path, params, remember_me)
    except NotFound as error:
        if not parts:  # the API root itself is missing: a wrong URI, not an unknown node
            raise NotFound(error.status, f"{error.detail}; no Tiled API at {context.api_uri} (expected the "
                           "server's address, e.g. http://host:8000, or its .../api/v1)",
                           url=error.url, request_id=error.request_id) from None
        raise KeyError("/".join(parts)) from None
    return client_for_item(context, structure_clients, item, include_data_sources=include_data_sources)


def _fetch_item(context: Context, path: str, params: list, remember_me: bool) -> dict:
    """The node's document, logging in (at a terminal) if the server asks for it."""
    def fetch() -> dict:
        return node_item(context.session.get_document(path, params), context.session.url(path))

    try:
        try:
            return fetch()
        except LoginRequired:
            # A saved session has ended: carry on anonymously (the server may allow that).
            context._forget_login()
            return fetch()
    except AuthenticationError as error:
        if not _may_prompt_login(context, error):
            raise _explained(context, error) from None
    context.authenticate(remember_me=remember_me)
    return fetch()


def _offers_login(context: Context) -> bool:
    return bool((context.server_info.get("authentication") or {}).get("providers"))


def _may_prompt_login(context: Context, error: AuthenticationError) -> bool:
    """Whether a 401 at connection time should become an interactive login."""
    if context.session.has_api_key or not can_prompt():
        return False
    if context.authenticated:
        return False  # credentials given were refused: asking for a password would not help
    return _offers_login(context)


def _explained(context: Context, error: AuthenticationError) -> AuthenticationError:
    """Say how to log in when no credential was given to a server that offers logins."""
    if context.authenticated or not _offers_login(context):
        return error
    return type(error)(
        error.status,
        f"{error.detail}. This server needs a login and there is no terminal to ask for one: use an API key "
        "(api_key= or TILED_API_KEY), or log in first with Context(uri).login(username=..., password=...) "
        "and connect with from_context(context)",
        url=error.url, request_id=error.request_id,
    )


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
        cache: a response ``Cache`` (``tiled_core.client.cache``); default none.
        remember_me: use and keep login tokens in the user's cache directory
            (see ``Context.login``); False keeps a login in memory only.
        api_key: the API key (default: ``TILED_API_KEY``); sent in a header.
        auth: a custom ``httpx.Auth`` instead of an API key or login.
        headers, timeout, verify, max_connections, trust_env: connection settings.
        show_progress: allow progress bars in interactive sessions (see ``Context``).
        username, auth_provider, prompt_for_reauthentication: deprecated and
            ignored, with a warning (as in the reference client); use
            ``client.login(username=...)``.

    One round trip: the node's own metadata (the server's about document is
    fetched later, only if needed). A server that wants a login prompts for it
    at a terminal and raises AuthenticationError elsewhere. Raises KeyError for
    an unknown node, AuthenticationError for a rejected key, ConnectionFailed
    when nothing answers.
    """
    for name, value in (("username", username), ("auth_provider", auth_provider),
                        ("prompt_for_reauthentication", prompt_for_reauthentication)):
        if value is not None:
            warnings.warn(
                f"from_uri ignores {name!r} (as the reference client does): log in with "
                "client.login(username=..., password=...) or at the prompt, or use an API key",
                stacklevel=2,
            )
    if auth is not None and not isinstance(auth, httpx.Auth):
        raise ValueError(f"auth must be an httpx.Auth or None, not {type(auth).__name__}")
    context, node_path_parts = Context.from_any_uri(
        uri, headers=headers, api_key=api_key, cache=cache, timeout=timeout, verify=verify,
        max_connections=max_connections, show_progress=show_progress, trust_env=trust_env,
    )
    if auth is not None:
        if context.session.has_api_key:
            context.close()
            raise ValueError("give api_key or auth, not both")
        context.session.set_auth(auth)
    try:
        return from_context(context, structure_clients, node_path_parts, include_data_sources, remember_me)
    except BaseException:
        context.close()
        raise


def from_profile(name: str, structure_clients: Any = None, **kwargs):
    """Connect using a named profile (see ``tiled_core.profiles``); keyword arguments override it."""
    from .. import profiles

    resolved = profiles.resolve_profile(name)
    if "direct" in resolved:
        return _from_direct_profile(name, resolved, structure_clients, kwargs)
    content = profiles.profile_to_from_uri_kwargs(resolved)
    if structure_clients is not None:
        content["structure_clients"] = structure_clients
    content.update(kwargs)
    uri = content.pop("uri")
    try:
        return from_uri(uri, **content)
    except profiles.ProfileError:
        raise
    except ValueError as error:  # a setting the profile schema lets through (timeout 0, an ftp:// uri, ...)
        where = profiles.list_profiles().get(name)
        raise profiles.ProfileError(f"profile {name!r}{f' in {where}' if where else ''}: {error}") from error


def _from_direct_profile(name: str, content: dict, structure_clients: Any, overrides: dict):
    """A ``direct`` profile: its server configuration run in this process (``Context.from_app``).

    Needs the tiled server package (``tiled[server]``); the configuration is
    validated by it, and imports in it may name modules next to the profile file.
    """
    import contextlib
    import sys

    from .. import profiles

    try:
        from tiled.server.app import build_app_from_config
    except ImportError:
        raise profiles.ProfileError(f"profile {name!r} runs a server in this process ('direct'), which needs the "
                                    "tiled server package: pip install 'tiled[server]'") from None
    merged = {**content, **overrides}
    config = merged.pop("direct")
    folder = str(profiles.list_profiles().get(name, Path(".")).parent)
    sys.path.insert(0, folder)
    try:
        app = build_app_from_config(config)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    context = Context.from_app(app, max_connections=merged.pop("max_connections", 16),
                               show_progress=merged.pop("show_progress", None))
    try:
        return from_context(context, structure_clients or merged.get("structure_clients") or "numpy")
    except BaseException:
        context.close()
        raise


#: The servers ``simple()`` started, kept running while this process lives (``SERVERS.pop().close()`` stops one).
SERVERS: list = []


def simple(directory=None, api_key: str | None = None, port: int = 0, readable_storage=None, quiet: bool = False,
           structure_clients: Any = "numpy"):
    """Start a Tiled server of your own on this machine and connect to it: for tutorials and trying things.

    The server (``tiled_core.server.LocalTiledServer``: a ``tiled serve`` process
    on 127.0.0.1, which needs ``tiled[server]`` installed) stores its catalog and
    data in ``directory`` (a temporary one by default, removed when the server
    stops), takes ``api_key`` (random by default) and listens on ``port`` (a free
    one by default); ``readable_storage`` lists directories of existing files it
    may read, for ``register``. Its address is printed unless ``quiet``. It runs
    until ``SERVERS`` lets it go (``SERVERS.pop().close()``) or this process exits.
    Basic security only: not for anything important.
    """
    import atexit

    from ..server import LocalTiledServer

    server = LocalTiledServer(directory, api_key=api_key, port=port or None, readable_storage=readable_storage)
    server.start()
    if not SERVERS:
        atexit.register(_stop_simple_servers)
    SERVERS.append(server)
    if not quiet:
        print(server.uri)
    return from_uri(server.uri, structure_clients, api_key=server.api_key)


def _stop_simple_servers() -> None:
    while SERVERS:
        SERVERS.pop().stop()
