"""Copy nodes between Tiled servers: ``copy(source, dest)``, the reference client's ``tiled.client.sync``.

The engine lives in :mod:`tiled_core.copy`, a layer above the node clients;
this module only gives it the reference's path. Nothing else in
``tiled_core.client`` imports it, so the import does not run upwards at load time.
"""

from ..copy import ON_CONFLICT, CopyConflict, CopyError, CopyProgress, CopySummary, copy

__all__ = ["CopyConflict", "CopyError", "CopyProgress", "CopySummary", "copy"]
