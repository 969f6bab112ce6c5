"""BaseClient: what every node has (metadata, specs, structure, formats, export)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from ..structures import ArrayStructure, ContainerStructure, Spec, TableStructure
from ..transport import NotAcceptable
from ._readonly import DictView
from .context import Context

__all__ = ["BaseClient", "UNCHANGED"]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()

_STRUCTURE_TYPES = {"array": ArrayStructure, "container": ContainerStructure, "table": TableStructure}


def _path_parts(item: dict) -> tuple[str, ...]:
    ancestors = [a for a in (item.get("attributes", {}).get("ancestors") or []) if a]
    key = item.get("id") or ""
    return tuple(ancestors + [key]) if key else tuple(ancestors)


class BaseClient:
    """A node on a Tiled server: metadata, specs, structure and export.

    Built from the server's JSON resource for the node (``item``); attribute
    access sends no request, except ``formats`` (the server's about document,
    fetched once per context).
    """

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

    # -- identity ------------------------------------------------------------
    @property
    def context(self) -> Context:
        return self._context

    @property
    def item(self) -> dict:
        """The JSON resource describing this node, as the server sent it."""
        self._load_structure()
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
        """A mutable ``[metadata, specs]`` pair, e.g. to edit and send back with update_metadata."""
        return [copy.deepcopy(self._item["attributes"].get("metadata") or {}), list(self.specs)]

    @property
    def data_sources(self) -> list[dict] | None:
        """The node's data sources (only when fetched with ``include_data_sources``)."""
        return self._item["attributes"].get("data_sources")

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
        raise ValueError(f"{self.path or '/'} cannot be exported as {format!r}; the server offers {offered}")

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
            raise ValueError(f"the server cannot export {self.path or '/'} as {media_type}: {error.detail}") from None

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
