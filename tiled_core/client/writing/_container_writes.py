"""The writes a container offers: ``new``, ``create_container``, ``write_*``, ``register``, deletes.

``Container`` takes them from :class:`ContainerWrites`; every write resolves
``on_conflict`` and keeps the incomplete mark through ``_conflict``.
"""

from __future__ import annotations

import collections.abc
import warnings
from typing import TYPE_CHECKING

from ...structures import data_source_to_json
from ...transport import NotFound
from ..reading._array_io import UPLOAD_CHUNK_BYTES
from ._batch import PendingWrite, WriteBatch
from ._conflict import begin_write, check_on_conflict, checked_fields, finish_write
from ._keys import split_path, validate_key
from ._metadata import json_value, spec_dicts

if TYPE_CHECKING:
    from ..base import BaseClient
    from ..container import Container

__all__ = ["ContainerWrites"]


class ContainerWrites:
    """Mixin of ``Container``: creating, writing, registering and deleting children.

    ``_SUGGESTED_MAX_UPLOAD_SIZE`` (class attribute, bytes; 100 MB, as in the
    reference client): data larger than this is written in several requests,
    each of at most this many bytes (an array's chunks, a ragged array's
    partitions are cut to fit). Set it on a container to change its writes.
    """

    _SUGGESTED_MAX_UPLOAD_SIZE = UPLOAD_CHUNK_BYTES

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
            "specs": spec_dicts(specs or [], url=self.uri),
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
        return self._prepare_array(array, key=key, metadata=metadata, dims=dims, specs=specs,
                                   access_tags=access_tags, on_conflict=on_conflict).run()

    def _prepare_array(self, array, *, key: str | None = None, metadata: dict | None = None, dims=None,
                       specs: list | None = None, access_tags: list[str] | None = None,
                       on_conflict: str = "error") -> PendingWrite:
        from ._upload import array_data_source, plan_array_write, upload_array, upload_limit

        key, metadata, specs = checked_fields(key, metadata, specs, on_conflict, url=self.uri)
        limit = upload_limit(self._SUGGESTED_MAX_UPLOAD_SIZE)
        array, source = array_data_source(array, dims=dims, limit=limit)
        create_with, mark = plan_array_write(array, source, limit)
        return PendingWrite(
            create=lambda: begin_write(self, "array", [create_with], key=key, metadata=metadata, specs=specs,
                                       access_tags=access_tags, on_conflict=on_conflict, mark=mark),
            upload=lambda client: upload_array(client, array),
        )

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
        from ..registering._files import describe_files

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
        return self._prepare_table(data, key=key, metadata=metadata, specs=specs, access_tags=access_tags,
                                   on_conflict=on_conflict).run()

    def _prepare_table(self, data, *, key: str | None = None, metadata: dict | None = None,
                       specs: list | None = None, access_tags: list[str] | None = None,
                       on_conflict: str = "error") -> PendingWrite:
        from ._table_upload import table_data_source, upload_table

        key, metadata, specs = checked_fields(key, metadata, specs, on_conflict, url=self.uri)
        prepared, source = table_data_source(data)
        return PendingWrite(
            create=lambda: begin_write(self, "table", [source], key=key, metadata=metadata, specs=specs,
                                       access_tags=access_tags, on_conflict=on_conflict),
            upload=lambda client: upload_table(client, prepared),
        )

    def batch(self, *, concurrency: int | None = None, max_pending: int | None = None) -> WriteBatch:
        """Many writes into this container with their requests overlapping (a context manager).

        ::

            with container.batch() as batch:
                for i, frame in enumerate(frames):
                    batch.write_array(frame, key=f"frame{i:05d}", metadata={"index": i})

        Children are created in the order written; each node's data is sent
        while the next nodes are created (at most ``concurrency`` requests at
        a time, default ``Limits.concurrency``); at most ``max_pending``
        writes wait in memory (default 4 x concurrency). Every write keeps the
        guarantees of ``write_array`` / ``write_table``; the first failure
        stops the batch and is raised from the ``with`` block. See
        :class:`tiled_core.client.batch.WriteBatch`.
        """
        return WriteBatch(self, concurrency=concurrency, max_pending=max_pending)

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
        from ._table_upload import appendable_data_source

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
        from ...codecs.sparse import check_coo_parts
        from ...structures import SparseStructure

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
        from ...codecs.awkward import pack_awkward
        from ...structures import AwkwardStructure

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
        ``max_partition_bytes`` each (default ``_SUGGESTED_MAX_UPLOAD_SIZE``, 100 MB), one request per
        partition. ``dims`` names the dimensions. ``appendable=False`` is not
        supported by the server (NotImplementedError). ``on_conflict``
        ("error", "skip", "replace") decides what happens when ``key`` exists;
        an unfinished node found by "skip" is written again from scratch (the
        server appends partitions, so they cannot be topped up).
        Data that cannot be a ragged array (records, missing values, strings),
        a row larger than ``max_partition_bytes``, or bad keys and metadata
        raise before any request.
        """
        from ._ragged_upload import ragged_data_source, upload_ragged

        check_on_conflict(on_conflict)
        if not appendable:
            raise NotImplementedError("appendable=False is not yet implemented (the server's ragged storage appends)")
        validated = validate_key(key) if key is not None else None
        if max_partition_bytes is None:
            from ._upload import upload_limit

            max_partition_bytes = upload_limit(self._SUGGESTED_MAX_UPLOAD_SIZE)
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
