"""BytesClient: a node of opaque bytes (the ``bytes`` family), downloaded with ``raw_export``."""

from __future__ import annotations

from .base import BaseClient

__all__ = ["BytesClient"]

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def _human(size: float) -> str:
    """``512 B``, ``1.5 KB``... (powers of 1024)."""
    unit = 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{int(size)} B" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


class BytesClient(BaseClient):
    """A ``bytes`` node: no structure and no read route of its own.

    Its files come down with ``raw_export(destination)`` (a directory or a
    mapping of ``io.BytesIO``). The repr shows the total size when the client
    carries its data sources (``include_data_sources()``); it sends no request.
    """

    def __repr__(self) -> str:
        sources = self._item["attributes"].get("data_sources") or []
        sizes = [asset.get("size") for source in sources for asset in source.get("assets") or []]
        name = type(self).__name__
        if not sizes:
            return f"<{name}>"
        plural = "s" if len(sizes) > 1 else ""
        if any(size is None for size in sizes):
            return f"<{name} {len(sizes)} asset{plural}>"
        return f"<{name} {_human(sum(sizes))} across {len(sizes)} asset{plural}>"

    def read(self, *args, **kwargs):
        """Bytes nodes cannot be read in place; use ``raw_export`` to download their files."""
        raise NotImplementedError(f"{self.path or '/'} is a bytes node: download it with raw_export(destination)")
