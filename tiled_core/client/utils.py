"""Helpers under the reference client's ``tiled.client.utils`` names.

- ``ClientError``: the error for a 4xx answer (``tiled_core.transport.ClientError``).
- ``get_asset_filepaths(node)``: local paths of the files backing a node.
"""

from __future__ import annotations

from pathlib import Path

from ..transport import ClientError
from .registering._uris import path_from_uri

__all__ = ["ClientError", "get_asset_filepaths"]


def get_asset_filepaths(node) -> list[Path]:
    """The local paths of the files (or directories) backing ``node``'s data sources.

    One request unless ``node`` already carries its data sources. Raises
    ValueError for an asset that is not a ``file://`` URI.
    """
    return [path_from_uri(asset.data_uri) for source in node.data_sources() or [] for asset in source.assets]
