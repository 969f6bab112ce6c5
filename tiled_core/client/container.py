"""Container: a read-only Mapping over a node's children, with search, sort and writes."""

from __future__ import annotations

import collections.abc
import contextlib
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..iterviews import ItemsView, KeysView, ValuesView
from ..transport import ClientError, NotFound
from .writing._container_writes import ContainerWrites
from ._deep_search import DeepSearchResults, check_max_depth
from ._dispatch import client_for_item, node_item
from .writing._keys import split_path
from .reading._lazy_structure import PageStructures
from .base import UNCHANGED, BaseClient

__all__ = ["Container", "DeepSearchResults"]

MAX_PAGE = 300  # the server's largest page
ITEM_FIELDS = ("metadata", "structure_family", "structure", "sorting", "specs", "access_tags")
# Listings leave structures out (see _lazy_structure): they dominate the server's time.
LISTING_FIELDS = tuple(f for f in ITEM_FIELDS if f != "structure")


def _sort_params(sorting: list[tuple[str, int]], direction: int) -> list[tuple[str, str]]:
    custom = [(k, d) for k, d in sorting if k != ""]
    if not custom:
        return [("sort", "-")] if direction < 0 else []
    return [("sort", ("-" if d * direction < 0 else "") + key) for key, d in custom]


class Container(ContainerWrites, BaseClient, collections.abc.Mapping):
    """A container node: a Mapping of keys to child clients.

    Lookups (``c["a"]``, ``c["a/b"]``, ``c["a"]["b"]``) cost one request; a
    missing key raises KeyError. ``search`` and ``sort`` return new containers
    and leave this one unchanged. Listing fetches pages of the largest size
    the server allows, asking only for the fields it needs.
    """

    def __init__(
        self,
        context,
        *,
        item: dict,
        structure_clients: Any,
        queries: tuple = (),
        sorting: list[tuple[str, int]] | None = None,
        structure: Any = None,
        include_data_sources: bool = False,
    ) -> None:
        super().__init__(
            context, item=item, structure_clients=structure_clients, structure=structure,
            include_data_sources=include_data_sources,
        )
        self._queries = tuple(queries or ())
        if sorting is None:
            sorting = [(s["key"], int(s["direction"])) for s in (item["attributes"].get("sorting") or [])]
        self._sorting = [(str(k), int(d)) for k, d in sorting] or [("", 1)]

    def new_variation(self, *, structure_clients=UNCHANGED, queries=UNCHANGED, sorting=UNCHANGED, **kwargs) -> "Container":
        return super().new_variation(
            structure_clients=structure_clients,
            queries=self._queries if queries is UNCHANGED else queries,
            sorting=self._sorting if sorting is UNCHANGED else sorting,
            **kwargs,
        )

    def __repr__(self) -> str:
        # No request: listing keys belongs in keys(), not in a repr.
        extra = f" queries={len(self._queries)}" if self._queries else ""
        return f"<Container {self.path or '/'}{extra}>"

    # -- properties ----------------------------------------------------------
    @property
    def sorting(self) -> list[tuple[str, int]]:
        """The current sorting: ``[(key, direction), ...]``; ``""`` is insertion order."""
        return list(self._sorting)

    @property
    def queries(self) -> tuple:
        return self._queries

    def _filter_params(self) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        for query in self._queries:
            params.extend(query.encode())
        return params

    def _client(self, item: dict) -> BaseClient:
        return client_for_item(
            self._context, self._structure_clients, item, include_data_sources=self._include_data_sources
        )

    def _item_params(self, fields: tuple[str, ...] = ITEM_FIELDS) -> list[tuple[str, str]]:
        params = [("fields", f) for f in fields] + [("omit_links", "true")]
        if self._include_data_sources:
            params.append(("include_data_sources", "true"))
        return params

    # -- Mapping -------------------------------------------------------------
    def __len__(self) -> int:
        # Contents the server inlined (file-backed containers such as HDF5) are fixed: count them.
        # (The server's search count is 0 for those.)
        if not self._queries and self._pending_structure is None:
            contents = (self._item["attributes"].get("structure") or {}).get("contents")
            if contents:
                return len(contents)
        with self._gone_is_key_error():
            document = self._context.session.get_document(
                self._route("search"), [("fields", "count"), ("page[limit]", "0"), *self._filter_params()]
            )
        return int(document["meta"]["count"])

    @contextlib.contextmanager
    def _gone_is_key_error(self):
        """A 410 while listing this container (a broken link inside a registered file) is a KeyError."""
        try:
            yield
        except ClientError as error:
            if error.status == 410:
                raise KeyError(f"{self.path or '/'}: unable to open it, likely a broken link ({error.detail})") from None
            raise

    def __iter__(self, _ignore_inlined_contents: bool = False) -> Iterator[str]:
        return self._iterate(0, None, 1, None, keys_only=True, inlined=not _ignore_inlined_contents)

    def _inlined_contents(self) -> dict | None:
        """The children the server inlined in this node's structure (in-memory and file-backed
        containers, e.g. an xarray dataset or an HDF5 file it serves directly), when they answer
        a listing as they are: no search filters, the default order."""
        if self._queries or self._pending_structure is not None or any(k not in ("", "_") or d < 0
                                                                         for k, d in self._sorting):
            return None
        return (self._item["attributes"].get("structure") or {}).get("contents") or None

    # The reference client's names for slices of the listing (its views call them).
    def _keys_slice(self, start, stop, direction, page_size=None, *, _ignore_inlined_contents=False):
        return self._iterate(start, stop, direction, page_size, keys_only=True, inlined=not _ignore_inlined_contents)

    def _items_slice(self, start, stop, direction, page_size=None, *, _ignore_inlined_contents=False):
        return self._iterate(start, stop, direction, page_size, inlined=not _ignore_inlined_contents)

    def __getitem__(self, key) -> BaseClient:
        parts = split_path(key)
        session = self._context.session
        try:
            if self._queries:
                params = [("filter[lookup][condition][key]", parts[0]), *self._filter_params(), *self._item_params()]
                found = session.get_document(self._route("search"), params)["data"]
                if not found:  # the first key is not among the results: name it, not the whole path
                    raise KeyError(parts[0] if len(parts) > 1 else key)
                item = found[0]
                if len(parts) == 1:
                    return self._client(item)
                child = self._client(item)
                if not isinstance(child, Container):
                    raise KeyError(key)
                return child[parts[1:]]
            path = "metadata/" + "/".join(self._path + parts)
            params = [("omit_links", "true")] + ([("include_data_sources", "true")] if self._include_data_sources else [])
            item = node_item(session.get_document(path, params), session.url(path))
        except NotFound:
            raise KeyError(key) from None
        except ClientError as error:
            if error.status == 410:  # Gone: e.g. a broken link inside a registered HDF5 file
                raise KeyError(f"{key}: unable to open it, likely a broken link ({error.detail})") from None
            raise
        return self._client(item)

    def __contains__(self, key) -> bool:
        try:
            self[key]
        except (KeyError, TypeError):
            return False
        return True

    def _iterate(self, start: int, stop: int | None, direction: int, page_size: int | None, *, keys_only: bool = False,
                 fields: tuple[str, ...] | None = None, inlined: bool = True):
        """Children in pages; ``fields`` (internal callers) asks for exactly those fields, none loaded later.

        Children the server inlined in this node's structure are listed from there, with no request.
        """
        contents = self._inlined_contents() if inlined and fields is None and not self._include_data_sources else None
        if contents is not None:
            keys = list(contents)[::-1] if direction < 0 else list(contents)
            for key in keys[start:stop]:
                yield key if keys_only else (key, self._client(contents[key]))
            return
        session = self._context.session
        route = self._route("search")
        base = [*self._filter_params(), *_sort_params(self._sorting, direction)]
        lazy = not keys_only and not self._include_data_sources and fields is None
        if keys_only:
            base += [("fields", ""), ("omit_links", "true")]
        else:
            base += self._item_params(fields or (LISTING_FIELDS if lazy else ITEM_FIELDS))
        remaining = None if stop is None else stop - start
        position: tuple[str, str] = ("page[offset]", str(start))
        while remaining is None or remaining > 0:
            # A page size asked for is kept on every page (as the reference client does);
            # without one, pages are the largest the server allows, the last cut to what is left.
            limit = min(page_size, MAX_PAGE) if page_size else min(MAX_PAGE, remaining or MAX_PAGE)
            params = [*base, position, ("page[limit]", str(limit))]
            with self._gone_is_key_error():
                document = session.get_document(route, params)
            data = document["data"]
            full_page = len(data) >= limit
            if remaining is not None:
                data = data[:remaining]
            structures = PageStructures(session, route, params) if lazy else None
            for item in data:
                if keys_only:
                    yield item["id"]
                    continue
                child = self._client(item)
                child._pending_structure = structures
                yield item["id"], child
            if remaining is not None:
                remaining -= len(data)
            if not full_page:
                return
            links = document.get("links") or {}
            if position[0] == "page[cursor]" and "next" in links and not links["next"]:
                # A full last page. Only a cursor page's missing "next" is trustworthy: with a
                # custom sort the server pages by offset and derives "next" from a count that is
                # only a lower bound (exact up to 100), so there we read on until a short page.
                return
            position = self._next_position(document, position, len(data))

    @staticmethod
    def _next_position(document: dict, position: tuple[str, str], received: int) -> tuple[str, str]:
        # Follow the server's cursor when it gives one (cheap on big catalogs); else offsets.
        next_link = (document.get("links") or {}).get("next")
        if next_link:
            cursor = parse_qs(urlsplit(next_link).query).get("page[cursor]")
            if cursor:
                return ("page[cursor]", cursor[0])
        if position[0] == "page[offset]":
            return ("page[offset]", str(int(position[1]) + received))
        raise RuntimeError("the server switched to cursor paging and then stopped giving a cursor")

    def keys(self) -> KeysView:
        return KeysView(
            lambda: len(self),
            lambda start, stop, direction, page_size: self._iterate(start, stop, direction, page_size, keys_only=True),
            contains=self.__contains__,
        )

    def values(self) -> ValuesView:
        return ValuesView(
            lambda: len(self),
            lambda *args: (value for _, value in self._iterate(*args)),
        )

    def items(self) -> ItemsView:
        return ItemsView(lambda: len(self), self._iterate)

    # The reference client's older names for the views (deprecated there too).
    @property
    def keys_indexer(self) -> KeysView:
        """Deprecated: use ``keys()``."""
        warnings.warn("keys_indexer is deprecated; use keys()", DeprecationWarning, stacklevel=2)
        return self.keys()

    @property
    def values_indexer(self) -> ValuesView:
        """Deprecated: use ``values()``."""
        warnings.warn("values_indexer is deprecated; use values()", DeprecationWarning, stacklevel=2)
        return self.values()

    @property
    def items_indexer(self) -> ItemsView:
        """Deprecated: use ``items()``."""
        warnings.warn("items_indexer is deprecated; use items()", DeprecationWarning, stacklevel=2)
        return self.items()

    # -- search, sort, distinct --------------------------------------------
    def search(self, query) -> "Container":
        """A container of the entries matching ``query`` (queries chain with AND).

        Sends no request for the query types of ``tiled_core.queries``; a query
        class of one's own is checked against the server's list of query types
        (its about document), since the server ignores filters it does not know.
        """
        self._check_query(query)
        return self.new_variation(queries=self._queries + (query,))

    def search_deep(self, *queries, max_depth: int | None = None) -> DeepSearchResults:
        """Every descendant at any depth (not only the children) matching all ``queries``.

        Returns a :class:`DeepSearchResults` Mapping keyed by path tuples
        relative to this container (``results[("a", "b", "c")]``), not a
        container: it cannot be searched further (pass several queries; they
        combine with AND). This container's own ``search`` queries apply too.
        ``max_depth`` (1 to 64) bounds how many levels below this container
        are searched; 1 is the children only.

        Raises TypeError with no query, TypeError/ValueError for a bad query or
        ``max_depth`` (before any request), and NotImplementedError when the
        server offers no deep search (tiled before 0.2.19).
        """
        if not queries:
            raise TypeError("search_deep() needs at least one query")
        for query in queries:
            self._check_query(query)
        depth = check_max_depth(max_depth)
        if "search_deep" not in (self.item.get("links") or {}):
            raise NotImplementedError(f"the server of {self.uri} does not offer deep search (tiled >= 0.2.19 does)")
        params = self._filter_params()
        for query in queries:
            params.extend(query.encode())
        return DeepSearchResults(self, params, max_depth=depth)

    def _check_query(self, query) -> None:
        if not callable(getattr(query, "encode", None)):
            raise TypeError(f"{query!r} is not a query from tiled_core.queries")
        pairs = query.encode()  # invalid queries fail here, before any request
        # A query from another library (e.g. tiled.queries, whose encode() gives a dict) would
        # otherwise be dropped silently and the search would match everything.
        if not (isinstance(pairs, list) and all(isinstance(p, tuple) and len(p) == 2 for p in pairs)):
            raise TypeError(f"{query!r} is not a query from tiled_core.queries")
        if type(query).__module__ != "tiled_core.queries":
            # The server ignores filters it does not know, so the search would silently match everything.
            offered = self._context.server_info.get("queries") or []
            name = getattr(query, "name", None)
            if name not in offered:
                raise ValueError(f"the server does not support the query type {name!r} of {type(query).__name__}; "
                                 f"it offers {offered}")

    def sort(self, *sorting: tuple[str, int]) -> "Container":
        """The same entries sorted by ``(metadata key, 1 | -1)`` pairs."""
        checked = []
        for entry in sorting:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str) and entry[1] in (1, -1)):
                raise ValueError(f"sorting entries are (key, 1) or (key, -1) tuples, not {entry!r}")
            checked.append(entry)
        keys = [k for k, _ in checked]
        if len(set(keys)) != len(keys):
            raise ValueError(f"sorting names a key twice: {keys}")
        return self.new_variation(sorting=checked)

    def distinct(self, *metadata_keys: str, structure_families: bool = False, specs: bool = False, counts: bool = False) -> dict:
        """Unique values (and optionally counts) of metadata keys, structure families and specs."""
        params = [("metadata", key) for key in metadata_keys]
        params += [("structure_families", str(structure_families).lower()), ("specs", str(specs).lower()),
                   ("counts", str(counts).lower())]
        return self._context.session.get_document(self._route("distinct"), params + self._filter_params())

    # -- export --------------------------------------------------------------
    def export(self, filepath, fields=None, *, format: str | None = None) -> None:
        """Write this container's whole tree (metadata and data) to a file, streamed, e.g. ``c.export("all.h5")``.

        ``format`` is a media type or a file extension (default: from the file
        name); ``fields`` limits which children are exported. ``filepath`` may
        also be a writable binary buffer. Raises ValueError for a format the
        server does not offer for containers.
        """
        if isinstance(fields, str):
            fields = [fields]
        params = [("field", str(f)) for f in fields] if fields is not None else []
        self._export(filepath, format=format, route="container/full", params=params)
