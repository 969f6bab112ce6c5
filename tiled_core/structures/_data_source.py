"""Data sources and assets: where a node's data lives (the reference client's dataclasses)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

__all__ = ["Asset", "DataSource", "Management", "data_source_to_json"]


class Management(str, enum.Enum):
    """Who owns a data source's files: the server (``writable``...) or someone else (``external``)."""

    external = "external"
    immutable = "immutable"
    locked = "locked"
    writable = "writable"


def _known(cls, data: Mapping[str, Any]) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclasses.dataclass
class Asset:
    """One file or directory backing a data source.

    ``parameter`` names the argument of the server's reader the file is passed
    as (``"data_uri"``, or ``"data_uris"`` with ``num`` giving the order);
    ``None`` marks a file the reader does not open itself (e.g. the parts of an
    HDF5 virtual dataset), tracked for data movement only.
    """

    data_uri: str
    is_directory: bool
    parameter: str | None
    num: int | None = None
    id: int | None = None
    size: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Asset":
        return cls(**_known(cls, data))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class DataSource:
    """How a node's data is stored: family, structure, mimetype, reader parameters, assets, management.

    ``structure`` is the structure JSON (a dict) as the server sends it, or a
    structure object (anything with ``to_json()`` or a dataclass) when building one.
    """

    structure_family: str
    structure: Any
    id: int | None = None
    mimetype: str | None = None
    parameters: dict = dataclasses.field(default_factory=dict)
    properties: dict = dataclasses.field(default_factory=dict)
    assets: list[Asset] = dataclasses.field(default_factory=list)
    management: Management = Management.writable

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "DataSource":
        fields = _known(cls, data)
        fields["assets"] = [Asset.from_json(a) for a in data.get("assets") or []]
        if fields.get("management") is not None:
            fields["management"] = Management(fields["management"])
        return cls(**fields)

    def to_json(self) -> dict:
        return data_source_to_json(self)


def _plain(value: Any) -> Any:
    """JSON-ready copy of a structure or parameter value (our dataclasses, the reference's, enums)."""
    if hasattr(value, "to_json") and not isinstance(value, type):
        return _plain(value.to_json())
    if hasattr(value, "model_dump") and not isinstance(value, type):  # a pydantic model
        return _plain(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def data_source_to_json(source: Any) -> dict:
    """The wire form of a data source given as our ``DataSource``, the reference's, a pydantic model or a dict.

    Raises TypeError for anything else, and ValueError for a source without a
    structure family or with assets that are not files/directories with a URI.
    """
    if isinstance(source, DataSource):
        raw = {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
    elif isinstance(source, Mapping):
        raw = dict(source)
    elif dataclasses.is_dataclass(source) and not isinstance(source, type):
        raw = {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
    elif hasattr(source, "model_dump"):
        raw = source.model_dump()
    else:
        raise TypeError(f"a data source is a DataSource or a dict, not {type(source).__name__}")
    if raw.get("structure_family") is None:
        raise ValueError(f"a data source needs a structure_family: {raw!r}")
    assets = []
    for asset in raw.get("assets") or []:
        asset = _plain(asset)
        if not isinstance(asset, dict) or not isinstance(asset.get("data_uri"), str):
            raise ValueError(f"an asset needs a data_uri string: {asset!r}")
        assets.append({"data_uri": asset["data_uri"], "is_directory": bool(asset.get("is_directory", False)),
                       "parameter": asset.get("parameter"), "num": asset.get("num"), "id": asset.get("id"),
                       "size": asset.get("size")})
    management = _plain(raw.get("management") or ("external" if assets else "writable"))
    return {
        "structure_family": _plain(raw["structure_family"]),
        "structure": _plain(raw.get("structure")),
        "id": raw.get("id"),
        "mimetype": raw.get("mimetype"),
        "parameters": _plain(dict(raw.get("parameters") or {})),
        "properties": _plain(dict(raw.get("properties") or {})),
        "assets": assets,
        "management": management,
    }
