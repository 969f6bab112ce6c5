"""``tree(node)``: a sketch of a container's contents, like the UNIX ``tree`` command."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

__all__ = ["tree"]


def _lines(node, prefix: str = "") -> Iterator[str]:
    entries = list(node.items())  # one listing per container, not a request per key
    for position, (key, child) in enumerate(entries):
        last = position == len(entries) - 1
        yield f"{prefix}{'└── ' if last else '├── '}{key}"
        if isinstance(child, Mapping):
            yield from _lines(child, prefix + ("    " if last else "│   "))


def tree(node, max_lines: int | None = 20) -> None:
    """Print the keys below ``node`` (a container) as an indented tree, at most ``max_lines`` lines (None: all).

    Lists each container it descends into once (pages of children); stops at ``max_lines``.
    """
    if max_lines is not None and (isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 0):
        raise ValueError(f"max_lines is a non-negative integer or None, not {max_lines!r}")
    # Not len(node): the server counts 0 children in file-backed containers (HDF5) that have some.
    lines = _lines(node)
    first = next(lines, None)
    if first is None:
        print("<Empty>")
        return
    for count, line in enumerate(itertools.chain([first], lines), start=1):
        if max_lines is not None and count > max_lines:
            print(f"<Output truncated at {max_lines} lines. Adjust tree's max_lines parameter to see more.>")
            break
        print(line)
