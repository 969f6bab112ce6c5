"""Node plumbing shared by the IO manager, checks and sensors: containers on a path, replacing writes."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ensure_container", "lookup", "write_replacing"]


def lookup(client, parts: Sequence[str]):
    """The node at ``parts`` below ``client`` (``client`` itself for no parts); KeyError if absent."""
    return client[tuple(parts)] if parts else client


def ensure_container(client, parts: Sequence[str]):
    """The container at ``parts`` below ``client``, creating missing levels.

    Two runs may create the same level at once: the loser of that race finds
    the winner's container instead of failing.
    """
    from tiled_core.transport import Conflict

    node = client
    for key in parts:
        try:
            node = node[key]
        except KeyError:
            try:
                node = node.create_container(key)
            except Conflict:
                node = node[key]
        if node.structure_family != "container":
            raise ValueError(f"{node.path} is a {node.structure_family} node, not a container")
    return node


def write_replacing(parent, write: Callable[..., Any], key: str, *args, **kwargs):
    """Call ``write(*args, key=key, **kwargs)`` so an existing node at ``key`` is replaced.

    Uses the client's ``on_conflict="replace"`` (issue 4). Until every write
    method has it, a node in the way is removed first (with its data).
    """
    if "on_conflict" in inspect.signature(write).parameters:
        return write(*args, key=key, on_conflict="replace", **kwargs)
    _delete_if_present(parent, key)
    return write(*args, key=key, **kwargs)


def _delete_if_present(parent, key: str) -> None:
    # Stopgap until tiled_core has deletes and on_conflict (issue 4); remove with it.
    from tiled_core.transport import NotFound

    path = "/".join((*parent.path_parts, key))
    try:
        parent.context.session.send(
            "DELETE", f"metadata/{path}", params={"recursive": "true", "external_only": "false"}
        )
    except NotFound:
        pass
