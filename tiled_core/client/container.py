"""Container: a read-only Mapping over a node's children, with search, sort and writes."""

from __future__ import annotations

import collections.abc
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..iterviews import ItemsView, KeysView, ValuesView
from ..structures import data_source_to_json
from ..transport import ClientError, NotFound
from .writing._conflict import begin_write, check_on_conflict, finish_write
from ._deep_search import DeepSearchResults, check_max_depth
from ._dispatch import client_for_item, node_item
from .writing._keys import split_path, validate_key
from .reading._lazy_structure import PageStructures
from .writing._metadata import json_value, spec_dicts
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


class Container(BaseClient, collections.abc.Mapping):
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
        document = self._context.session.get_document(
            self._route("search"), [("fields", "count"), ("page[limit]", "0"), *self._filter_params()]
        )
        return int(document["meta"]["count"])

    def __iter__(self) -> Iterator[str]:
        return self._iterate(0, None, 1, None, keys_only=True)

    def __getitem__(self, key) -> BaseClient:
        parts = split_path(key)
        session = self._context.session
        try:
            if self._queries:
                params = [("filter[lookup][condition][key]", parts[0]), *self._filter_params(), *self._item_params()]
                found = session.get_document(self._route("search"), params)["data"]
                if not found:
                    raise KeyError(key)
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
                 fields: tuple[str, ...] | None = None):
        """Children in pages; ``fields`` (internal callers) asks for exactly those fields, none loaded later."""
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

    # -- writes ------------------------------------------------------------
    def new(
        self,
        structure_family: str,
        data_sources: list[dict],
        *,
        key: str | None = None,
        metadata: dict | None = None,
        specs: list | None = None,
        access_tags: list[str] | None = None,
    ) -> BaseClient:
        """Create a child node (low level): POST its family, data sources, metadata and specs.

        ``data_sources`` are ``tiled_core.structures.DataSource`` objects (or the
        reference client's, or their JSON dicts). Data sources whose assets point
        at existing files (``management="external"``) are registered: the server
        reads those files itself, so they must be readable by it (its
        ``readable_storage``). Bad metadata, specs or data sources raise before any request.
        """
        family = getattr(structure_family, "value", structure_family)
        if key is not None:
            validate_key(key)
        if metadata is not None and not isinstance(metadata, collections.abc.Mapping):
            raise TypeError(f"metadata must be a mapping, not {type(metadata).__name__}")
        if isinstance(data_sources, (dict, str)) or not isinstance(data_sources, collections.abc.Iterable):
            raise TypeError("data_sources is a list of data sources")
        data_sources = [data_source_to_json(source) for source in data_sources]
        body = {
            "id": key,
            "structure_family": family,
            "metadata": json_value(dict(metadata or {})),  # NaN, sets, objects: errors before any request
            "specs": spec_dicts(specs or []),
            "data_sources": data_sources,
        }
        if access_tags is not None:
            body["access_tags"] = list(access_tags)
        # The server takes files it does not manage only on its register route.
        external = any(source["assets"] or source["management"] == "external" for source in data_sources)
        reply = self._context.session.send("POST", self._route("register" if external else "metadata"), json=body)
        created = reply.get("data", reply) if isinstance(reply, dict) else {}
        sources = created.get("data_sources") or data_sources
        if family == "container":
            structure = {"contents": None, "count": None if sources else 0}
        else:
            structure = sources[0]["structure"] if sources else None
        item = {
            "id": created["id"],
            "attributes": {
                "ancestors": list(self._path),
                "structure_family": family,
                "specs": body["specs"],
                "metadata": created.get("metadata", body["metadata"]),
                "access_tags": created.get("access_tags", body.get("access_tags")),
                "structure": structure,
                "sorting": [{"key": "", "direction": 1}] if family == "container" else None,
                "data_sources": sources if self._include_data_sources else None,
            },
            "links": created.get("links"),
            "meta": None,
        }
        return self._client(item)

    def create_container(self, key: str | None = None, *, metadata: dict | None = None, specs: list | None = None,
                         access_tags: list[str] | None = None, on_conflict: str = "error") -> "Container":
        """Create a new, empty container (``on_conflict="skip"`` returns an existing one)."""
        return begin_write(self, "container", [], key=key, metadata=metadata, specs=specs,
                           access_tags=access_tags, on_conflict=on_conflict).client

    def write_array(self, array, *, key: str | None = None, metadata: dict | None = None, dims=None,
                    specs: list | None = None, access_tags: list[str] | None = None, on_conflict: str = "error"):
        """Create an array node and upload ``array`` (numpy, dask or array-like).

        A numpy array of one chunk (up to ~100 MB) goes in one request after the
        create, as does an evenly chunked dask array up to 16 MiB; larger ones are
        cut into regular chunks of at most ~100 MB, uploaded concurrently
        (bounded); a dask array keeps its chunks (made regular if needed) and
        is computed block by block, never whole in memory. ``on_conflict``
        ("error", "skip", "replace") decides what happens when ``key`` exists;
        see :mod:`tiled_core.client.conflict` for the state an interrupted
        write leaves behind.
        """
        from .writing._upload import array_data_source, plan_array_write, upload_array

        check_on_conflict(on_conflict)
        validated = validate_key(key) if key is not None else None
        array, source = array_data_source(array, dims=dims)
        create_with, mark = plan_array_write(array, source)
        target = begin_write(self, "array", [create_with], key=validated, metadata=metadata, specs=specs,
                             access_tags=access_tags, on_conflict=on_conflict, mark=mark)
        if target.needs_upload:
            upload_array(target.client, array)
            finish_write(target.client)
        return target.client

    def register(self, *uris, key: str | None = None, structure=None, mimetype: str | None = None,
                 parameters: dict | None = None, metadata: dict | None = None, specs: list | None = None,
                 access_tags: list[str] | None = None, on_conflict: str = "error"):
        """Register existing file(s) as one node (array, table, ...) whose data the server reads in place.

        Arguments:
            uris: file paths or ``file://`` URIs; several files make one node (a
                stack of images, a table of several partitions, HDF5 datasets
                concatenated). A directory (a Zarr store) is one node too. The
                files are opened here to describe them, and must be readable by
                the server (its ``readable_storage``) at the same paths.
            key: the new node's key (default: one the server picks).
            structure: a structure to serve the files as instead of the one read
                from them (e.g. another shape of the same number of elements).
            mimetype: the file type (default: from the extension), e.g.
                ``"text/csv;header=absent"`` to read a CSV as an array.
            parameters: options for reading the files (``{"sep": ";"}``,
                ``{"dataset": "entry/data"}``...), used here and kept for the server.
            metadata: merged over the metadata read from the file(s).
            specs, access_tags: as for ``new``.
            on_conflict: ``"error"``, ``"skip"`` or ``"replace"`` when ``key`` exists.

        Raises ValueError before any request for no files, an unknown type, or
        a ``structure`` the files cannot be served as.
        """
        from .registering._files import describe_files

        check_on_conflict(on_conflict)
        validated = validate_key(key) if key is not None else None
        if metadata is not None and not isinstance(metadata, collections.abc.Mapping):
            raise TypeError(f"metadata must be a mapping, not {type(metadata).__name__}")
        family, source, found_metadata, found_specs = describe_files(
            uris, structure=structure, mimetype=mimetype, parameters=parameters)
        merged = {**found_metadata, **dict(metadata or {})}
        all_specs = list(found_specs) + [s for s in (specs or []) if s not in found_specs]
        target = begin_write(self, family, [source], key=validated, metadata=merged, specs=all_specs or None,
                             access_tags=access_tags, on_conflict=on_conflict, mark=False)
        return target.client

    # -- deletes -------------------------------------------------------------
    def delete(self, key: str, *, recursive: bool = False) -> None:
        """Delete the child ``key`` and the data the server manages for it.

        A container with children is refused (:class:`Conflict`) unless
        ``recursive=True``. A missing key raises KeyError.
        """
        self._delete_child(validate_key(key), recursive=recursive, external_only=False)

    def delete_contents(self, keys=None, recursive: bool = False, external_only: bool = True) -> "Container":
        """Delete some (``keys``) or all children, as the reference client does.

        With ``external_only=True`` (the reference default) the server refuses
        to delete nodes whose data it manages itself; pass False to delete those too.
        """
        if keys is None:
            keys = list(self.keys())
        elif isinstance(keys, str):
            keys = [keys]
        for key in dict.fromkeys(keys):
            self._delete_child(key, recursive=recursive, external_only=external_only)
        return self

    def _delete_child(self, key: str, *, recursive: bool, external_only: bool) -> None:
        params = [("recursive", str(recursive).lower()), ("external_only", str(external_only).lower())]
        try:
            self._context.session.send("DELETE", "metadata/" + "/".join(self._path + split_path(key)), params=params)
        except NotFound:
            raise KeyError(key) from None

    # -- tables ------------------------------------------------------------
    def write_table(self, data, *, key: str | None = None, metadata: dict | None = None,
                    specs: list | None = None, access_tags: list[str] | None = None, on_conflict: str = "error"):
        """Create a table node and upload ``data``: a pandas or dask DataFrame (or a dict of columns).

        A dask DataFrame keeps its partitions as the table's partitions; they
        are computed and uploaded one by one (bounded concurrency), never whole.
        Column names must be strings not starting with ``_`` (checked before
        any request). The table is stored as Parquet: use
        ``create_appendable_table`` for one that grows by appending rows.
        ``on_conflict`` ("error", "skip", "replace") decides what happens when
        ``key`` exists; see :mod:`tiled_core.client.conflict`.
        """
        from .writing._table_upload import table_data_source, upload_table

        check_on_conflict(on_conflict)
        validated = validate_key(key) if key is not None else None
        prepared, source = table_data_source(data)
        target = begin_write(self, "table", [source], key=validated, metadata=metadata, specs=specs,
                             access_tags=access_tags, on_conflict=on_conflict)
        if target.needs_upload:
            upload_table(target.client, prepared)
            finish_write(target.client)
        return target.client

    def write_dataframe(self, data, *, key: str | None = None, metadata: dict | None = None,
                        specs: list | None = None, access_tags: list[str] | None = None, on_conflict: str = "error"):
        """Deprecated (as in the reference client): the same as ``write_table``."""
        warnings.warn("write_dataframe is deprecated; use write_table (the same arguments)", DeprecationWarning,
                      stacklevel=2)
        return self.write_table(data, key=key, metadata=metadata, specs=specs, access_tags=access_tags,
                                on_conflict=on_conflict)

    def create_appendable_table(self, schema, npartitions: int = 1, *, key: str | None = None,
                                metadata: dict | None = None, specs: list | None = None,
                                access_tags: list[str] | None = None, table_name: str | None = None,
                                on_conflict: str = "error"):
        """Create an empty table in the server's SQL storage, whose partitions grow with ``append_partition``.

        ``schema`` is a ``pyarrow.Schema``; the server lower-cases column names.
        With ``on_conflict="skip"`` an existing table of the same structure is
        returned as it is (rows appended so far included).
        """
        from .writing._table_upload import appendable_data_source

        check_on_conflict(on_conflict)
        validated = validate_key(key) if key is not None else None
        source = appendable_data_source(schema, npartitions, table_name)
        # No data to upload: an empty table is complete as created, so it carries no incomplete mark.
        target = begin_write(self, "table", [source], key=validated, metadata=metadata, specs=specs,
                             access_tags=access_tags, on_conflict=on_conflict)
        if target.needs_upload:
            finish_write(target.client)
        return target.client

    def write_sparse(self, coords, data, shape, *, key: str | None = None, metadata: dict | None = None, dims=None,
                     specs: list | None = None, access_tags: list[str] | None = None, on_conflict: str = "error"):
        """Create a sparse (COO) array node from ``coords`` (ndim x nnz), ``data`` (nnz) and ``shape``.

        One block; for a chunked sparse array use ``new("sparse", ...)`` and
        ``SparseClient.write_block``. Bad coordinates raise before any request.
        ``on_conflict``: ``"error"``, ``"skip"`` or ``"replace"`` (see ``write_array``).
        """
        from ..codecs.sparse import check_coo_parts
        from ..structures import SparseStructure

        check_on_conflict(on_conflict)
        validated = validate_key(key) if key is not None else None
        shape = tuple(int(s) for s in shape)
        coords, data = check_coo_parts(coords, data, shape)
        structure = SparseStructure.from_coo(coords, data, shape, dims=dims)
        target = begin_write(self, "sparse", [_writable_source("sparse", structure)], key=validated, metadata=metadata,
                             specs=specs, access_tags=access_tags, on_conflict=on_conflict)
        if target.needs_upload:
            target.client.write(coords, data)
            finish_write(target.client)
        return target.client

    def write_awkward(self, array, *, key: str | None = None, metadata: dict | None = None, dims=None,
                      specs: list | None = None, access_tags: list[str] | None = None, on_conflict: str = "error"):
        """Create an awkward array node from ``array`` (an ``awkward.Array`` or what it accepts).

        The array is packed first, so only the data it shows is sent. ``dims`` is
        accepted for compatibility with the reference client, which ignores it too.
        ``on_conflict``: ``"error"``, ``"skip"`` or ``"replace"`` (see ``write_array``).
        """
        from ..codecs.awkward import pack_awkward
        from ..structures import AwkwardStructure

        check_on_conflict(on_conflict)
        validated = validate_key(key) if key is not None else None
        form, length, buffers = pack_awkward(array)
        structure = AwkwardStructure(length=length, form=form)
        target = begin_write(self, "awkward", [_writable_source("awkward", structure)], key=validated,
                             metadata=metadata, specs=specs, access_tags=access_tags, on_conflict=on_conflict)
        if target.needs_upload:
            target.client.write(buffers)
            finish_write(target.client)
        return target.client

    def write_ragged(self, array, *, key: str | None = None, metadata: dict | None = None, dims=None,
                     specs: list | None = None, access_tags: list[str] | None = None,
                     max_partition_bytes: int | None = None, appendable: bool = True, on_conflict: str = "error"):
        """Create a ragged array node from ``array`` and upload it; returns its ``RaggedClient``.

        ``array``: a ``ragged.array``, an ``awkward.Array`` of nested lists of
        numbers, a numpy array or nested sequences. It is stored in the
        server's SQL storage in partitions of whole rows of at most
        ``max_partition_bytes`` each (default 100 MB), one request per
        partition. ``dims`` names the dimensions. ``appendable=False`` is not
        supported by the server (NotImplementedError). ``on_conflict``
        ("error", "skip", "replace") decides what happens when ``key`` exists;
        an unfinished node found by "skip" is written again from scratch (the
        server appends partitions, so they cannot be topped up).
        Data that cannot be a ragged array (records, missing values, strings),
        a row larger than ``max_partition_bytes``, or bad keys and metadata
        raise before any request.
        """
        from .writing._ragged_upload import ragged_data_source, upload_ragged

        check_on_conflict(on_conflict)
        if not appendable:
            raise NotImplementedError("appendable=False is not yet implemented (the server's ragged storage appends)")
        validated = validate_key(key) if key is not None else None
        packed, rows, source = ragged_data_source(array, dims=dims, max_partition_bytes=max_partition_bytes)
        target = begin_write(self, "ragged", [source], key=validated, metadata=metadata, specs=specs,
                             access_tags=access_tags, on_conflict=on_conflict, resumable=False)
        if target.needs_upload:
            upload_ragged(target.client, packed, rows)
            finish_write(target.client)
        return target.client


def _writable_source(family: str, structure) -> dict:
    """A data source the server stores itself (``management: writable``) for a new node."""
    return {"structure_family": family, "structure": structure.to_json(), "mimetype": None, "parameters": {},
            "properties": {}, "assets": [], "management": "writable", "id": None}
