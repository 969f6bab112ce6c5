"""The ``links`` of a node's resource, built on the client (listings ask the server to leave them out)."""

from __future__ import annotations

__all__ = ["node_links"]

# family -> {link name: route template}; "{path}" is the node's path, "{block}" the block template.
_ROUTES = {
    "array": {"block": "array/block/{path}?block={block}", "full": "array/full/{path}"},
    "sparse": {"block": "array/block/{path}?block={block}", "full": "array/full/{path}"},
    "awkward": {"buffers": "awkward/buffers/{path}", "full": "awkward/full/{path}"},
    "container": {"full": "container/full/{path}", "search": "search/{path}", "search_deep": "search-deep/{path}"},
    "ragged": {"full": "ragged/full/{path}", "block": "ragged/block/{path}?block={{0}}"},
    "table": {"partition": "table/partition/{path}?partition={{index}}", "full": "table/full/{path}"},
    "bytes": {},
}


def node_links(url, family: str, structure: dict | None, path: str) -> dict:
    """The links the server gives a node of ``family`` at ``path``; ``url(route)`` makes a route absolute."""
    ndim = len((structure or {}).get("shape") or ())
    block = ",".join(f"{{{i}}}" for i in range(ndim))
    links = {}
    for name, template in _ROUTES.get(family, {}).items():
        route, _, query = template.partition("?")
        links[name] = url(route.format(path=path)) + (f"?{query.format(block=block)}" if query else "")
    links["self"] = url(f"metadata/{path}")
    return links
