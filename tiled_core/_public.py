"""``show_public_path``: the names a package facade re-exports carry the facade's module path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def show_public_path(namespace: dict[str, Any], names: Iterable[str]) -> None:
    """Set ``__module__`` to the facade's name on each of ``names`` defined in one of its submodules.

    Tracebacks, reprs and pickles then name the public path (``tiled_core.queries.Eq``),
    which stays put when code moves between private modules. Objects from elsewhere
    (re-exported from another package, or ``typing.Any``) are left alone.
    """
    package = namespace["__name__"]
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(package + "."):
            obj.__module__ = package
