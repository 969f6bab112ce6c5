"""Which entries of a container are new since a cursor (the sensor's bookkeeping).

Keys carry no time, so the cursor leans on an order the server keeps:

* **Insertion order** (default). A Tiled catalog lists entries in creation
  order, and a new entry always goes last. The cursor keeps how many entries
  were seen and the last few keys (``tail``). Next time only the window from
  just before the old end is listed; if the tail is still where it was, what
  follows is new. If entries before it were deleted, the listing is scanned
  once to find the last surviving tail key and carry on from there (entries
  after it are new); if none survives, every entry is offered again and
  Dagster's run keys drop the ones already run.
* **A metadata key** (``order_by``) that grows with new entries (a scan
  number, a timestamp). The cursor keeps the last value seen and the keys
  seen at that value, and asks the server for entries ``>=`` it, sorted.
  Deletions do not disturb it; entries lacking the key are never offered.

Either way the cursor is a short JSON string, whatever the container's size.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["new_entries"]

TAIL = 8  # keys remembered to recognise our place in the listing


def new_entries(container, cursor: str | None, *, order_by: str | None, limit: int) -> tuple[list[str], str]:
    """``(new keys in order, next cursor)``: at most ``limit`` keys not offered before."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    state: dict[str, Any] = json.loads(cursor) if cursor else {}
    mode = "insertion" if order_by is None else f"order_by:{order_by}"
    if state and state.get("mode") != mode:
        raise ValueError(
            f"the sensor's cursor was made for {state.get('mode')!r}, not {mode!r}: reset the cursor after "
            "changing order_by"
        )
    if order_by is None:
        keys, state = _in_insertion_order(container, state, limit)
    else:
        keys, state = _by_metadata(container, order_by, state, limit)
    return keys, json.dumps({"mode": mode, **state}, separators=(",", ":"))


def _in_insertion_order(container, state: dict, limit: int) -> tuple[list[str], dict]:
    seen, tail = int(state.get("seen", 0)), list(state.get("tail", ()))
    base = max(seen - len(tail), 0)
    window = container.keys()[base: seen + limit]
    if window[: len(tail)] == tail:
        position = len(tail)
    else:  # entries before our place were deleted: find it again in the full listing
        base, window = 0, list(container.keys())
        survivors = [i for i, key in enumerate(window) if key in set(tail)]
        position = survivors[-1] + 1 if survivors else 0
    new = window[position: position + limit]
    end = position + len(new)
    return new, {"seen": base + end, "tail": window[max(0, end - TAIL): end]}


def _metadata_value(metadata, dotted: str) -> Any:
    value: Any = metadata
    for part in dotted.split("."):
        value = value.get(part) if hasattr(value, "get") else None
    return value


def _by_metadata(container, order_by: str, state: dict, limit: int) -> tuple[list[str], dict]:
    from tiled_core.queries import Comparison, KeyPresent

    ties = list(state.get("ties", ()))
    view = container.sort((order_by, 1))
    if "after" in state:
        view = view.search(Comparison("ge", order_by, state["after"]))
    else:
        view = view.search(KeyPresent(order_by))
    after, new = state.get("after"), []
    for key, node in view.items()[: limit + len(ties)]:
        value = _metadata_value(node.metadata, order_by)
        if value == state.get("after") and key in ties:
            continue
        new.append(key)
        if value != after:
            after, ties = value, []
        ties.append(key)
        if len(new) == limit:
            break
    if not new:
        return [], state
    return new, {"after": after, "ties": ties}
