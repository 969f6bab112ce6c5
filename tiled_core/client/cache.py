"""The HTTP response cache, ``tiled_core.client.cache.Cache`` (it lives in the transport layer)."""

import collections.abc
from typing import Any

from ..transport._cache import Cache, CachedResponse, CacheWarning, SerializableLock, ThreadingMode, with_thread_lock

__all__ = ["Cache", "CachedResponse", "CacheWarning", "SerializableLock", "ThreadingMode", "with_thread_lock"]


def coerce_cache(cache: Any, unset: Any = None) -> Cache | None:
    """None (or ``unset``) -> no cache; a mapping -> ``Cache(**mapping)`` (as profiles give it); a Cache as is."""
    if cache is None or cache is unset:
        return None
    if isinstance(cache, Cache):
        return cache
    if isinstance(cache, collections.abc.Mapping):
        return Cache(**cache)
    raise TypeError(f"cache must be a tiled_core.client.cache.Cache (or a mapping of its arguments), not {type(cache).__name__}")
