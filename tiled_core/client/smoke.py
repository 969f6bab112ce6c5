"""``read(node)``: walk a tree and read every node in it, listing those that fail (a smoke test)."""

from __future__ import annotations

import sys

__all__ = ["read"]


def read(node, verbose: bool = False, strict: bool = False) -> list[str]:
    """Read every non-container node under ``node`` (depth first); return the URIs of those that failed.

    Arguments:
        node: any client (a container is walked, anything else read once).
        verbose: print ``SUCCESS: <key>`` / ``ERROR: <key> - <error>`` per node to stderr.
        strict: re-raise the first read error instead of listing it.
    """
    faulty: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.structure_family == "container":
            stack.extend(reversed(list(current.values())))
            continue
        key = current.item.get("id") or current.path
        try:
            current.read()
        except Exception as error:
            faulty.append(current.uri)
            if verbose:
                print(f"ERROR: {key} - {error!r}", file=sys.stderr)
            if strict:
                raise
        else:
            if verbose:
                print(f"SUCCESS: {key} ", file=sys.stderr)
    return faulty
