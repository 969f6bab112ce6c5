"""Dagster integration for Tiled: resources, an IO manager, a sensor, asset checks and search.

- ``TiledResource``: a configured connection (API key as ``EnvVar``), one client per run.
- ``TiledIOManager``: asset values as Tiled nodes (arrays, tables, xarray, awkward, sparse; partitions).
- ``DaskResource``: a ``distributed.Client`` for the run.
- ``tiled_sensor``: one run per new entry of a container.
- ``tiled_asset_check``: the node exists and has the expected structure.
- ``search_paths``: paths of the nodes matching queries.
- ``tiled_copy_asset`` / ``tiled_copy_op``: a resumable copy between two ``TiledResource``s.
"""

from .checks import node_problems, tiled_asset_check
from .copy import TiledCopy, tiled_copy_asset, tiled_copy_op
from .dask_resource import DaskResource
from .io_manager import TiledIOManager, storage_parts
from .resource import TiledResource
from .search import search_paths
from .sensor import tiled_sensor

__all__ = [
    "TiledResource", "TiledIOManager", "DaskResource", "tiled_sensor", "tiled_asset_check",
    "node_problems", "search_paths", "storage_parts", "TiledCopy", "tiled_copy_asset", "tiled_copy_op",
]
