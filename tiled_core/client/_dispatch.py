"""Which client class serves a node: specs first, then the structure family (a table, not if/elif)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..transport import MalformedResponse

__all__ = ["DEFAULT_STRUCTURE_CLIENT_DISPATCH", "check_structure_clients", "client_for_item", "node_item",
           "resolve_structure_clients"]

DEFAULT_STRUCTURE_CLIENT_DISPATCH: dict[str, dict[str, str]] = {
    "numpy": {
        "sparse": "tiled_core.client.sparse:SparseClient",
        "awkward": "tiled_core.client.awkward:AwkwardClient",
        "ragged": "tiled_core.client.ragged:RaggedClient",
        "xarray_dataset": "tiled_core.client.xarray:DatasetClient",  # a spec, matched before families
        "composite": "tiled_core.client.composite:CompositeClient",  # a spec too
        "container": "tiled_core.client.container:Container",
        "array": "tiled_core.client.array:ArrayClient",
        "table": "tiled_core.client.dataframe:DataFrameClient",
        "bytes": "tiled_core.client.bytes:BytesClient",
    },
    "dask": {
        # sparse and awkward have no lazy client (nor does the reference): both modes read eagerly
        "sparse": "tiled_core.client.sparse:SparseClient",
        "awkward": "tiled_core.client.awkward:AwkwardClient",
        "ragged": "tiled_core.client.ragged:DaskRaggedClient",
        "xarray_dataset": "tiled_core.client.xarray:DaskDatasetClient",
        "composite": "tiled_core.client.composite:CompositeClient",
        "container": "tiled_core.client.container:Container",
        "array": "tiled_core.client.array:DaskArrayClient",
        "table": "tiled_core.client.dataframe:DaskDataFrameClient",
        "bytes": "tiled_core.client.bytes:BytesClient",
    },
}


def _load(target: Any) -> type:
    if isinstance(target, str):
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)
    return target


def resolve_structure_clients(structure_clients: Any) -> Mapping[str, Any]:
    """``"numpy"``, ``"dask"`` or a mapping of family/spec name -> class (or ``"pkg.mod:Class"``)."""
    if isinstance(structure_clients, str):
        try:
            return DEFAULT_STRUCTURE_CLIENT_DISPATCH[structure_clients]
        except KeyError:
            raise ValueError(f"structure_clients must be 'numpy', 'dask' or a mapping, not {structure_clients!r}") from None
    if isinstance(structure_clients, Mapping):
        return structure_clients
    raise TypeError(f"structure_clients must be 'numpy', 'dask' or a mapping, not {type(structure_clients).__name__}")


def check_structure_clients(structure_clients: Any) -> None:
    """Fail now, before any request, on a value ``resolve_structure_clients`` or a later lookup would refuse.

    A custom mapping's entries are loaded here (importing their modules), so
    a typo is not found only when the first node of that family is met.
    """
    table = resolve_structure_clients(structure_clients)
    if isinstance(structure_clients, str):
        return  # one of the built-in tables
    for name, target in table.items():
        where = f"structure_clients[{name!r}]"
        if not isinstance(name, str):
            raise TypeError(f"structure_clients keys are family or spec names (strings), not {name!r}")
        if isinstance(target, str):
            module, colon, attribute = target.partition(":")
            if not (module and colon and attribute):
                raise ValueError(f"{where} = {target!r}: expected 'package.module:ClassName'")
            try:
                target = _load(target)
            except (ImportError, AttributeError) as error:
                raise ValueError(f"{where} = {target!r} cannot be loaded: {error}") from None
        if not callable(target):
            raise TypeError(f"{where} must be a client class or 'package.module:ClassName', not {target!r}")


def node_item(document: Any, url: str) -> dict:
    """The node resource in a ``metadata/...`` reply; MalformedResponse when it is not one (not a Tiled server?)."""
    item = document.get("data") if isinstance(document, dict) else None
    if not (isinstance(item, dict) and isinstance(item.get("attributes"), dict) and isinstance(item.get("id"), str)):
        shown = repr(document)[:80]
        raise MalformedResponse(f"{url}: the reply is not a Tiled node document ({shown}); is a Tiled server there?")
    return item


def client_for_item(context, structure_clients: Any, item: dict, *, include_data_sources: bool = False, **extra):
    """Build the client object for one node resource."""
    from .base import BaseClient

    table = resolve_structure_clients(structure_clients)
    attributes = item["attributes"]
    for spec in attributes.get("specs") or []:
        name = spec["name"] if isinstance(spec, dict) else getattr(spec, "name", spec)
        if name in table:
            cls = _load(table[name])
            break
    else:
        family = attributes.get("structure_family")
        family = getattr(family, "value", family)
        cls = _load(table[family]) if family in table else BaseClient
    return cls(context, item=item, structure_clients=structure_clients, include_data_sources=include_data_sources, **extra)
