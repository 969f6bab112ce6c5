"""The ``links`` of a node resource, built on the client when the server was asked to leave them out.

tiled_core asks for nodes with ``omit_links=true`` (smaller, faster replies);
scripts written for the reference client read ``node.item["links"]`` (for
example ``links["search_deep"]``), so the same URLs are derived here from
the node's path and family: the server builds them by one fixed rule.
"""

from __future__ import annotations

from typing import Any

__all__ = ["links_for", "server_has_deep_search"]

#: Family -> {link name: API route}; "{path}" is the node's path.
_ROUTES: dict[str, dict[str, str]] = {
    "array": {"block": "array/block/{path}", "full": "array/full/{path}"},
    "sparse": {"block": "array/block/{path}", "full": "array/full/{path}"},
    "awkward": {"buffers": "awkward/buffers/{path}", "full": "awkward/full/{path}"},
    "container": {"full": "container/full/{path}", "search": "search/{path}", "search_deep": "search-deep/{path}"},
    "ragged": {"full": "ragged/full/{path}", "block": "ragged/block/{path}"},
    "table": {"partition": "table/partition/{path}", "full": "table/full/{path}"},
    "bytes": {},
}

#: The first server release with ``GET /search-deep/{path}`` (tiled 0.2.19).
_DEEP_SEARCH_SINCE = (0, 2, 19)


def _version(text: Any) -> tuple[int, ...] | None:
    numbers = []
    for part in str(text).split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            return None
        numbers.append(int(digits))
    return tuple(numbers) if len(numbers) == 3 else None


def server_has_deep_search(server_info: dict) -> bool:
    """Whether the server (by the version in its about document) offers deep search; unknown versions: yes."""
    version = _version(server_info.get("library_version"))
    return version is None or version >= _DEEP_SEARCH_SINCE


def links_for(session, family: str, path: str, structure: Any, *, deep_search: bool) -> dict[str, str]:
    """The links the server would have sent for a node of ``family`` at ``path``."""
    links = {}
    for name, route in _ROUTES.get(family, {}).items():
        if name == "search_deep" and not deep_search:
            continue
        url = session.url(route.format(path=path))
        if name == "block":
            ndim = len((structure or {}).get("shape") or []) if family != "ragged" else 1
            url += "?block=" + ",".join(f"{{{i}}}" for i in range(ndim))
        elif name == "partition":
            url += "?partition={index}"
        links[name] = url
    links["self"] = session.url(f"metadata/{path}")
    return links
