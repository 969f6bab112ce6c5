"""Threads and the cache: SQLite's threading mode, a lock that survives pickling, ``with_thread_lock``.

Each ``Cache`` hands every thread its own SQLite connection (one at a time
from a small pool), which is safe whenever the sqlite3 module may be used from
several threads at all: ``sqlite3.threadsafety`` 1 (multi-thread) or 3
(serialized). Built single-threaded (0), only the thread that made the
``Cache`` may write to it.
"""

from __future__ import annotations

import enum
import functools
import sqlite3
import threading
import uuid
import weakref

__all__ = ["SerializableLock", "ThreadingMode", "sqlite_allows_thread", "with_thread_lock"]


class ThreadingMode(enum.IntEnum):
    """The threading mode of the sqlite3 module (the values of ``sqlite3.threadsafety``)."""

    SINGLE_THREAD = 0
    MULTI_THREAD = 1
    SERIALIZED = 3


def sqlite_allows_thread(owner: int | None) -> bool:
    """Whether the current thread may use SQLite for a cache made by thread ``owner`` (read at each call)."""
    return sqlite3.threadsafety != ThreadingMode.SINGLE_THREAD or threading.get_ident() == owner


def with_thread_lock(fn):
    """Decorate a method so that calls on one object never run concurrently (it holds ``self._lock``)."""

    @functools.wraps(fn)
    def locked(obj, *args, **kwargs):
        with obj._lock:
            return fn(obj, *args, **kwargs)

    return locked


class _Box:
    """Holds one process's lock for a token; alive while any SerializableLock of that token is."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_BOXES: "weakref.WeakValueDictionary[str, _Box]" = weakref.WeakValueDictionary()
_BOXES_LOCK = threading.Lock()


class SerializableLock:
    """A ``threading.Lock`` that pickles as a token: copies unpickled in one process share one lock.

    ``lock`` is the underlying ``threading.Lock``; ``acquire``, ``release`` and
    ``with`` work as on it. In another process the token names a new lock.
    """

    __slots__ = ("token", "_box")

    def __init__(self, token: str | None = None) -> None:
        self.token = token or uuid.uuid4().hex
        with _BOXES_LOCK:
            box = _BOXES.get(self.token)
            if box is None:
                box = _BOXES[self.token] = _Box()
        self._box = box

    @property
    def lock(self) -> threading.Lock:
        return self._box.lock

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._box.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._box.lock.release()

    def locked(self) -> bool:
        return self._box.lock.locked()

    def __enter__(self) -> bool:
        return self._box.lock.acquire()

    def __exit__(self, *exc) -> None:
        self._box.lock.release()

    def __reduce__(self):
        return (SerializableLock, (self.token,))

    def __repr__(self) -> str:
        return f"<SerializableLock {self.token[:8]}{' locked' if self.locked() else ''}>"
