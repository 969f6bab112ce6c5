"""The copy engine: walk the source tree, create nodes, move their data, clear the marks.

The loop runs in the calling thread and does no I/O itself. It hands out

- metadata jobs (list a page of source children, list an existing destination
  container, create, delete, clear a mark) to a small pool: the destination's
  catalog takes writes one at a time (a 0.2.20 server on SQLite answers 500
  under ~16 parallel creates), so ``create_concurrency`` stays low (the
  requests themselves are in ``_jobs``); with ``preserve_order`` a
  container's queued children go in one job, pipelined in order on one
  connection (``Session.send_in_order``), one such job per container at a time;
- data jobs (units from ``tiled_core.distributed._transfers``) to a runner:
  threads here, or Dask workers; at most ``runner.slots`` at once and, here,
  at most ``max_memory`` bytes of units in flight.

Resumability builds on the incomplete mark of ``_conflict``: a container that
will get children is created marked, and its mark is cleared only when its
whole subtree is complete; a data node is created marked when it is large,
takes several requests, cannot be rewritten idempotently, or has no marked
container above it; small one-request nodes are covered by their parent's
mark instead (this saves a request per node on trees of many small nodes).
While a marked node's data moves, its mark records every ``CHECKPOINT_SECONDS``
how many of its chunks (blocks, partitions; in order) are stored:
``version="units:<k>"``.
A rerun with ``on_conflict="skip"`` descends into existing containers and
keeps every node it can trust: unmarked nodes under unmarked containers.
Marked nodes are completed in place (from their checkpoint on) or, when that
is not idempotent or their structure changed, deleted and created again;
nodes covered by a marked parent get their data sent again.
"""

from __future__ import annotations

import dataclasses
import queue
import time
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..distributed._transfers import GROUP_BYTES, TRANSFERS, Unit
from ..client.writing._conflict import INCOMPLETE_SPEC
from ._plan import (
    CopyNode,
    classify,
    create_body,
    existing_action,
    family_of,
    needs_own_mark,
    source_listing,
    transfer_key,
    units_stored,
)
from ._jobs import EXISTS as _EXISTS, PAGE, MetadataJobs
from ._progress import CopyProgress, CopySummary

__all__ = ["CopyEngine", "Options", "source_listing"]

MiB = 1 << 20
MAX_OPEN = 256  # data nodes created but not complete: how far creation may run ahead of the data
PIPELINE = 16  # ordered creates sent together on one connection (pipelined: one round trip for them all)
REGIONS_IN_FLIGHT = 4  # the memory budget is cut into this many regions (more slots wait for budget)
UNKNOWN_UNIT_BYTES = 8 * MiB  # budget charged for a unit of unknown size (table partition, zip)
CHECKPOINT_SECONDS = 10.0  # how often a marked node's mark records how many of its units are stored


@dataclasses.dataclass(frozen=True)
class Options:
    on_conflict: str
    create_concurrency: int
    max_memory: int
    external: str
    preserve_order: bool = True




class CopyEngine(MetadataJobs):
    """Runs one copy; see the module docstring. Use :meth:`copy_children` or :meth:`copy_data` once."""

    def __init__(self, source_context, dest_context, runner, reporter, options: Options) -> None:
        self._source = source_context.session
        self._source_context = source_context
        self._dest = dest_context.session
        self._dest_context = dest_context
        self._runner = runner
        self._reporter = reporter
        self._options = options
        self._summary = CopySummary()
        self._done_events: queue.SimpleQueue = queue.SimpleQueue()
        self._meta = ThreadPoolExecutor(max_workers=options.create_concurrency, thread_name_prefix="tiled-core-copy")
        self._meta_busy = 0
        self._data_busy = 0
        self._data_bytes = 0
        self._finishes: deque = deque()  # nodes to finish, and (node, units stored) checkpoints
        self._creators: deque[CopyNode] = deque()  # parents with children to create
        self._queued_creates = 0
        self._listings: deque[tuple[CopyNode, str]] = deque()
        self._open: deque[CopyNode] = deque()
        self._open_count = 0
        self._exclusive_busy = 0
        self._found_nodes = 0
        self._found_bytes = 0
        self._error: tuple[CopyNode, BaseException] | None = None
        self._started = time.monotonic()
        self._last_path = ""
        self._root: CopyNode | None = None
        self._root_done = False

    # -- entry points ------------------------------------------------------------
    def copy_children(self, dest_path: tuple[str, ...], listing: Iterator[tuple[str, dict]]) -> CopySummary:
        """Copy each ``(key, source item)`` of ``listing`` under the existing container at ``dest_path``."""
        root = self._root = CopyNode(None, dest_path, None, listing=listing)
        if self._options.on_conflict == "error":
            root.existing = {}  # not listed: the server's 409 on create reports clashes
            self._listings.append((root, "source"))
        else:
            self._listings.append((root, "dest"))
        return self._run()

    def copy_data(self, source_item: dict, dest_item: dict) -> CopySummary:
        """Copy one data node's data into an existing destination node of the same structure (no marks)."""
        family = family_of(source_item)
        node = CopyNode(None, tuple(self._dest_path_of(dest_item)), source_item, family=family)
        node.transfer = transfer_key(node)
        node.dest_structure = dest_item["attributes"]["structure"]
        node.counted = True
        self._root = node
        self._found_nodes += 1
        self._open_units(node)
        return self._run()

    @staticmethod
    def _dest_path_of(item: dict) -> list[str]:
        ancestors = [a for a in (item["attributes"].get("ancestors") or []) if a]
        return ancestors + ([item["id"]] if item.get("id") else [])

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> CopySummary:
        try:
            self._pump()
            while self._meta_busy or self._data_busy:
                kind, payload, handler, future, cost = self._done_events.get()
                if kind == "meta":
                    self._meta_busy -= 1
                else:
                    self._data_busy -= 1
                    self._data_bytes -= cost
                try:
                    result = future.result()
                except BaseException as error:  # noqa: BLE001 - reported per node, raised at the end
                    if kind == "meta":
                        nodes = payload if isinstance(payload, list) else [payload[0] if isinstance(payload, tuple) else payload]
                    else:
                        nodes = [node for node, _, _ in payload]
                    for node in nodes:
                        self._fail(node, error)
                else:
                    handler(payload, result)
                self._pump()
            if self._error is None and not self._root_done:
                raise RuntimeError("tiled_core copy stopped with work left undone (a bug); rerun with on_conflict='skip'")
        finally:
            self._meta.shutdown(wait=True, cancel_futures=True)
            self._runner.close()
            self._summary.seconds = time.monotonic() - self._started
            self._report(final=True)
            self._reporter.close()
        return self._summary

    def _submit_meta(self, function, node: CopyNode, handler) -> None:
        self._meta_busy += 1
        future = self._meta.submit(function, node)
        future.add_done_callback(lambda f: self._done_events.put(("meta", node, handler, f, 0)))

    def _pump(self) -> None:
        if self._error is not None:
            return  # stop handing out work; what is in flight finishes
        # Data first: finding a node's units exhausted may queue the metadata job that finishes it.
        while self._data_busy < self._runner.slots and self._open:
            items, cost = self._take_units()
            if not items:
                break
            self._data_busy += 1
            self._data_bytes += cost
            future = self._runner.submit([(n.source_path, n.dest_path, n.transfer, u) for n, _, u in items])
            future.add_done_callback(lambda f, items=items, cost=cost: self._done_events.put(("data", items, self._on_moved, f, cost)))
        while self._meta_busy < self._options.create_concurrency:
            if self._finishes:
                job = self._finishes.popleft()
                if isinstance(job, tuple):
                    self._submit_meta(self._op_checkpoint, job, self._on_checkpointed)
                else:
                    self._submit_meta(self._op_finish, job, self._on_finished)
            elif self._creators and self._may_create(self._creators[0].to_create[0]):
                nodes = self._next_creates()
                self._exclusive_busy += sum(map(self._exclusive, nodes))
                self._submit_meta(self._op_create_many, nodes, self._on_created_many)
            elif self._listings and self._queued_creates < PAGE:
                node, side = self._listings.popleft()
                if node.dropped or node.failed:
                    continue
                if side == "dest":
                    self._submit_meta(self._op_list_dest, node, self._on_dest_listed)
                else:
                    self._submit_meta(self._op_list_source, node, self._on_source_listed)
            else:
                break

    @staticmethod
    def _exclusive(node: CopyNode) -> bool:
        return node.transfer is not None and TRANSFERS[node.transfer].exclusive

    def _may_create(self, node: CopyNode) -> bool:
        if node.family != "container" and self._open_count >= MAX_OPEN:
            return False  # creation waits for data to catch up
        # Creating SQL-backed storage is one more write to the server's SQL store: one at a time.
        return not (self._exclusive(node) and self._exclusive_busy)

    def _queue_create(self, node: CopyNode) -> None:
        parent = node.parent
        parent.to_create.append(node)
        self._queued_creates += 1
        self._wake(parent)

    def _wake(self, parent: CopyNode) -> None:
        # With preserve_order, a parent has one create in flight at a time: children keep the source's order.
        # Children of a container whose own create is in flight wait for it (they are listed meanwhile).
        if (parent.to_create and parent.present and not parent.waiting
                and not (self._options.preserve_order and parent.creating)):
            parent.waiting = True
            self._creators.append(parent)

    def _next_creates(self) -> list[CopyNode]:
        """The next parent's queued children to create together: in order, up to ``PIPELINE`` (1 unordered)."""
        parent = self._creators.popleft()
        parent.waiting = False
        limit = PIPELINE if self._options.preserve_order else 1
        nodes: list[CopyNode] = []
        while parent.to_create and len(nodes) < limit:
            node = parent.to_create[0]
            if nodes and (self._exclusive(node) or not self._may_create(node)):
                break  # SQL-backed storage is created alone
            nodes.append(parent.to_create.popleft())
            if self._exclusive(node):
                break
        self._queued_creates -= len(nodes)
        parent.creating += len(nodes)
        self._wake(parent)
        return nodes

    def _take_units(self) -> tuple[list[tuple[CopyNode, int, Unit]], int]:
        """The next data job: units from the open nodes, oldest node first, within the budgets."""
        items: list[tuple[CopyNode, int, Unit]] = []
        cost = 0
        position = 0
        while position < len(self._open):
            node = self._open[position]
            exclusive = TRANSFERS[node.transfer].exclusive
            if exclusive and (self._exclusive_busy or any(TRANSFERS[n.transfer].exclusive for n, _, _ in items)):
                position += 1  # one SQL-backed unit at a time in the whole copy: look at the next node
                continue
            if node.peeked is None:
                node.peeked = next(node.units, None)
            if node.peeked is None:
                del self._open[position]
                node.issued = True
                self._check_data_done(node)
                continue
            ordinal, unit = node.peeked
            unit_cost = unit.nbytes if unit.nbytes is not None else UNKNOWN_UNIT_BYTES
            if items and (len(items) >= self._runner.batch_units or cost + unit_cost > self._runner.batch_bytes):
                break
            if self._data_bytes + cost + unit_cost > self._options.max_memory and (items or self._data_busy):
                break  # over the memory budget; a lone unit always goes, however big
            node.peeked = None
            node.pending += 1
            self._exclusive_busy += exclusive
            items.append((node, ordinal, unit))
            cost += unit_cost
        return items, cost

    # -- handlers (loop thread) ----------------------------------------------------------
    def _on_dest_listed(self, node: CopyNode, existing: dict[str, dict]) -> None:
        node.existing = existing
        self._listings.append((node, "source"))

    def _on_source_listed(self, node: CopyNode, result) -> None:
        if node.dropped:
            return  # made by someone else meanwhile: left alone
        page, exhausted = result
        node.listed += len(page)
        for key, item in page:
            self._admit(node, key, item)
        if exhausted:
            node.issued = True
            self._check_container_done(node)
        else:
            self._listings.append((node, "source"))

    def _on_created(self, node: CopyNode, reply: Any) -> None:
        self._exclusive_busy -= self._exclusive(node)
        node.parent.creating -= 1
        self._wake(node.parent)
        if reply is _EXISTS:
            if node.family == "container":
                node.dropped = True  # its children, listed meanwhile, are not created
                self._queued_creates -= len(node.to_create)
                node.to_create.clear()
            self._skip(node)
            return
        node.counted = True
        if node.register:
            self._complete(node)  # the same assets, registered whole (a container's children come with them)
        elif node.family == "container":
            node.present = True  # its children (listed while it was created) may now be created
            self._wake(node)
            self._check_container_done(node)
        else:
            created = reply.get("data", reply) if isinstance(reply, dict) else {}
            sources = created.get("data_sources") or []
            node.dest_structure = sources[0]["structure"] if sources else create_body(node)["data_sources"][0]["structure"]
            self._open_units(node)

    def _on_created_many(self, nodes: list[CopyNode], outcomes: list[Any]) -> None:
        for node, outcome in zip(nodes, outcomes):
            if isinstance(outcome, BaseException):
                self._fail(node, outcome)
            else:
                self._on_created(node, outcome)

    def _on_moved(self, items: list[tuple[CopyNode, int, Unit]], moved: list[int]) -> None:
        for (node, ordinal, unit), nbytes in zip(items, moved):
            self._exclusive_busy -= TRANSFERS[node.transfer].exclusive
            self._summary.bytes += nbytes
            node.pending -= 1
            self._last_path = node.text
            self._stored(node, ordinal, unit)
            self._check_data_done(node)
        self._report()

    def _stored(self, node: CopyNode, ordinal: int, unit: Unit) -> None:
        """Count the chunks of ``unit`` (from ``ordinal``) as stored; now and then checkpoint the stored prefix."""
        node.stored_above[ordinal] = ordinal + unit.count
        while node.stored in node.stored_above:
            node.stored = node.stored_above.pop(node.stored)
        due = time.monotonic() - node.checkpoint_time >= CHECKPOINT_SECONDS
        if node.marked and due and not node.checkpointing and node.stored > node.checkpointed:
            node.checkpointing = True
            self._finishes.append((node, node.stored))

    def _on_checkpointed(self, payload, _result) -> None:
        node, stored = payload
        node.checkpointing = False
        node.checkpointed = stored
        node.checkpoint_time = time.monotonic()
        if node.finish_waiting:
            node.finish_waiting = False
            self._finishes.append(node)

    def _on_finished(self, node: CopyNode, _result) -> None:
        node.marked = False
        self._complete(node)

    # -- deciding -------------------------------------------------------------------------
    def _admit(self, parent: CopyNode, key: str, item: dict) -> None:
        node = CopyNode(parent, parent.dest_path + (key,), item, family=family_of(item))
        parent.pending += 1
        self._found_nodes += 1
        try:
            classify(node, self._options.external)
        except (ValueError, NotImplementedError) as error:
            self._fail(node, error)
            return
        existing = parent.existing.get(key) if parent.existing is not None else None
        if existing is None:
            self._plan_create(node)
            return
        action = existing_action(node, existing)  # on_conflict is "skip" or "warn" here
        marked = any(spec.name == INCOMPLETE_SPEC for spec in existing.specs)
        if action == "descend":
            node.marked = node.counted = marked  # a container this run completes counts as copied
            if not marked:
                self._note_skipped(node)  # complete: kept as it is (its children are still looked at)
            node.listing = source_listing(self._source_context, node.item)
            self._listings.append((node, "dest"))
        elif action == "resume":
            node.marked, node.counted = marked, True
            node.dest_structure = existing.item["attributes"]["structure"]
            node.resume_from = units_stored(existing) if marked else 0
            self._open_units(node)
        elif action == "recreate":
            node.recreate = True  # ours, unfinished, and not completable in place
            self._plan_create(node)
        else:
            self._skip(node)

    def _plan_create(self, node: CopyNode) -> None:
        node.marked = needs_own_mark(node)
        if node.family == "container" and not node.register:
            # A new container has no children at the destination; its source children are listed
            # while it is created (one round trip less per level of the tree).
            node.present = False
            node.existing = {}
            node.listing = source_listing(self._source_context, node.item)
            self._listings.append((node, "source"))
        self._queue_create(node)

    # -- completion ----------------------------------------------------------------------
    def _open_units(self, node: CopyNode) -> None:
        self._found_bytes += node.nbytes_hint()  # the bar's total grows as data nodes open
        # Chunks a checkpoint says are stored are not sent again; units are numbered by their first chunk.
        start = node.stored = node.checkpointed = node.resume_from
        # Grouped units share the memory budget: a few large regions in flight keep a server busy.
        group_bytes = min(GROUP_BYTES, self._options.max_memory // max(1, min(self._runner.slots, REGIONS_IN_FLIGHT)))
        units = TRANSFERS[node.transfer].units(node.source_structure, node.dest_structure, start, group_bytes)
        node.units = _numbered(units, start)
        node.checkpoint_time = time.monotonic()
        self._open.append(node)
        self._open_count += 1

    def _check_data_done(self, node: CopyNode) -> None:
        if node.issued and node.pending == 0 and not node.failed:
            self._open_count -= 1
            self._finish_or_complete(node)

    def _check_container_done(self, node: CopyNode) -> None:
        if node.issued and node.pending == 0 and node.present and not node.failed:
            self._finish_or_complete(node)

    def _finish_or_complete(self, node: CopyNode) -> None:
        if node.checkpointing:
            node.finish_waiting = True  # clear the mark only after the checkpoint in flight has landed
        elif node.marked:
            self._finishes.append(node)
        else:
            self._complete(node)

    def _complete(self, node: CopyNode) -> None:
        if node.counted:
            self._summary.nodes += 1
        self._last_path = node.text
        self._report()
        if node is self._root:
            self._root_done = True
        parent = node.parent
        if parent is not None:
            parent.pending -= 1
            self._check_container_done(parent)

    def _skip(self, node: CopyNode) -> None:
        self._note_skipped(node)
        self._complete(node)

    def _note_skipped(self, node: CopyNode) -> None:
        self._summary.skipped += 1
        if self._options.on_conflict == "warn":
            warnings.warn(f"Skipped existing entry /{node.text}", stacklevel=2)

    def _fail(self, node: CopyNode, error: BaseException) -> None:
        if node.failed:
            return
        node.failed = True
        self._summary.failed += 1
        self._summary.errors.append((node.text, f"{type(error).__name__}: {error}"))
        if self._error is None:
            self._error = (node, error)

    @property
    def error(self) -> tuple[CopyNode, BaseException] | None:
        return self._error

    def _report(self, final: bool = False) -> None:
        s = self._summary
        self._reporter.update(CopyProgress(
            nodes_done=s.nodes, nodes_found=self._found_nodes, bytes_done=s.bytes, bytes_found=self._found_bytes,
            skipped=s.skipped, failed=s.failed, seconds=time.monotonic() - self._started, path=self._last_path,
        ), final)


def _numbered(units: Iterator[Unit], first: int) -> Iterator[tuple[int, Unit]]:
    """``(ordinal of the unit's first chunk, unit)`` for units starting at chunk ``first``."""
    for unit in units:
        yield first, unit
        first += unit.count
