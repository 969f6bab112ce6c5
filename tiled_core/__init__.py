"""tiled_core: a fast, dependable client for Tiled data servers."""

from ._version import __version__

__all__ = ["__version__"]
