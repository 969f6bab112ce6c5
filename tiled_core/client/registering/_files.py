"""``Container.register(*uris)``: one node described from one or several external files."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from ...structures import ArrayStructure, Asset, DataSource, Management, TableStructure, data_source_to_json
from ._inspectors import DEFAULT_INSPECTORS_BY_MIMETYPE
from ._mimetypes import DEFAULT_MIMETYPES_BY_FILE_EXT, IMG_SEQUENCE_MIMETYPES, mimetype_from_extension
from ._uris import ensure_uri, path_from_uri, stat_uri

__all__ = ["describe_files", "mimetype_for_uris", "structure_json"]

_STRUCTURES = {"array": ArrayStructure, "table": TableStructure}


def mimetype_for_uris(uris: list[str], by_extension: Mapping[str, str] | None = None) -> str:
    """One mimetype for all ``uris``, from their extensions; several image files give the sequence mimetype.

    Raises ValueError when the extensions disagree or none is known.
    """
    by_extension = by_extension or DEFAULT_MIMETYPES_BY_FILE_EXT
    paths = [path_from_uri(uri) for uri in uris]
    found = {mimetype_from_extension(p, by_extension) for p in paths}
    if len(found) > 1:
        raise ValueError(f"the files have different types ({sorted(m or 'unknown' for m in found)}); "
                         "pass mimetype=... to say which reader to use")
    (mimetype,) = found
    if mimetype is None:
        raise ValueError(f"no known file type for {paths[0].name!r}; pass mimetype=...")
    if len(uris) > 1:
        suffixes = paths[0].suffixes
        if suffixes and suffixes[-1] in IMG_SEQUENCE_MIMETYPES:
            mimetype = IMG_SEQUENCE_MIMETYPES[suffixes[-1]]
    return mimetype


def structure_json(structure: Any) -> Any:
    """The JSON form of a structure given as ours, the reference's (a dataclass) or a dict."""
    from ...structures._data_source import _plain

    return _plain(structure)


def _typed(family: str, structure: Any):
    model = _STRUCTURES.get(family)
    if model is None or structure is None:
        return structure
    if isinstance(structure, model):
        return structure
    return model.from_json(structure_json(structure))


def _compatible(family: str, wanted, have) -> bool:
    """Whether data laid out as ``have`` can be served as ``wanted`` (same dtype and size; same column types)."""
    if family == "array":
        return wanted.dtype == have.dtype and math.prod(wanted.shape) == math.prod(have.shape)
    if family == "table":
        from ...codecs.table import decode_schema

        ours, theirs = decode_schema(wanted.arrow_schema), decode_schema(have.arrow_schema)
        return len(ours.names) == len(theirs.names) and ours.types == theirs.types
    return True


def describe_files(
    uris: tuple,
    *,
    structure: Any = None,
    mimetype: str | None = None,
    parameters: dict | None = None,
    inspectors: Mapping[str, Any] | None = None,
) -> tuple[str, dict, dict, list]:
    """``(structure_family, data_source_json, metadata, specs)`` for registering ``uris`` as one node.

    Everything is checked here, before any request: no files, an unknown
    type, or a ``structure`` the files cannot be served as raise ValueError.
    """
    if not uris:
        raise ValueError("give at least one file path or URI to register")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a mapping, not {type(parameters).__name__}")
    uris = [ensure_uri(u) for u in uris]
    mimetype = mimetype or mimetype_for_uris(uris)
    table = inspectors if inspectors is not None else DEFAULT_INSPECTORS_BY_MIMETYPE
    try:
        inspector_class = table[mimetype]
    except KeyError:
        raise ValueError(f"tiled_core cannot describe files of type {mimetype!r}; known: {sorted(table)}") from None
    parameters = dict(parameters or {})
    for uri in uris:
        path = path_from_uri(uri)
        if not os.path.exists(path):
            raise ValueError(f"{path} does not exist")
    inspector = inspector_class.from_uris(*uris, **parameters)
    family = getattr(inspector.structure_family, "value", inspector.structure_family)
    inferred = _typed(family, inspector.structure())
    properties: dict = {}
    if structure is not None:
        wanted = _typed(family, structure)
        if inferred is not None and not _compatible(family, wanted, inferred):
            raise ValueError(f"the given structure is not compatible with the file(s): given {wanted!r}, "
                             f"the file(s) hold {inferred!r}")
        if family == "array" and wanted.chunks != inferred.chunks:
            # The server must still know how the files themselves are chunked.
            properties["chunks"] = [list(c) for c in inferred.chunks]
        chosen = wanted
    else:
        chosen = inferred
    if len(uris) > 1:
        assets = []
        for number, uri in enumerate(uris):
            is_directory, size = stat_uri(uri)
            assets.append(Asset(data_uri=uri, is_directory=is_directory, parameter="data_uris", num=number, size=size))
    else:
        is_directory, size = stat_uri(uris[0])
        if hasattr(inspector, "generate_data_sources"):
            generated = inspector.generate_data_sources(mimetype, uris[0], is_directory=is_directory, size=size,
                                                        parameters=parameters)
            assets = list(generated[0].assets)
        else:
            assets = [Asset(data_uri=uris[0], is_directory=is_directory, parameter="data_uri", size=size)]
    source = DataSource(structure_family=family, structure=chosen, mimetype=mimetype, parameters=parameters,
                        properties=properties, assets=assets, management=Management.external)
    metadata = dict(inspector.metadata() or {})
    return family, data_source_to_json(source), metadata, list(getattr(inspector, "specs", []) or [])
