"""Prefect 3 integration for Tiled: a credentials block, tasks and Dask-backed flows.

- ``prefect_tiled.TiledCredentials``: the block (``prefect block register -m prefect_tiled``).
- ``prefect_tiled.tasks``: ``read_node``, ``write_node``, ``search_nodes`` (each with an async twin) and ``copy_nodes``.
- ``prefect_tiled.flows``: ``map_blocks_flow`` (imports prefect-dask, so it is not imported here).
- ``prefect_tiled.copy``: ``copy_nodes`` (the same task) and ``sync_copy_flow`` (over Dask workers), resumable.
- ``prefect_tiled.artifacts``: markdown summaries of writes.

Importing this package stays light (Prefect imports it through the
``prefect.collections`` entry point): no dask, pandas or distributed.
"""

from .credentials import TiledCredentials

__all__ = ["TiledCredentials"]
