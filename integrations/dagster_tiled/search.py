"""Search helper: paths of the nodes matching queries, for ops and assets to hand on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._nodes import lookup

__all__ = ["search_paths"]


def search_paths(
    source: Any,
    path: str = "",
    queries: Sequence[Any] = (),
    *,
    sort: Sequence[tuple[str, int]] = (),
    limit: int | None = None,
) -> list[str]:
    """Paths (from the server root) of the entries of container ``path`` matching every query.

    ``source`` is a ``TiledResource`` or a tiled_core client. ``sort`` takes
    ``(metadata key, 1 | -1)`` pairs; ``limit`` caps the number of paths.
    Example, inside an asset: ``search_paths(tiled, "raw", [Eq("sample", "Cu")])``.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    client = source.get_client() if hasattr(source, "get_client") else source
    container = lookup(client, tuple(p for p in path.split("/") if p))
    for query in queries:
        container = container.search(query)
    if sort:
        container = container.sort(*sort)
    keys = container.keys()
    selected = list(keys) if limit is None else keys[:limit]
    prefix = container.path
    return [f"{prefix}/{key}" if prefix else key for key in selected]
