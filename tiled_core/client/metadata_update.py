"""``dict.update``-like metadata updates, with a marker for deleting keys.

Same names as ``tiled.client.metadata_update``::

    from tiled_core.client.metadata_update import DELETE_KEY
    node.update_metadata({"obsolete": DELETE_KEY, "sample": {"temperature": 290}})

Nested dicts are merged key by key; any other value (lists, ``None``,
numbers, strings) replaces what was there; ``DELETE_KEY`` removes the key.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DELETE_KEY", "apply_update_patch", "merge"]


class _DeleteKey:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETE_KEY"

    def __reduce__(self):
        return "DELETE_KEY"  # unpickles to the one marker


DELETE_KEY = _DeleteKey()


def apply_update_patch(target: Any, *updates: dict) -> Any:
    """Merge each of ``updates`` into ``target`` (in place when it is a dict) and return it."""
    for update in updates:
        target = merge(target, update, removes=DELETE_KEY)
    return target


def merge(target: Any, update: Any, *, removes: Any) -> Any:
    """Merge ``update`` into ``target`` recursively; a value that ``is removes`` deletes its key.

    With ``removes=None`` this is RFC 7386 (JSON Merge Patch).
    """
    if not isinstance(update, dict):
        return update
    if not isinstance(target, dict):
        target = {}
    for key, value in update.items():
        if value is removes:
            target.pop(key, None)
        else:
            target[key] = merge(target.get(key), value, removes=removes)
    return target
