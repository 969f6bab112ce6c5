"""Safe reruns of writes: what happens when a key exists, and how unfinished uploads are marked.

Every ``Container.write_*`` helper goes through :func:`begin_write` and
:func:`finish_write`::

    target = begin_write(container, "array", [source], key=key, on_conflict=on_conflict, ...)
    if target.needs_upload:
        upload(target.client)          # may fail: the node stays marked incomplete
        finish_write(target.client)    # one small PUT clears the mark
    return target.client

``on_conflict`` (for a ``key`` that already exists):

- ``"error"`` (default): the server refuses the create; :class:`Conflict` is raised.
- ``"skip"``: an existing node with the same family and structure is left alone and
  returned; if its upload never finished it is completed in place (blocks are
  rewritten, which is idempotent); a different family or structure raises
  :class:`Conflict` naming the difference.
- ``"replace"``: the existing node and its data are deleted, then written anew.

A node whose data is being uploaded carries the spec :data:`INCOMPLETE_SPEC`
until the last byte has been accepted; an interrupted write therefore leaves
a node that says so (``is_incomplete(client)``), and never one that looks complete.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..structures import Spec
from ..transport import Conflict

__all__ = [
    "INCOMPLETE_SPEC",
    "ON_CONFLICT_CHOICES",
    "STRUCTURE_FINGERPRINTS",
    "WriteTarget",
    "begin_write",
    "check_on_conflict",
    "finish_write",
    "is_incomplete",
]

ON_CONFLICT_CHOICES = ("error", "skip", "replace")
INCOMPLETE_SPEC = "tiled_core.incomplete"


def _array_fingerprint(structure: dict) -> tuple:
    # Chunking is a storage detail: same shape and dtype hold the same data.
    return tuple(structure["shape"]), _canonical(structure["data_type"])


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


# family -> what must match for "skip" to accept an existing node (default: the whole structure).
STRUCTURE_FINGERPRINTS: dict[str, Callable[[dict], Any]] = {
    "array": _array_fingerprint,
    "container": lambda structure: None,
}


def check_on_conflict(on_conflict: str) -> str:
    if on_conflict not in ON_CONFLICT_CHOICES:
        raise ValueError(f"on_conflict must be one of {', '.join(map(repr, ON_CONFLICT_CHOICES))}, not {on_conflict!r}")
    return on_conflict


def _fingerprint(family: str, structure: Any) -> Any:
    if structure is None:
        return None
    if hasattr(structure, "to_json"):
        structure = structure.to_json()
    return STRUCTURE_FINGERPRINTS.get(family, _canonical)(structure)


def is_incomplete(client) -> bool:
    """True when ``client``'s node was created but its upload has not finished."""
    return any(spec.name == INCOMPLETE_SPEC for spec in client.specs)


@dataclasses.dataclass
class WriteTarget:
    """The node to write into, and whether its data still has to be sent."""

    client: Any
    needs_upload: bool


def begin_write(
    container,
    structure_family: str,
    data_sources: list[dict],
    *,
    key: str | None,
    metadata: dict | None,
    specs: list | None,
    access_tags: list[str] | None = None,
    on_conflict: str = "error",
) -> WriteTarget:
    """Resolve ``on_conflict`` for ``key`` and create the node, marked incomplete when it takes data."""
    check_on_conflict(on_conflict)
    family = getattr(structure_family, "value", structure_family)
    takes_data = family != "container"
    if key is not None and on_conflict != "error":
        existing = container.get(key)
        if existing is not None:
            if on_conflict == "replace":
                container.delete(key, recursive=True)
            else:
                return WriteTarget(existing, _check_reusable(existing, family, data_sources))
    marked = [*(specs or []), Spec(INCOMPLETE_SPEC)] if takes_data else specs
    client = container.new(family, data_sources, key=key, metadata=metadata, specs=marked, access_tags=access_tags)
    return WriteTarget(client, takes_data)


def _check_reusable(existing, family: str, data_sources: list[dict]) -> bool:
    """Raise if ``existing`` cannot stand for the requested node; return whether it needs its data."""
    where = existing.path or "/"
    if existing.structure_family != family:
        raise Conflict(
            409, f"{where} exists as a {existing.structure_family}, not a {family}; "
            "use on_conflict='replace' to overwrite it", url=existing.uri,
        )
    wanted = _fingerprint(family, data_sources[0]["structure"]) if data_sources else None
    have = _fingerprint(family, existing.item["attributes"].get("structure"))
    if wanted != have:
        raise Conflict(
            409, f"{where} exists with a different structure ({have} there, {wanted} requested); "
            "use on_conflict='replace' to overwrite it", url=existing.uri,
        )
    return is_incomplete(existing)


def finish_write(client) -> None:
    """Clear the incomplete mark once every byte is stored (no revision is kept for this)."""
    specs = [spec for spec in client.specs if spec.name != INCOMPLETE_SPEC]
    client.context.session.send(
        "PUT", client._route("metadata"), json={"specs": [s.to_json() for s in specs]},
        params=[("drop_revision", "true")],
    )
    client.item["attributes"]["specs"] = [s.to_json() for s in specs]
