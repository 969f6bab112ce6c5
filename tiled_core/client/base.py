"""BaseClient: what every node has (metadata, specs, structure, formats, export)."""

from __future__ import annotations

import collections.abc
import copy
import os
from pathlib import Path
from typing import Any

from ..structures import ArrayStructure, ContainerStructure, DataSource, ListEqualTuple, Spec, TableStructure
from ..transport import NotAcceptable
from .writing import _metadata
from .writing._readonly import DictView, ListView
from .writing._revisions import MetadataRevisions
from .context import Context

__all__ = ["BaseClient", "ExportRefused", "UNCHANGED"]


class ExportRefused(NotAcceptable, ValueError):
    """An export the server refuses or does not offer for this node (406, often found before any request).

    A ValueError, and a ``ClientError`` (status 406) as the reference client raises.
    """


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()

_STRUCTURE_TYPES = {"array": ArrayStructure, "container": ContainerStructure, "table": TableStructure}


class PathParts(ListEqualTuple):
    """A node's path segments: a tuple that also equals the same segments as a list (as the reference gives)."""

    __slots__ = ()


def _path_parts(item: dict) -> PathParts:
    ancestors = [a for a in (item.get("attributes", {}).get("ancestors") or []) if a]
    key = item.get("id") or ""
    return PathParts(ancestors + [key]) if key else PathParts(ancestors)


class BaseClient:
    """A node on a Tiled server: metadata, specs, structure and export.

    Built from the server's JSON resource for the node (``item``); attribute
    access sends no request, except ``formats`` (the server's about document,
    fetched once per context).

    ``URL_CHARACTER_LIMIT`` (class attribute, 2000): reads whose URL would be
    longer (e.g. a long column list) are sent as the equivalent POST request.
    """

    URL_CHARACTER_LIMIT = 2_000

    def __init__(
        self,
        context: Context,
        *,
        item: dict,
        structure_clients: Any,
        structure: Any = None,
        include_data_sources: bool = False,
    ) -> None:
        self._context = context
        self._item = item
        self._structure_clients = structure_clients
        self._structure = structure
        self._include_data_sources = include_data_sources
        self._path = _path_parts(item)
        # Set by Container listings, which leave structures out until one is needed.
        self._pending_structure = None
        self._metadata_revisions: MetadataRevisions | None = None

    # -- identity ------------------------------------------------------------
    @property
    def context(self) -> Context:
        return self._context

    @property
    def item(self) -> dict:
        """The JSON resource describing this node, as the server sent it.

        Its ``links`` (which tiled_core asks the server to leave out) are filled
        in on first access, as the server would have sent them.
        """
        self._load_structure()
        if self._item.get("links") is None:
            from ._links import links_for, server_has_deep_search

            family = self.structure_family
            deep = family == "container" and server_has_deep_search(self._context.server_info)
            self._item["links"] = links_for(self._context.session, family, self.path,
                                            self._item["attributes"].get("structure"), deep_search=deep)
        return self._item

    def _load_structure(self) -> None:
        if self._pending_structure is not None:
            pending, self._pending_structure = self._pending_structure, None
            self._item["attributes"]["structure"] = pending.structure_of(self._item["id"], self.path)

    @property
    def path_parts(self) -> tuple[str, ...]:
        """Keys from the server root down to this node."""
        return self._path

    @property
    def parent(self) -> "BaseClient | None":
        """A client for the container holding this node (one request); None for the root."""
        if not self._path:
            return None
        from .constructors import from_context

        return from_context(self._context, self._structure_clients, list(self._path[:-1]),
                            include_data_sources=self._include_data_sources)

    @property
    def path(self) -> str:
        return "/".join(self._path)

    def _route(self, action: str) -> str:
        return f"{action}/{self.path}" if self._path else f"{action}/"

    @property
    def uri(self) -> str:
        """Direct link to this entry."""
        return self._context.session.url(self._route("metadata"))

    @property
    def structure_family(self) -> str:
        """The node's structure family (``"array"``, ``"container"``, ...)."""
        family = self._item["attributes"]["structure_family"]
        return getattr(family, "value", family)

    @property
    def specs(self) -> list[Spec]:
        """Specifications describing the structure of the metadata and/or data."""
        return [Spec.coerce(s) for s in (self._item["attributes"].get("specs") or [])]

    @property
    def metadata(self) -> DictView:
        """The node's metadata, read-only (see ``metadata_copy``)."""
        return DictView(self._item["attributes"].get("metadata") or {})

    def metadata_copy(self) -> list:
        """Mutable copies ``[metadata, specs, access_tags]`` to edit and pass to update_metadata.

        (``access_tags`` is left out when the server did not send it, as the reference does.)
        """
        attributes = self._item["attributes"]
        tags = attributes.get("access_tags")
        result = [copy.deepcopy(attributes.get("metadata") or {}), list(self.specs)]
        return result + [list(tags)] if tags is not None else result

    @property
    def access_tags(self) -> ListView:
        """Authorization tags of this node (AttributeError when the server sent none)."""
        tags = self._item["attributes"].get("access_tags")
        if tags is None:
            raise AttributeError("this node has no access_tags")
        return ListView(tags)

    def data_sources(self) -> list[DataSource] | None:
        """The node's data sources (``DataSource`` objects with ``.assets``, ``.mimetype``, ``.management``...).

        Fetched with one request unless this client was made with
        ``include_data_sources``. ``None`` for a node without any (e.g. a plain container).
        """
        raw = self.include_data_sources()._item["attributes"].get("data_sources")
        if raw is None:
            return None
        return [DataSource.from_json(source) for source in raw]

    def include_data_sources(self) -> "BaseClient":
        """This client if it already fetches data sources; else a new one for the same node that does (one request)."""
        if self._include_data_sources:
            return self
        return self.new_variation(include_data_sources=True).refresh()

    def structure(self):
        """A dataclass describing the structure of the data (raw JSON for families not modelled yet)."""
        if self._structure is None:
            self._load_structure()
            raw = self._item["attributes"].get("structure")
            model = _STRUCTURE_TYPES.get(self.structure_family)
            self._structure = model.from_json(raw) if model is not None and raw is not None else raw
        return self._structure

    @property
    def formats(self) -> list[str]:
        """Media types the server can export this node as."""
        formats = self._context.server_info.get("formats", {})
        result: list[str] = []
        for name in [s.name for s in self.specs] + [self.structure_family]:
            for media_type in formats.get(name, []):
                if media_type not in result:
                    result.append(media_type)
        return result

    def new_variation(
        self,
        structure_clients: Any = UNCHANGED,
        include_data_sources: Any = UNCHANGED,
        structure: Any = UNCHANGED,
        **kwargs,
    ) -> "BaseClient":
        """A client for the same node with some settings changed (for subclasses and internals)."""
        variation = type(self)(
            self._context,
            item=self._item,
            structure_clients=self._structure_clients if structure_clients is UNCHANGED else structure_clients,
            include_data_sources=self._include_data_sources if include_data_sources is UNCHANGED else include_data_sources,
            structure=self._structure if structure is UNCHANGED else structure,
            **kwargs,
        )
        variation._pending_structure = self._pending_structure
        return variation

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path or '/'}>"

    def __getstate__(self) -> dict:
        # Pickles with its context, which keeps its credential in this process (see Context).
        from ._pickling import state_of_client

        return state_of_client(self)

    def __setstate__(self, state: dict) -> None:
        from ._pickling import restore_client

        restore_client(self, state)

    # -- login -----------------------------------------------------------------
    def login(self, *, username: str | None = None, password: str | None = None, remember_me: bool = True,
              provider: str | None = None) -> None:
        """Log in with a username and password (asked for at a terminal when not given).

        Without a terminal, missing credentials are a ``CannotPrompt`` error at
        once. See ``Context.login``.
        """
        self._context.authenticate(remember_me=remember_me, username=username, password=password, provider=provider)

    def logout(self) -> None:
        """Log out (revoke the session, forget its tokens). Idempotent."""
        self._context.logout()

    def __dask_tokenize__(self):
        return (type(self).__name__, self.uri)

    # -- export ------------------------------------------------------------
    def _resolve_format(self, filepath: str | os.PathLike | None, format: str | None) -> str:
        offered = self.formats
        if format is None:
            if filepath is None or not Path(filepath).suffix:
                raise ValueError(f"give format= (one of {offered}) or a filename with an extension")
            format = Path(filepath).suffix.lstrip(".").lower()
        if format in offered:
            return format
        base, semicolon, _ = format.partition(";")
        if semicolon and base.strip() in offered:
            return format  # a media type with parameters, e.g. "text/csv;header=absent": the server reads them
        aliases = self._context.server_info.get("aliases", {})
        for name in [s.name for s in self.specs] + [self.structure_family]:
            for media_type, names in (aliases.get(name) or {}).items():
                if format in names and media_type in offered:
                    return media_type
        custom = {"h5": "application/x-hdf5", "hdf5": "application/x-hdf5", "parquet": "application/x-parquet",
                  "arrow": "application/vnd.apache.arrow.file", "feather": "application/vnd.apache.arrow.file",
                  "nc": "application/netcdf", "txt": "text/plain", "text": "text/plain", "csv": "text/csv",
                  "json": "application/json", "png": "image/png", "tif": "image/tiff", "tiff": "image/tiff",
                  "html": "text/html", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
        if custom.get(format) in offered:
            return custom[format]
        raise ExportRefused(406, f"{self.path or '/'} cannot be exported as {format!r}; the server offers {offered}",
                               url=self.uri)

    def _export(self, filepath, *, format: str | None, route: str, params: list | None = None) -> None:
        media_type = self._resolve_format(filepath if isinstance(filepath, (str, os.PathLike)) else None, format)
        params = list(params or []) + [("format", media_type)]
        try:
            with self._context.session.stream(self._route(route), params, accept=media_type) as chunks:
                if isinstance(filepath, (str, os.PathLike)):
                    partial = Path(f"{os.fspath(filepath)}.partial")
                    try:
                        with open(partial, "wb") as file:
                            for chunk in chunks:
                                file.write(chunk)
                    except BaseException:
                        partial.unlink(missing_ok=True)  # no half-written leftovers either
                        raise
                    partial.replace(filepath)  # never leave a half-written file under the real name
                else:  # a writable binary buffer
                    for chunk in chunks:
                        filepath.write(chunk)
        except NotAcceptable as error:
            raise ExportRefused(406, f"the server cannot export {self.path or '/'} as {media_type}: {error.detail}",
                                   url=error.url, request_id=error.request_id) from None

    def asset_manifest(self, data_sources) -> dict:
        """``{asset id: [relative paths]}`` of directory assets (``None`` for single files) of ``data_sources``."""
        from .reading._raw_export import asset_manifest

        return asset_manifest(self._context.session, self._path, data_sources)

    def raw_export(self, destination=None, max_workers: int = 4, compression: bool = True, **kwargs) -> list:
        """Download the files backing this node as they are stored (as the server serves them).

        Arguments:
            destination: a directory (default: the current one), or a MutableMapping
                that receives one ``io.BytesIO`` per file.
            max_workers: files downloaded at once.
            compression: True (default) streams compressed (any coding but blosc2); False asks for none.
            destination_directory: the older name of ``destination`` (a DeprecationWarning).

        Returns the paths (or mapping keys) written. A node whose data the server
        does not keep as files raises ValueError; several data sources, NotImplementedError.
        """
        if "destination_directory" in kwargs:
            import warnings

            if destination is not None:
                raise TypeError("raw_export() got both 'destination' and the deprecated 'destination_directory'; give one")
            warnings.warn("raw_export(destination_directory=...) is deprecated; use destination=",
                          DeprecationWarning, stacklevel=2)
            destination = kwargs.pop("destination_directory")
        if kwargs:
            raise TypeError(f"raw_export() got unexpected keyword arguments {sorted(kwargs)}")
        from .reading._raw_export import raw_export

        return raw_export(self._context.session, self._path, self.data_sources() or [], destination,
                          max_workers=max_workers, compression=compression)

    # -- fallback for families and specs without a client ------------------
    def read(self, *args, **kwargs):
        """Nodes without a dedicated client cannot be read; say so plainly (subclasses override this)."""
        specs = [s.name for s in self.specs]
        raise NotImplementedError(
            f"{self.path or '/'} is a {self.structure_family!r} node"
            + (f" with specs {specs}" if specs else "")
            + " and tiled_core has no client that reads it; its metadata, item and structure() are"
            " available, or pass structure_clients={family or spec name: class} to from_uri"
        )

    # -- metadata updates --------------------------------------------------
    def refresh(self) -> "BaseClient":
        """Fetch this node's resource again (metadata, specs, structure); return self."""
        params = [("omit_links", "true")] + ([("include_data_sources", "true")] if self._include_data_sources else [])
        self._item = self._context.session.get_document(self._route("metadata"), params)["data"]
        self._structure = None
        return self

    def update_metadata(self, metadata=None, specs=None, access_tags=None, *, drop_revision: bool = False) -> None:
        """Update metadata like ``dict.update``, recursively; ``specs`` and ``access_tags`` replace.

        Nested dicts merge key by key; other values (lists, ``None``) replace;
        ``tiled_core.client.metadata_update.DELETE_KEY`` removes a key. The
        change is sent as a JSON Patch against the metadata this client last saw,
        and the server keeps the previous version as a revision unless
        ``drop_revision=True``. Values JSON cannot carry (NaN, sets, objects)
        raise ValueError/TypeError before any request.
        """
        metadata_patch, specs_patch, access_tags_patch = self.build_metadata_patches(metadata, specs, access_tags)
        self.patch_metadata(metadata_patch, specs_patch, access_tags_patch, drop_revision=drop_revision)

    def build_metadata_patches(self, metadata=None, specs=None, access_tags=None) -> tuple:
        """``(metadata_patch, specs_patch, access_tags_patch)``: JSON Patches (RFC 6902) for patch_metadata.

        ``metadata`` is merged into the current metadata as update_metadata does;
        a None argument gives no change (``[]`` for metadata, ``None`` otherwise).
        """
        attributes = self._item["attributes"]
        current = attributes.get("metadata") or {}
        metadata_patch = [] if metadata is None else _metadata.diff(current, _metadata.merged_metadata(current, metadata))
        specs_patch = None
        if specs is not None:
            specs_patch = _metadata.specs_patch(self._spec_dicts(), _metadata.spec_dicts(specs, url=self.uri))
        access_tags_patch = None
        if access_tags:  # an empty list changes nothing, as in the reference client
            access_tags_patch = _metadata.diff(list(attributes.get("access_tags") or []), _tag_list(access_tags))
        return metadata_patch, specs_patch, access_tags_patch

    def patch_metadata(self, metadata_patch=None, specs_patch=None, access_tags_patch=None,
                       content_type: str = _metadata.JSON_PATCH, drop_revision: bool = False) -> None:
        """Apply a JSON Patch (RFC 6902) or, with ``content_type="application/merge-patch+json"``,
        a JSON Merge Patch (RFC 7386) to the metadata, specs and access tags.

        The patch is first applied to this client's copy (refetched once if
        that fails), so a patch that cannot apply raises ValueError before any
        request. Afterwards ``.metadata`` and ``.specs`` show the new values.
        """
        if content_type not in _metadata.PATCH_TYPES:
            raise ValueError(f"content_type must be one of {_metadata.PATCH_TYPES}, not {content_type!r}")
        if metadata_patch is not None:
            # A JSON Patch wraps values in two levels of its own (the list, the operation).
            metadata_patch = _metadata.json_value(metadata_patch, "metadata_patch", max_depth=_metadata.MAX_DEPTH + 2)
            expected = list if content_type == _metadata.JSON_PATCH else dict
            if not isinstance(metadata_patch, expected):
                raise ValueError(f"a {content_type} metadata patch is a {expected.__name__}, "
                                 f"not {type(metadata_patch).__name__}")
        if specs_patch is not None:
            specs_patch = _metadata.normalize_specs_patch(specs_patch, content_type)
        if access_tags_patch is not None:
            access_tags_patch = _metadata.json_value(access_tags_patch, "access_tags_patch")
        patched = self._preview(metadata_patch, specs_patch, access_tags_patch, content_type)
        body = {"content-type": content_type, "metadata": metadata_patch, "specs": specs_patch,
                "access_tags": access_tags_patch}
        reply = self._context.session.send("PATCH", self._route("metadata"), json=body, params=_revision(drop_revision))
        self._store(patched, reply if isinstance(reply, dict) else {})

    def _preview(self, metadata_patch, specs_patch, access_tags_patch, content_type) -> dict:
        """The node's metadata, specs and tags with the patches applied locally (None: unchanged)."""
        def attempt() -> dict:
            attributes = self._item["attributes"]
            result = {}
            for name, patch, current in (
                ("metadata", metadata_patch, attributes.get("metadata") or {}),
                ("specs", specs_patch, self._spec_dicts()),
                ("access_tags", access_tags_patch, list(attributes.get("access_tags") or [])),
            ):
                if patch is not None:
                    result[name] = _metadata.apply_patch(current, patch, content_type)
            return result

        try:
            return attempt()
        except ValueError:
            self.refresh()  # our copy may be stale: judge the patch against the server's current version
        try:
            return attempt()
        except ValueError as error:
            raise ValueError(f"the patch does not apply to the metadata of {self.path or '/'}: {error}") from None

    def replace_metadata(self, metadata=None, specs=None, access_tags=None, drop_revision: bool = False) -> None:
        """Replace the metadata (and/or specs, access tags) entirely; None leaves that part unchanged."""
        if metadata is not None:
            if not isinstance(metadata, collections.abc.Mapping):
                raise ValueError(f"metadata must be a mapping (a JSON object), not {type(metadata).__name__}")
            metadata = _metadata.json_value(dict(metadata))
        specs_json = None if specs is None else _metadata.spec_dicts(specs, url=self.uri)
        tags = None if access_tags is None else _tag_list(access_tags)
        body = {"metadata": metadata, "specs": specs_json, "access_tags": tags}
        reply = self._context.session.send("PUT", self._route("metadata"), json=body, params=_revision(drop_revision))
        self._store({k: v for k, v in (("metadata", metadata), ("specs", specs_json), ("access_tags", tags))
                     if v is not None}, reply if isinstance(reply, dict) else {})

    def _store(self, values: dict, reply: dict) -> None:
        # The server's reply wins where it changed something itself (spec validators, access policy).
        attributes = self._item["attributes"]
        for name, value in values.items():
            attributes[name] = reply[name] if name in reply and name != "specs" else value

    def _spec_dicts(self) -> list[dict]:
        return [s.to_json() for s in self.specs]

    @property
    def metadata_revisions(self) -> MetadataRevisions:
        """Earlier versions of this node's metadata kept by the server (oldest first)."""
        if self._metadata_revisions is None:
            self._metadata_revisions = MetadataRevisions(self._context.session, self.path)
        return self._metadata_revisions


def _revision(drop_revision: bool) -> list[tuple[str, str]]:
    return [("drop_revision", "true")] if drop_revision else []


def _tag_list(tags) -> list[str]:
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise TypeError("access_tags is a list of strings")
    return list(tags)
