"""The HTTP response cache, ``tiled_core.client.cache.Cache`` (it lives in the transport layer)."""

from ..transport._cache import Cache, CachedResponse, CacheWarning, SerializableLock, ThreadingMode, with_thread_lock

__all__ = ["Cache", "CachedResponse", "CacheWarning", "SerializableLock", "ThreadingMode", "with_thread_lock"]
