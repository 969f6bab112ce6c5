"""The node clients: the seed API under ``tiled_core.client``."""

from .constructors import from_context, from_profile, from_uri
from .context import Context

__all__ = ["from_uri", "from_profile", "from_context", "Context"]
