"""The HTTP response cache, ``tiled_core.client.cache.Cache`` (it lives in the transport layer)."""

from ..transport._cache import Cache, CacheWarning

__all__ = ["Cache", "CacheWarning"]
