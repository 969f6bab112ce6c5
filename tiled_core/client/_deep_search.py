"""Deep search: every descendant of a container that matches, at any depth.

The server's ``GET /search-deep/{path}`` takes the same filters as
``/search`` plus ``max_depth``, pages the same way (no sorting), and reports
each match's ``ancestors`` from the server root. Results are keyed here by
path tuples relative to the container the search started from.
"""

from __future__ import annotations

import collections.abc
import operator
from collections.abc import Iterator

from ..iterviews import ItemsView, KeysView, ValuesView
from ._dispatch import client_for_item

__all__ = ["DeepSearchResults", "MAX_DEPTH_LIMIT"]

#: The deepest ``max_depth`` the server accepts.
MAX_DEPTH_LIMIT = 64
_PAGE = 300  # the server's largest page
_FIELDS = ("metadata", "structure_family", "structure", "sorting", "specs", "access_tags")


def check_max_depth(max_depth) -> int | None:
    """``max_depth`` as an int in 1..64 (or None); ValueError/TypeError otherwise, before any request."""
    if max_depth is None:
        return None
    if isinstance(max_depth, bool):
        raise TypeError("max_depth is an integer from 1 to 64, not a bool")
    try:
        depth = operator.index(max_depth)
    except TypeError:
        raise TypeError(f"max_depth is an integer from 1 to 64, not {type(max_depth).__name__}") from None
    if not 1 <= depth <= MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be from 1 to {MAX_DEPTH_LIMIT}, not {depth}")
    return depth


class DeepSearchResults(collections.abc.Mapping):
    """The matches of ``Container.search_deep(...)``: a lazy, paged, read-only Mapping.

    Keys are tuples of path segments relative to the container searched
    (``("nested", "images", "sample_042")``; a ``"a/b/c"`` string works for
    lookups too); values are the same node clients a lookup by path gives,
    which know their full path from the server root. ``keys()``, ``values()``
    and ``items()`` are sliceable views (``[:10]``, ``[-3:]``, ``[::-1]``,
    ``page_size(n)``), each slice asking only for the entries it needs. Not
    chainable with ``search``: matches at different depths share no parent.
    """

    def __init__(self, container, params: list[tuple[str, str]], *, max_depth: int | None = None) -> None:
        self._container = container
        self._filters = list(params)
        self._max_depth = max_depth
        self._root = tuple(container.path_parts)

    @property
    def context(self):
        return self._container.context

    @property
    def structure_clients(self):
        return self._container._structure_clients

    def __repr__(self) -> str:
        # No request: a repr stays cheap (len() asks the server).
        where = "/".join(self._root) or "/"
        return f"<DeepSearchResults of {where} ({len(self._filters)} filter parameters)>"

    def _params(self) -> list[tuple[str, str]]:
        params = list(self._filters)
        if self._max_depth is not None:
            params.append(("max_depth", str(self._max_depth)))
        return params

    def _route(self) -> str:
        return self._container._route("search-deep")

    # -- Mapping -----------------------------------------------------------
    def __len__(self) -> int:
        document = self.context.session.get_document(
            self._route(), [*self._params(), ("fields", "count"), ("page[limit]", "0")]
        )
        return int(document["meta"]["count"])

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return (key for key, _ in self._iterate(0, None, 1, None, keys_only=True))

    def __getitem__(self, key):
        parts = _key_parts(key)
        if self._max_depth is not None and len(parts) > self._max_depth:
            raise KeyError(key)
        # One request: does the node itself match? Search its parent's direct children
        # for it with the same filters (the deep search applies them node by node).
        parent = self._root + parts[:-1]
        route = "search/" + "/".join(parent) if parent else "search/"
        params = [("filter[lookup][condition][key]", parts[-1]), *self._filters, *self._container._item_params()]
        try:
            found = self.context.session.get_document(route, params)["data"]
        except Exception as error:  # a missing parent (404) or a non-container on the way
            from ..transport import TiledError

            if isinstance(error, TiledError):
                raise KeyError(key) from None
            raise
        if not found:
            raise KeyError(key)
        return self._client(found[0])

    def __contains__(self, key) -> bool:
        try:
            self[key]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def keys(self) -> KeysView:
        return KeysView(
            lambda: len(self),
            lambda start, stop, direction, page_size: (
                k for k, _ in self._iterate(start, stop, direction, page_size, keys_only=True)),
            contains=self.__contains__,
        )

    def values(self) -> ValuesView:
        return ValuesView(lambda: len(self), lambda *args: (v for _, v in self._iterate(*args)))

    def items(self) -> ItemsView:
        return ItemsView(lambda: len(self), self._iterate)

    # -- paging ------------------------------------------------------------
    def _client(self, item: dict):
        container = self._container
        return client_for_item(container.context, container._structure_clients, item,
                               include_data_sources=container._include_data_sources)

    def _key_of(self, item: dict) -> tuple[str, ...]:
        ancestors = tuple(a for a in (item["attributes"].get("ancestors") or []) if a)
        return (ancestors + (item["id"],))[len(self._root):]

    def _iterate(self, start: int, stop: int | None, direction: int, page_size: int | None, *,
                 keys_only: bool = False):
        if direction < 0:
            # The server has no reverse order for deep search: find the same entries by offset
            # from the front, and walk them backwards.
            length = len(self)
            front_stop = max(length - start, 0)
            front_start = 0 if stop is None else max(length - stop, 0)
            entries = list(self._iterate(front_start, front_stop, 1, page_size, keys_only=keys_only))
            yield from reversed(entries)
            return
        session = self.context.session
        if keys_only:
            # Keys need ancestors and ids only: no metadata or structures.
            fields = [("fields", ""), ("omit_links", "true")]
        else:
            fields = self._container._item_params(_FIELDS)
        remaining = None if stop is None else stop - start
        offset = start
        while remaining is None or remaining > 0:
            limit = min(page_size, _PAGE) if page_size else min(_PAGE, remaining or _PAGE)
            params = [*self._params(), *fields, ("page[offset]", str(offset)), ("page[limit]", str(limit))]
            data = session.get_document(self._route(), params)["data"]
            page = data if remaining is None else data[:remaining]
            for item in page:
                yield (self._key_of(item), None) if keys_only else (self._key_of(item), self._client(item))
            if len(data) < limit:
                return
            offset += len(data)
            if remaining is not None:
                remaining -= len(page)


def _key_parts(key) -> tuple[str, ...]:
    if isinstance(key, str):
        parts = tuple(p for p in key.strip("/").split("/") if p)
    elif isinstance(key, tuple) and all(isinstance(p, str) for p in key):
        parts = tuple(p for segment in key for p in segment.strip("/").split("/") if p)
    else:
        raise TypeError(f"deep search keys are path tuples or 'a/b/c' strings, not {key!r}")
    if not parts:
        raise KeyError(key)
    return parts
