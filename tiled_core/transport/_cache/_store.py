"""``Cache``: settings, SQLite connections shared by threads (fork-aware), and its operations.

SQLite trouble (a corrupt, foreign or locked file) turns this ``Cache`` off with
a ``CacheWarning``; a damaged entry is dropped and fetched again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx

from .._tokens import cache_directory, private_directory
from ._keys import request_key
from ._schema import Unusable, prepare_schema
from ._slot import CachedEntry
from ._storage import Damaged, insert_entry, make_room, read_blob, remove_entries
from ._threads import SerializableLock, sqlite_allows_thread

__all__ = ["Cache", "CacheWarning"]

DEFAULT_CAPACITY = 500_000_000
DEFAULT_MAX_ITEM_SIZE = 500_000
_BUSY_TIMEOUT = 10.0  # seconds to wait for another writer before giving up
_MAX_IDLE_CONNECTIONS = 8
# Not kept: hop-by-hop and framing headers (the body is stored decoded), and cookies.
_DROPPED_HEADERS = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "set-cookie",
    "date", "server-timing", "x-tiled-request-id",
})


class CacheWarning(UserWarning):
    """The response cache could not be used (corrupt, foreign or locked file); the client goes on uncached."""


def _create_private(filepath: Path) -> None:
    """Create the file (mode 0600, in a 0700 directory if that is new) unless it exists.

    Bodies can be private data; SQLite gives its -wal and -shm files the database file's mode.
    """
    private_directory(filepath.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(filepath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _default_filepath() -> Path:
    return cache_directory() / "tiled_core_http_response_cache.db"


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of bytes, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return int(value)


class Cache:
    """An SQLite-backed HTTP response cache, safe for several threads and processes at once.

    Arguments:
        filepath: the SQLite file (created if missing). Default:
            ``$TILED_CACHE_DIR`` or the user's cache directory, file
            ``tiled_core_http_response_cache.db``.
        capacity: most bytes of response bodies kept; the least recently used
            entries are evicted to make room.
        max_item_size: larger bodies are not stored (must be below ``capacity``
            here; either may be changed later, and a body larger than either
            is then not stored).
        readonly: read entries but never write (the file is opened read-only).
        allow_offline: when the server cannot be reached, answer reads from
            stored entries (validated by ETag when they were stored) instead of
            failing; a warning says so once per ``Cache``.
        max_age: seconds during which an entry, once stored or confirmed by
            the server, is used without asking again. Default None: every use
            is revalidated (one request, answered 304 with no body). Set it
            for data known not to change meanwhile; changes made on the server
            within that window are not seen.

    Raises ValueError/TypeError for bad sizes. A corrupt, foreign or locked file
    gives a ``CacheWarning`` and a cache that stores nothing.

    Threads: each thread uses its own SQLite connection, so any thread may
    read and write, unless the sqlite3 module is built single-threaded
    (``sqlite3.threadsafety == ThreadingMode.SINGLE_THREAD``): then only the
    thread that made the ``Cache`` writes (``write_safe()``; ``clear``, ``set``
    and ``delete`` raise RuntimeError elsewhere, and responses are not stored).
    A pickle carries the settings only; unpickled, it opens the same file.
    """

    def __init__(
        self,
        filepath: str | os.PathLike | None = None,
        capacity: int = DEFAULT_CAPACITY,
        max_item_size: int = DEFAULT_MAX_ITEM_SIZE,
        readonly: bool = False,
        *,
        allow_offline: bool = False,
        max_age: float | None = None,
        _lock_token: str | None = None,
    ) -> None:
        capacity = _check_size("capacity", capacity)
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or max_age < 0):
            raise ValueError(f"max_age must be a number of seconds >= 0 or None, not {max_age!r}")
        max_item_size = _check_size("max_item_size", max_item_size)
        if capacity <= max_item_size:
            raise ValueError(f"capacity ({capacity}) must be greater than max_item_size ({max_item_size})")
        self._filepath = Path(filepath) if filepath is not None else _default_filepath()
        self._capacity = capacity
        self._max_item_size = max_item_size
        self._readonly = bool(readonly)
        self._allow_offline = bool(allow_offline)
        self._max_age = None if max_age is None else float(max_age)
        self._busy_timeout = _BUSY_TIMEOUT
        # Guards the pool; copies unpickled in this process share it (``_lock.lock``).
        self._lock = SerializableLock(_lock_token)
        self._owner = threading.get_ident()
        self._own_conn: sqlite3.Connection | None = None
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._disabled: str | None = None
        self._warned_offline = False
        self._warned_damage = False
        try:
            self._prepare()
        except (sqlite3.Error, OSError, Unusable) as exc:
            self._disable(f"cannot use {self._filepath}: {exc}")

    # -- settings ------------------------------------------------------------
    @property
    def filepath(self) -> Path:
        """Filepath of SQLite database storing cache data."""
        return self._filepath

    @property
    def capacity(self) -> int:
        """Max capacity in bytes (response bodies only)."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        # Takes effect as entries are stored (the least recently used go first); no check against
        # max_item_size, as the reference client allows (a body larger than either is not stored).
        self._capacity = _check_size("capacity", value)

    @property
    def max_item_size(self) -> int:
        """Max size of a response body eligible for caching."""
        return self._max_item_size

    @max_item_size.setter
    def max_item_size(self, value: int) -> None:
        self._max_item_size = _check_size("max_item_size", value)

    @property
    def readonly(self) -> bool:
        """If True, cache be read but not updated."""
        return self._readonly

    @property
    def allow_offline(self) -> bool:
        """If True, stored entries answer reads while the server is unreachable."""
        return self._allow_offline

    @property
    def max_age(self) -> float | None:
        """Seconds an entry is used without revalidation after the server last confirmed it (None: always ask)."""
        return self._max_age

    @property
    def usable(self) -> bool:
        """False once the file proved corrupt, foreign or locked (see ``CacheWarning``)."""
        return self._disabled is None

    def write_safe(self) -> bool:
        """Check that it is safe to write from this thread: not read-only, not disabled, and SQLite
        usable from this thread (always, unless sqlite3 is built single-threaded; see the class)."""
        return not self._readonly and self._disabled is None and sqlite_allows_thread(self._owner)

    def _check_writable(self, what: str) -> None:
        if self._readonly:
            raise RuntimeError(f"Cannot {what} a read-only cache")
        if not sqlite_allows_thread(self._owner):
            raise RuntimeError(f"Cannot {what} the cache from a different thread than the one it was created on: "
                               "this sqlite3 module is built single-threaded (sqlite3.threadsafety == 0)")

    def __repr__(self) -> str:
        state = "" if self._disabled is None else " disabled"
        return f"<Cache {str(self._filepath)!r}{' readonly' if self._readonly else ''}{state}>"

    def __reduce__(self):
        # Only settings travel (e.g. to Dask workers); each process opens the file itself.
        return (_rebuild, (str(self._filepath), self._capacity, self._max_item_size, self._readonly,
                           self._allow_offline, self._max_age, self._lock.token))

    # -- connections -----------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._readonly:
            uri = f"{self._filepath.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        else:
            _create_private(self._filepath)
            conn = sqlite3.connect(self._filepath, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable enough for a cache, no fsync per commit
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        """A connection of this process to the file (read-only for a read-only cache), kept until ``close()``."""
        with self._lock:
            self._after_fork()
            conn = self._own_conn
        if conn is None:
            conn = self._connect()
            with self._lock:
                self._after_fork()
                if self._own_conn is None:
                    self._own_conn = conn
                else:
                    conn.close()
                    conn = self._own_conn
        return conn

    def _after_fork(self) -> None:
        """Forget the parent's connections in a forked child: they are not ours to use (under ``_lock``)."""
        if self._pid != os.getpid():
            self._idle, self._own_conn, self._pid = [], None, os.getpid()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._after_fork()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            conn.close()  # its state is unknown (e.g. mid-transaction)
            raise
        with self._lock:
            if len(self._idle) < _MAX_IDLE_CONNECTIONS and self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.close()

    def _prepare(self) -> None:
        if self._readonly and not self._filepath.exists():
            raise Unusable("the file does not exist and the cache is read-only")
        with self._connection() as conn:
            prepare_schema(conn, self._readonly)

    def _disable(self, reason: str, stacklevel: int = 3) -> None:
        if self._disabled is None:
            self._disabled = reason
            warnings.warn(f"response cache disabled, continuing without it: {reason}", CacheWarning,
                          stacklevel=stacklevel)
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn SQLite trouble into a warning and a disabled cache."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                self._disable(f"{self._filepath} stayed locked for over {self._busy_timeout:g}s while {what}", 4)
            else:
                self._disable(f"{what} in {self._filepath} failed: {exc}", 4)
        except sqlite3.DatabaseError as exc:
            self._disable(f"{self._filepath} is damaged ({exc}) while {what}", 4)

    # -- used by the transport -----------------------------------------------
    def lookup(self, key: str) -> CachedEntry | None:
        """The stored entry for ``key`` (without its body), or None."""
        if self._disabled is not None:
            return None
        with self._guard("looking up an entry"), self._connection() as conn:
            row = conn.execute(
                "SELECT etag, status_code, headers, size, time_validated FROM responses WHERE cache_key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            etag, status, headers, size, validated_at = row
            try:
                pairs = tuple((str(name), str(value)) for name, value in json.loads(headers))
            except (ValueError, TypeError) as exc:
                self._drop_damaged(key, f"unreadable headers ({exc})")
                return None
            return CachedEntry(key, etag, status, pairs, size, validated_at)
        return None

    def read_body(self, entry: CachedEntry, out: memoryview | None = None, *, validated: bool = False):
        """The body stored for ``entry`` if it is still that version (same ETag).

        With ``out``, fill it instead (its length must match) and return True;
        None (False with ``out``) when the entry has changed or gone, e.g.
        replaced by another process. ``validated``: the server has just
        confirmed this version (restarts its ``max_age``).
        """
        missing = None if out is None else False
        if self._disabled is not None:
            return missing
        result = missing
        with self._guard("reading an entry"), self._connection() as conn:
            conn.execute("BEGIN")  # one snapshot: the ETag checked is the body read
            try:
                row = conn.execute(
                    "SELECT body_id, size, checksum FROM responses WHERE cache_key = ? AND etag = ?",
                    (entry.key, entry.etag),
                ).fetchone()
                if row is not None and (out is None or row[1] == len(out)):
                    result = read_blob(conn, *row, out)
            except Damaged as exc:
                damage = str(exc)
            else:
                damage = None
            finally:
                conn.execute("COMMIT")
            if damage is not None:
                self._drop_damaged(entry.key, damage)
                return missing
            if result is not missing:
                self._touch(conn, entry.key, validated)
        return result

    def _drop_damaged(self, key: str, reason: str) -> None:
        """Forget one damaged entry (the caller fetches it again), saying so once per Cache."""
        if not self._warned_damage:
            self._warned_damage = True
            warnings.warn(f"response cache {self._filepath}: dropped a damaged entry ({reason}); "
                          "fetching it from the server again", CacheWarning, stacklevel=5)
        if self._readonly:
            return
        with self._guard("dropping a damaged entry"), self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            remove_entries(conn, [key])
            conn.execute("COMMIT")

    def _touch(self, conn: sqlite3.Connection, key: str, validated: bool) -> None:
        if self._readonly:
            return
        now = time.time()
        try:
            if validated:
                conn.execute("UPDATE responses SET time_last_accessed = ?, time_validated = ? WHERE cache_key = ?",
                             (now, now, key))
            else:
                conn.execute("UPDATE responses SET time_last_accessed = ? WHERE cache_key = ?", (now, key))
        except sqlite3.OperationalError:
            pass  # busy: the recency of one entry is not worth waiting for

    def store(self, key: str, status: int, headers, body: bytes | memoryview) -> bool:
        """Keep a body (evicting least recently used entries to fit); False if not stored."""
        if not self.write_safe():
            return False
        view = memoryview(body).cast("B") if not isinstance(body, bytes) else memoryview(body)
        size = view.nbytes
        if size > self._max_item_size or size > self._capacity:
            return False
        pairs = [(k, v) for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS]
        etag = headers.get("etag", "")
        now = time.time()
        stored = False
        with self._guard("storing an entry"), self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                remove_entries(conn, [key])
                make_room(conn, size, self._capacity)
                insert_entry(conn, key, etag, status, pairs, view, now)
                conn.execute("COMMIT")
                stored = True
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        return stored

    def note_offline(self) -> None:
        if not self._warned_offline:
            self._warned_offline = True
            warnings.warn(
                f"the server is unreachable; answering from the response cache {self._filepath} "
                "(allow_offline=True): data may be out of date", CacheWarning, stacklevel=4,
            )

    # -- the reference client's API --------------------------------------------
    def get(self, request: httpx.Request) -> httpx.Response | None:
        """Get cached response from Cache: a ``CachedResponse``, or None if absent."""
        entry = self.lookup(request_key(request))
        if entry is None:
            return None
        body = self.read_body(entry)
        if body is None:
            return None
        return entry.response(request, body)

    def set(self, *, request: httpx.Request, response: httpx.Response, content: bytes | None = None) -> bool:
        """Set new response entry in cache; False if declined (too large, or the cache is disabled).

        ``content`` is the body when ``response`` has not been read. Raises
        RuntimeError on a read-only cache, or from another thread (see the class).
        """
        self._check_writable("write to")
        body = content if content is not None else response.content
        return self.store(request_key(request), response.status_code, response.headers, body)

    def delete(self, request: httpx.Request) -> None:
        """Delete an entry from cache. Raises RuntimeError on a read-only cache, or from another thread."""
        self._check_writable("delete from")
        if self._disabled is not None:
            return
        with self._guard("deleting an entry"), self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            remove_entries(conn, [request_key(request)])
            conn.execute("COMMIT")

    def clear(self) -> None:
        """Drop all entries from HTTP response cache.

        Raises RuntimeError on a read-only cache, or from another thread (see the class).
        """
        self._check_writable("clear")
        if self._disabled is not None:
            return
        with self._guard("clearing"), self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM responses")
            conn.execute("DELETE FROM bodies")
            conn.execute("COMMIT")

    def size(self) -> int:
        """Size of response bodies in bytes (does not count headers and other auxiliary info)."""
        return int(self._scalar("measuring", "SELECT COALESCE(SUM(size), 0) FROM responses"))

    def count(self) -> int:
        """Number of responses cached."""
        return int(self._scalar("counting", "SELECT COUNT(*) FROM responses"))

    def close(self) -> None:
        """Close cache (its connections; the file stays). A later use reopens them."""
        with self._lock:
            idle, self._idle = self._idle, []
            if self._own_conn is not None and self._pid == os.getpid():
                idle.append(self._own_conn)
            self._own_conn = None
        for conn in idle:
            conn.close()

    def _scalar(self, what: str, sql: str):
        if self._disabled is not None:
            return 0
        with self._guard(what), self._connection() as conn:
            return conn.execute(sql).fetchone()[0]
        return 0


def _rebuild(filepath, capacity, max_item_size, readonly, allow_offline, max_age, lock_token=None) -> Cache:
    if capacity <= max_item_size:  # changed after construction: rebuild with the constructor's rule, then set
        cache = Cache(filepath, max_item_size + 1, max_item_size, readonly, allow_offline=allow_offline,
                      max_age=max_age, _lock_token=lock_token)
        cache.capacity = capacity
        return cache
    return Cache(filepath, capacity, max_item_size, readonly, allow_offline=allow_offline, max_age=max_age,
                 _lock_token=lock_token)
