"""The bulk copy engine: ``copy(source, dest)`` between Tiled servers.

This layer sits above :mod:`tiled_core.client` (the node clients it reads and
writes) and :mod:`tiled_core.distributed` (the transfers Dask workers run).
``tiled_core.client.sync`` is its public face under the reference client's
name; both paths give the same objects.

- ``_copy``: ``copy()`` itself: argument checks, choosing a runner, the summary.
- ``_plan``: walks the source tree into nodes to create and transfers to run.
- ``_engine``: creates nodes in order and keeps a bounded number of transfers
  in flight; marks, resumes and finishes half-written nodes.
- ``_runners``: where transfers run: local threads or Dask workers.
- ``_progress``: ``CopyProgress``, ``CopySummary``, ``CopyError`` and the bar.
"""

from ._copy import ON_CONFLICT, CopyConflict, CopyError, CopyProgress, CopySummary, copy

__all__ = ["ON_CONFLICT", "CopyConflict", "CopyError", "CopyProgress", "CopySummary", "copy"]
