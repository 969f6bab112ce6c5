"""Safe reruns of writes: what happens when a key exists, and how unfinished uploads show.

Every ``Container.write_*`` helper goes through :func:`begin_write` and
:func:`finish_write`::

    target = begin_write(container, "array", [source], key=key, on_conflict=on_conflict, ...)
    if target.needs_upload:
        upload(target.client)          # may fail: the node stays recognisably incomplete
        finish_write(target.client)    # clears the mark, if the node carries one
    return target.client

``on_conflict`` (for a ``key`` that already exists):

- ``"error"`` (default): the server refuses the create; :class:`Conflict` is raised.
- ``"skip"``: an existing node with the same family and structure is left alone and
  returned; if its upload never finished it is completed in place (all its data is
  sent again, which is idempotent); a different family or structure raises
  :class:`Conflict` naming the difference. Metadata is not compared.
- ``"replace"``: the existing node and its data are deleted, then written anew.

Bad keys, metadata or specs are refused before any request, so ``"replace"``
never deletes a node it then cannot rewrite.

**State after an interrupted write.** The node is created first (one POST that
already carries its metadata and specs), then its data is sent. If the
process, the network or the server dies in between, the node exists but is
*incomplete* in one of two recognisable ways, never looking complete:

- *marked*: it has its full shape and the spec :data:`INCOMPLETE_SPEC`
  (``"tiled_core.incomplete"``), visible to every client. Blocks not yet sent
  read as the fill value (0). Used for uploads of several requests (arrays of
  several blocks, unless a small evenly chunked dask array; 0-d arrays; other
  families); the mark is removed by one ``PUT /metadata``
  (``drop_revision=true``, so no revision is kept) after the last block has
  been accepted. Dying between the last
  block and that PUT leaves complete data still marked: safe, and "skip"
  fixes it.
- *reserved*: an array that goes in a single request is created with zero
  rows along its first axis (its chunks already describe the full length)
  and filled by one ``PATCH /array/full?extend=true``, which writes the data
  and sets the real shape together. Until then every client reads an empty
  array. The server applies the PATCH only once its whole body has arrived.

:func:`is_incomplete` recognises both. A rerun with ``"skip"`` completes the
node (reserved: the one PATCH again; marked: every block, then the mark is
cleared), ``"replace"`` rewrites it, ``"error"`` raises :class:`Conflict`.
Containers are created in one request, so they have no incomplete state
(their children have their own). See ``docs/writes.md``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from collections.abc import Callable
from typing import Any

from ...structures import Spec
from ...transport import Conflict
from ._create import create_node
from ._keys import validate_key
from ._metadata import json_value, spec_dicts
from ._upload import intended_shape, reserved_rows

__all__ = [
    "INCOMPLETE_SPEC",
    "ON_CONFLICT_CHOICES",
    "STRUCTURE_FINGERPRINTS",
    "WriteTarget",
    "begin_write",
    "check_on_conflict",
    "checked_fields",
    "clear_mark",
    "finish_write",
    "is_incomplete",
    "is_marked",
    "same_structure",
]

ON_CONFLICT_CHOICES = ("error", "skip", "replace")
INCOMPLETE_SPEC = "tiled_core.incomplete"


def _array_fingerprint(structure: dict) -> tuple:
    # Chunking is a storage detail: same shape and dtype hold the same data. The shape is
    # the one the writer asked for, so an unfilled reserved node matches its own rerun.
    return intended_shape(structure), _canonical(structure["data_type"])


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


def _ragged_fingerprint(structure: dict) -> tuple:
    # The row partitions are a storage detail (they follow max_partition_bytes): same data, same node.
    return tuple(structure["shape"]), structure["size"], _canonical(structure["data_type"])


# family -> what must match for "skip" to accept an existing node (default: the whole structure).
STRUCTURE_FINGERPRINTS: dict[str, Callable[[dict], Any]] = {
    "array": _array_fingerprint,
    "container": lambda structure: None,
    "ragged": _ragged_fingerprint,
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


def is_marked(client) -> bool:
    """True when ``client``'s node carries the incomplete mark."""
    return any(spec.name == INCOMPLETE_SPEC for spec in client.specs)


def is_incomplete(client) -> bool:
    """True when ``client``'s node was created but its upload has not finished (marked or reserved)."""
    if is_marked(client):
        return True
    return client.structure_family == "array" and reserved_rows(client.item["attributes"].get("structure")) is not None


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
    mark: bool | None = None,
    resumable: bool = True,
) -> WriteTarget:
    """Resolve ``on_conflict`` for ``key`` and create the node, marked incomplete when it takes data.

    ``mark=False`` is for writers whose new node shows its incompleteness by
    itself (a reserved array, or one with no data to send). ``resumable=False``
    is for data the server appends (ragged partitions): "skip" then makes an
    unfinished node again instead of sending its data a second time.
    """
    # Everything that can be refused is refused here, before "replace" deletes anything.
    key, metadata, specs = checked_fields(key, metadata, specs, on_conflict, url=container.uri)
    family = getattr(structure_family, "value", structure_family)
    takes_data = family != "container"
    if mark is None:
        mark = takes_data
    if key is not None and on_conflict != "error":
        existing = container.get(key)
        if existing is not None:
            if on_conflict == "replace":
                container.delete(key, recursive=True)
            elif not _check_reusable(existing, family, data_sources):
                return WriteTarget(existing, False)
            elif resumable:
                return WriteTarget(existing, True)
            else:
                container.delete(key, recursive=True)  # unfinished, and its partial data cannot be topped up
    marked = [*(specs or []), Spec(INCOMPLETE_SPEC)] if mark else specs
    client = create_node(container, family, data_sources, key=key, metadata=metadata, specs=marked,
                         access_tags=access_tags, on_conflict=on_conflict)
    return WriteTarget(client, takes_data)


def checked_fields(key: str | None, metadata, specs, on_conflict: str, *,
                   url: str = "") -> tuple[str | None, dict | None, list | None]:
    """``(key, metadata, specs)`` in their wire form, or the error a create would end in (no request)."""
    check_on_conflict(on_conflict)
    if key is not None:
        key = validate_key(key)
    if metadata is not None:
        if not isinstance(metadata, collections.abc.Mapping):
            raise TypeError(f"metadata must be a mapping, not {type(metadata).__name__}")
        metadata = json_value(dict(metadata))
    if specs is not None:
        specs = spec_dicts(specs, url=url)
    return key, metadata, specs


def same_structure(family: str, wanted: Any, have: Any) -> bool:
    """Whether two structures of ``family`` hold the same data layout (chunking aside, for arrays)."""
    return _fingerprint(family, wanted) == _fingerprint(family, have)


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
    """Clear the incomplete mark once every byte is stored (no revision is kept for this).

    Sends nothing when the node carries no mark (a reserved array fills itself).
    """
    if not is_marked(client):
        return
    specs = [spec for spec in client.specs if spec.name != INCOMPLETE_SPEC]
    clear_mark(client.context.session, client.path_parts, specs)
    client.item["attributes"]["specs"] = [s.to_json() for s in specs]


def clear_mark(session, path: tuple[str, ...], specs: list) -> None:
    """Set the specs of the node at ``path`` to ``specs`` (the mark left out), keeping no revision."""
    session.send(
        "PUT", "metadata/" + "/".join(path), json={"specs": [Spec.coerce(s).to_json() for s in specs]},
        params=[("drop_revision", "true")],
    )
