"""The handler interface and the table that picks a handler."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["Handler", "HandlerTable"]


class Handler:
    """Writes, describes and reads one in-memory type as one kind of Tiled node.

    Subclasses set ``type_paths`` (``"module:Name"`` strings, resolved only
    once that module is imported, so handlers never import pandas, dask, ...
    themselves), ``family`` (the structure family of the nodes they read),
    ``spec`` (a spec those nodes must carry, if any) and ``lazy`` (read
    through tiled_core's dask clients).
    """

    type_paths: tuple[str, ...] = ()
    family: str = ""
    spec: str | None = None
    lazy: bool = False

    def types(self) -> tuple[type, ...]:
        """The classes this handler serves, among those whose modules are loaded."""
        found = []
        for path in self.type_paths:
            module_name, _, name = path.partition(":")
            module = sys.modules.get(module_name)
            if module is not None and getattr(module, name, None) is not None:
                found.append(getattr(module, name))
        return tuple(found)

    def reads(self, node) -> bool:
        """Whether ``node`` is the kind of node this handler reads (family, and spec if any)."""
        return node.structure_family == self.family and (
            self.spec is None or any(spec.name == self.spec for spec in node.specs)
        )

    def validate(self, obj: Any) -> None:
        """Raise (before any request) if ``obj`` cannot be stored faithfully."""

    def write(self, parent, key: str, obj: Any, metadata: dict) -> Any:
        """Write ``obj`` as child ``key`` of container ``parent`` (replacing what is there); return the node."""
        raise NotImplementedError

    def describe(self, obj: Any, node) -> dict[str, Any]:
        """Dagster output metadata for what was written (structure, size)."""
        return {}

    def read(self, node) -> Any:
        """The node's data as this handler's type (``node`` is a numpy- or dask-mode client per ``lazy``)."""
        return node.read()

    def concat(self, values: list[Any], keys: list[str]) -> Any:
        """Several partitions as one object, in partition order."""
        raise TypeError(f"{type(self).__name__} cannot concatenate partitions; annotate the input as a dict")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(self.type_paths)}>"


class HandlerTable:
    """Which handler serves a value, an annotation or a node; one handler per type."""

    def __init__(self, handlers: Iterable[Handler]) -> None:
        self._handlers = tuple(handlers)
        seen: dict[str, Handler] = {}
        for handler in self._handlers:
            for path in handler.type_paths:
                if path in seen:
                    raise ValueError(f"{path} is handled twice: by {seen[path]!r} and {handler!r}")
                seen[path] = handler

    @property
    def handlers(self) -> tuple[Handler, ...]:
        return self._handlers

    def supported(self) -> str:
        return ", ".join(path.replace(":", ".") for h in self._handlers for path in h.type_paths)

    def _by_class(self, cls: type) -> Handler | None:
        # Walk the class's MRO so the most specific registered type wins, whatever the table order.
        for base in getattr(cls, "__mro__", ()):
            for handler in self._handlers:
                if base in handler.types():
                    return handler
        return None

    def for_value(self, obj: Any) -> Handler:
        """The handler for an output value (checked by it); TypeError naming the supported types otherwise."""
        handler = self._by_class(type(obj))
        if handler is None:
            raise TypeError(
                f"TiledIOManager cannot store a {type(obj).__module__}.{type(obj).__qualname__}; "
                f"supported types: {self.supported()}"
            )
        handler.validate(obj)
        return handler

    def for_annotation(self, annotation: Any) -> Handler | None:
        """The handler for an input annotation, or None if it names no supported type."""
        return self._by_class(annotation) if isinstance(annotation, type) else None

    def for_node(self, node, *, lazy: bool) -> Handler:
        """The handler for an unannotated input: by the node's family and specs."""
        candidates = [h for h in self._handlers if h.reads(node)]
        candidates.sort(key=lambda h: (h.spec is None, h.lazy != lazy))  # spec matches first, then the mode asked
        if not candidates:
            raise TypeError(
                f"{node.path} is a {node.structure_family} node, which TiledIOManager cannot load; "
                f"supported types: {self.supported()}"
            )
        return candidates[0]

