"""What a copy does with each source node: its model, how it is created, and what to do if it exists.

No I/O and no scheduling here (that is ``_copy_engine``): a :class:`CopyNode`
describes one source node on its way to one destination path; the functions
decide how it travels (container, registration, or data through an entry of
``tiled_core.distributed._transfers.TRANSFERS``), whether it carries the
incomplete mark, what its create request says, and what a rerun does with a
node that already exists.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Iterator
from typing import Any

from ..distributed._transfers import TRANSFERS, Unit, transfer_for
from ..client.reading._array_io import regular_chunks
from ..client.writing._conflict import INCOMPLETE_SPEC, same_structure
from ..client.writing._upload import _regular

__all__ = ["FIRST_PAGE", "CopyNode", "classify", "create_body", "existing_action", "needs_own_mark", "source_listing",
           "units_stored", "CHECKPOINT_PREFIX"]

MiB = 1 << 20
SMALL_NODE_BYTES = 4 * MiB  # a one-request node this small is re-sent on resume rather than marked
MAX_SPECS = 20  # the server's limit; a node already at it cannot carry the mark
CHECKPOINT_PREFIX = "units:"  # the mark's version "units:<k>": chunks (blocks, partitions) 0..k-1 are stored
# Source listings: data nodes' structures come with their data sources; containers' structures
# (a count of *their* children, costly for the server) are not needed.
SOURCE_FIELDS = ("metadata", "structure_family", "specs", "sorting")
# The first page of a source listing is small: creates start after one quick request (listing
# children with their data sources costs the source server ~10-20 ms each, and over a slow link the
# copy would wait for a whole page of 300 first); the rest come in the server's largest pages.
FIRST_PAGE = 20


@dataclasses.dataclass(eq=False)
class CopyNode:
    """One source node on its way to one destination path, and the engine's bookkeeping for it."""

    parent: "CopyNode | None"
    dest_path: tuple[str, ...]
    item: dict | None  # the source resource, with data sources (None for the top of the copy)
    family: str = "container"
    transfer: str | None = None  # key into TRANSFERS
    register: bool = False  # copied as a registration of the same external assets
    marked: bool = False  # carries the incomplete mark at the destination
    recreate: bool = False  # delete the destination node before creating it
    counted: bool = False  # created or completed by this run (summary.nodes)
    failed: bool = False
    pending: int = 0  # containers: children not complete; data nodes: units in flight
    issued: bool = False  # containers: listing exhausted; data nodes: every unit handed out
    # containers
    listing: Iterator | None = None  # source children still to list
    listed: int = 0  # source children listed so far
    existing: dict | None = None  # destination children found before this run
    to_create: deque = dataclasses.field(default_factory=deque)  # children waiting to be created
    creating: int = 0  # creates of children in flight
    waiting: bool = False  # in the engine's queue of parents with creates to send
    present: bool = True  # containers: exists at the destination (False while its create is in flight)
    dropped: bool = False  # containers: found made by someone else meanwhile; its listing is ignored
    # data nodes
    dest_structure: dict | None = None
    units: Iterator[tuple[int, Unit]] | None = None  # (ordinal, unit)
    peeked: tuple[int, Unit] | None = None
    resume_from: int = 0  # chunks stored before this run (the mark's checkpoint)
    stored: int = 0  # chunks 0..stored-1 are stored
    stored_above: dict = dataclasses.field(default_factory=dict)  # stored units past a gap: first chunk -> end
    checkpointed: int = 0  # what the mark says
    checkpoint_time: float = 0.0
    checkpointing: bool = False
    finish_waiting: bool = False

    @property
    def text(self) -> str:
        return "/".join(self.dest_path)

    @property
    def source_path(self) -> tuple[str, ...]:
        attributes = self.item["attributes"]
        return tuple(a for a in (attributes.get("ancestors") or []) if a) + (self.item["id"],)

    @property
    def source_structure(self) -> Any:
        sources = self.item["attributes"].get("data_sources") or []
        return sources[0]["structure"] if sources else self.item["attributes"].get("structure")

    @property
    def specs(self) -> list[dict]:
        """The source's specs (a mark copied from an unfinished source left out)."""
        return [s for s in (self.item["attributes"].get("specs") or []) if s["name"] != INCOMPLETE_SPEC]

    @property
    def covered(self) -> bool:
        """Under a marked container: a rerun does not trust this node's data."""
        return self.parent is not None and self.parent.marked

    def one_request(self) -> bool:
        """Whether the node's data moves in one unit (the destination gets the source's structure)."""
        structure = self.source_structure or {}
        units = TRANSFERS[self.transfer].units(structure, structure, 0)
        return next(itertools.islice(units, 1, None), None) is None

    def nbytes_hint(self) -> int:
        """Bytes of an array's data (0 when not known in advance)."""
        if self.family != "array" or self.item is None:
            return 0
        from ..structures import ArrayStructure

        return ArrayStructure.from_json(self.source_structure).nbytes


def family_of(item: dict) -> str:
    family = item["attributes"]["structure_family"]
    return getattr(family, "value", family)


def source_listing(context, item: dict | None, container=None) -> Iterator[tuple[str, dict]]:
    """``(key, item with data sources)`` for each child of the source container ``item`` (or ``container``)."""
    from ..client.container import Container

    if container is None:
        container = Container(context, item=item, structure_clients="numpy")
    container = container.new_variation(include_data_sources=True)

    def entries() -> Iterator[tuple[str, dict]]:
        count = 0
        for key, child in container._iterate(0, FIRST_PAGE, 1, FIRST_PAGE, fields=SOURCE_FIELDS):
            count += 1
            yield key, child.item
        if count < FIRST_PAGE:
            return
        for key, child in container._iterate(FIRST_PAGE, None, 1, None, fields=SOURCE_FIELDS):
            yield key, child.item

    return entries()


def units_stored(client) -> int:
    """How many units the mark of ``client`` (an interrupted node) says are stored."""
    for spec in client.specs:
        if spec.name == INCOMPLETE_SPEC and (spec.version or "").startswith(CHECKPOINT_PREFIX):
            try:
                return max(0, int(spec.version[len(CHECKPOINT_PREFIX):]))
            except ValueError:
                return 0
    return 0


def transfer_key(node: CopyNode) -> str:
    sources = node.item["attributes"].get("data_sources") or [{}]
    key = transfer_for(node.family, sources[0].get("mimetype"))
    if key is None:
        raise NotImplementedError(f"/{node.text}: copying {node.family} data is not supported")
    return key


def classify(node: CopyNode, external: str) -> None:
    """Decide how ``node`` travels: container, registration, or data (ValueError/NotImplementedError if it cannot)."""
    sources = node.item["attributes"].get("data_sources")
    if node.family == "container":
        # A container backed by an external file (an HDF5 group, ...) is registered with the same
        # assets, as the reference does: its children come from that file, not from separate nodes.
        if external == "register" and len(sources or []) == 1 and sources[0].get("management") == "external":
            node.register = True
        return
    if sources is None:
        raise ValueError(f"/{node.text}: the source listing has no data sources (include_data_sources)")
    if len(sources) != 1:
        raise NotImplementedError(f"/{node.text} has {len(sources)} data sources; only one is supported")
    if sources[0]["management"] == "external" and external == "register":
        node.register = True
        return
    node.transfer = transfer_key(node)


def needs_own_mark(node: CopyNode) -> bool:
    """Whether a node about to be created carries the mark itself (else its parent's covers it)."""
    if node.register:
        return False  # one request creates it whole
    if len(node.specs) >= MAX_SPECS:
        return False  # no room for the mark: the node relies on its parent's
    if node.family == "container":
        return True  # whether it will get children is not known yet
    small = node.one_request() and node.nbytes_hint() <= SMALL_NODE_BYTES
    return not (node.covered and small and TRANSFERS[node.transfer].idempotent)


def existing_action(node: CopyNode, existing) -> str:
    """For a key that exists (skip/warn): ``"descend"``, ``"skip"``, ``"resume"`` or ``"recreate"``.

    ``existing`` is the destination's client. Nodes that can be trusted (not
    marked, not under a marked container) are kept; data nodes that cannot are
    completed in place when the write is idempotent and the structure the
    same, and made again when they carry the mark but cannot be completed.
    """
    marked = any(spec.name == INCOMPLETE_SPEC for spec in existing.specs)
    same_family = existing.structure_family == node.family
    if node.family == "container":
        return "descend" if same_family and not node.register else "skip"
    if not (marked or node.covered) or node.register:
        return "skip"
    reusable = (same_family and TRANSFERS[node.transfer].idempotent
                and same_structure(node.family, node.source_structure, existing.item["attributes"].get("structure")))
    if reusable:
        return "resume"
    return "recreate" if marked else "skip"


def create_body(node: CopyNode) -> dict:
    """The POST body that creates ``node`` at the destination (with the mark when it carries one)."""
    attributes = node.item["attributes"]
    specs = node.specs + ([{"name": INCOMPLETE_SPEC, "version": None}] if node.marked else [])
    body = {"id": node.dest_path[-1], "structure_family": node.family, "metadata": attributes.get("metadata") or {},
            "specs": specs, "data_sources": []}
    if node.family != "container" or node.register:
        body["data_sources"] = [_data_source(node)]
    return body


def _data_source(node: CopyNode) -> dict:
    source = node.item["attributes"]["data_sources"][0]
    if node.register:
        return {**source, "id": None}  # the same assets, registered
    external = source["management"] == "external"
    structure = source["structure"]
    if node.family == "array" and not _regular(structure["chunks"]):
        # Zarr storage needs regular chunks; blocks are then read from the source by region.
        from ..structures import ArrayStructure

        array = ArrayStructure.from_json(structure)
        structure = {**structure, "chunks": [list(c) for c in regular_chunks(array.shape, array.dtype.itemsize)]}
    # As the reference client: the same kind of storage (mimetype, management), fresh storage
    # (no parameters, properties or assets); external data copied as data goes to the default.
    return {
        "structure_family": source["structure_family"],
        "structure": structure,
        "mimetype": None if external else source["mimetype"],
        "parameters": {},
        "properties": {},
        "assets": [],
        "management": "writable" if external else source["management"],
        "id": None,
    }
