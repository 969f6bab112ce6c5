"""Structures of listed nodes, fetched only when one is needed, for a whole page at once.

Listing a container without the children's structures is several times
faster on the server: a child container's structure costs the server a
count of *its* children. Array (and other data) children need their
structure as soon as they are read, so the first one to ask fetches the
structures of its whole page in one request and shares them.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["PageStructures"]


class PageStructures:
    """The structures of one listing page: one request, made the first time any is asked for."""

    def __init__(self, session, route: str, params: list[tuple[str, str]]) -> None:
        self._session = session
        self._route = route
        self._params = [*(p for p in params if p[0] != "fields"), ("fields", "structure")]
        self._by_id: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def unfetched(self) -> tuple[str, list[tuple[str, str]]] | None:
        """``(route, params)`` of the request not made yet (what a pickle carries instead); None once made."""
        with self._lock:
            return None if self._by_id is not None else (self._route, list(self._params))

    def structure_of(self, key: str, path: str) -> Any:
        with self._lock:
            if self._by_id is None:
                document = self._session.get_document(self._route, self._params)
                self._by_id = {item["id"]: item["attributes"].get("structure") for item in document["data"]}
        if key in self._by_id:
            return self._by_id[key]
        # The listing changed between the two requests: ask for this node alone.
        document = self._session.get_document(f"metadata/{path}", [("fields", "structure"), ("omit_links", "true")])
        return document["data"]["attributes"].get("structure")
