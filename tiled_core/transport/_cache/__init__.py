"""The HTTP response cache: one SQLite file (WAL), shared by threads and processes.

Entries are keyed by a hash of method, URL (with query), ``Accept`` header and
the identity of the credential (the user behind a login, or a hash of the API
key), so answers for different formats or users never mix. Only ``200``
answers carrying an ``ETag`` are kept, and the session revalidates them
(``If-None-Match``); a ``304`` reuses the stored body. With ``max_age`` the
user allows entries validated less than that many seconds ago to be used
without asking. Bodies are stored and read as SQLite BLOBs in pieces,
straight from/into the caller's buffer, in a table of their own: updating an
entry's bookkeeping (last use) must not rewrite a body of hundreds of MiB.

A file that is corrupt, not ours, or locked for longer than the busy timeout
turns the cache off for this ``Cache`` object with a ``CacheWarning``: the
client keeps working, uncached. A damaged entry in a sound file (a body of
another length or checksum than stored with it, unreadable headers) is
dropped with a ``CacheWarning`` and fetched again, never served.

Layout (the public names show this package as their module):

- ``_keys.py``: who a request speaks for, and the hash that keys one response.
- ``_slot.py``: what the session uses for one GET (``CacheSlot``, ``CachedEntry``, ``storable``), and
  ``CachedResponse`` (an answer from the cache, as ``Cache.get`` and ``record_history()`` give it).
- ``_threads.py``: ``ThreadingMode`` (sqlite3's), ``SerializableLock``, ``with_thread_lock``.
- ``_schema.py``: the file's tables and their version; an old layout is replaced.
- ``_storage.py``: entries and their bodies (BLOBs in pieces, CRC-32), eviction.
- ``_store.py``: ``Cache`` (settings, connections, SQLite trouble -> ``CacheWarning``) and ``CacheWarning``.
"""

from ..._public import show_public_path
from ._keys import cache_key, identity_of
from ._slot import CachedEntry, CachedResponse, CacheSlot, storable
from ._store import Cache, CacheWarning
from ._threads import SerializableLock, ThreadingMode, with_thread_lock

__all__ = ["Cache", "CacheWarning", "CachedEntry", "CachedResponse", "CacheSlot", "SerializableLock", "ThreadingMode",
           "cache_key", "identity_of", "storable", "with_thread_lock"]

show_public_path(globals(), __all__)
