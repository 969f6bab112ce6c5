"""Node plumbing shared by the IO manager, checks and sensors: lookups and containers on a path."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ensure_container", "lookup"]


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
            node = node.create_container(key, on_conflict="skip")  # an existing container is reused
        except Conflict:
            node = node[key]  # another run created it first, or it is not a container (checked below)
        if node.structure_family != "container":
            raise ValueError(f"{node.path} is a {node.structure_family} node, not a container")
    return node
