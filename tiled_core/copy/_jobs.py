"""The copy engine's metadata jobs: the requests it sends from its small pool (a CopyEngine mixin).

Each job lists a page of source children, lists an existing destination
container, creates a node (or registers its assets), or clears/records a
node's mark. They run on pool threads and only send; what follows from their
answers is decided by the engine's handlers in the loop thread.
"""

from __future__ import annotations

from typing import Any

from ..client.writing._conflict import INCOMPLETE_SPEC, clear_mark
from ..transport import Conflict, NotFound
from ._plan import CHECKPOINT_PREFIX, FIRST_PAGE, CopyNode, create_body

__all__ = ["MetadataJobs", "EXISTS", "PAGE"]

PAGE = 300  # source children listed per metadata job (the server's largest page)
EXISTS = object()  # a create answered 409 while skipping: someone made the node meanwhile


class MetadataJobs:
    """The engine's requests; uses its ``_dest``, ``_dest_context`` and ``_options``."""

    def _op_list_dest(self, node: CopyNode) -> dict[str, Any]:
        from ..client.container import Container

        item = {"id": node.dest_path[-1] if node.dest_path else "",
                "attributes": {"ancestors": list(node.dest_path[:-1]), "structure_family": "container",
                               "specs": [], "metadata": {}, "sorting": None}}
        container = Container(self._dest_context, item=item, structure_clients="numpy")
        # Clients, not items: a structure is fetched (a page at a time) only if a decision needs it.
        return dict(container._iterate(0, None, 1, None))

    def _op_list_source(self, node: CopyNode) -> tuple[list[tuple[str, dict]], bool]:
        # The first job takes the listing's small first page (see FIRST_PAGE), later ones a full page.
        limit = PAGE if node.listed else FIRST_PAGE
        page = []
        for entry in node.listing:
            page.append(entry)
            if len(page) >= limit:
                return page, False
        return page, True

    def _op_create_many(self, nodes: list[CopyNode]) -> list[Any]:
        """Create ``nodes`` in this order (pipelined on one connection); per node its reply, EXISTS or the error."""
        for node in nodes:
            if node.recreate:
                try:
                    self._dest.send("DELETE", f"metadata/{'/'.join(node.dest_path)}",
                                    params=[("recursive", "true"), ("external_only", "false")])
                except NotFound:
                    pass
        requests = [(f"{'register' if node.register else 'metadata'}/{'/'.join(node.dest_path[:-1])}",
                     create_body(node)) for node in nodes]
        outcomes = self._dest.send_in_order("POST", requests)
        return [self._created(node, outcome) for node, outcome in zip(nodes, outcomes)]

    def _created(self, node: CopyNode, outcome: Any) -> Any:
        if not isinstance(outcome, Conflict):
            return outcome
        if self._options.on_conflict == "error":
            return Conflict(
                outcome.status, f"/{'/'.join(node.dest_path)} already exists at the destination; pass "
                "on_conflict='skip' to keep existing nodes (and to finish an interrupted copy)",
                url=outcome.url, request_id=outcome.request_id,
            )
        return EXISTS  # created meanwhile by someone else: left alone, as the reference client does

    def _op_finish(self, node: CopyNode) -> None:
        clear_mark(self._dest, node.dest_path, node.specs if node.item is not None else [])

    def _op_checkpoint(self, payload) -> None:
        node, stored = payload
        mark = {"name": INCOMPLETE_SPEC, "version": f"{CHECKPOINT_PREFIX}{stored}"}
        clear_mark(self._dest, node.dest_path, node.specs + [mark])
