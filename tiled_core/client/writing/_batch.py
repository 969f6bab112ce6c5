"""Many writes into one container, their requests overlapping: ``Container.batch()``.

A write is a create (one POST) followed by its data (one or more requests).
Done one after the other, each write waits for the server twice and the
server waits for the client in between. A batch keeps the server busy:

- creates run one at a time, in the order the writes were submitted, on a
  thread of their own, so children are created (and listed) in that order;
- each node's data goes as soon as its create is answered, over at most
  ``concurrency`` requests at a time, while the next creates proceed;
- at most ``max_pending`` writes are queued or in flight: a submit blocks
  beyond that, so a loop producing data never holds more than that in memory.

Each write keeps its own guarantees (``on_conflict``, the incomplete state of
a node until its last byte is stored). Arguments are checked when a write is
submitted, before any request. The first failure stops the batch: writes not
yet created are dropped, those in flight finish, and the error is raised from
the ``with`` block (or from the next submit), saying how many writes were
stored. A rerun with ``on_conflict="skip"`` keeps what was stored and
finishes the rest.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._conflict import WriteTarget, finish_write

__all__ = ["PendingWrite", "WriteBatch"]


@dataclasses.dataclass(frozen=True)
class PendingWrite:
    """A checked write, not sent yet: ``create`` makes (or resolves) the node, ``upload`` fills it."""

    create: Callable[[], WriteTarget]
    upload: Callable[[Any], None]

    def run(self):
        """Create, upload and finish, in this thread; the node's client."""
        target = self.create()
        if target.needs_upload:
            self.upload(target.client)
            finish_write(target.client)
        return target.client


class WriteBatch:
    """Writes into ``container`` whose requests overlap; see the module docstring.

    Use as a context manager::

        with container.batch() as batch:
            for i, frame in enumerate(frames):
                batch.write_array(frame, key=f"frame{i:05d}", metadata={"index": i})
        nodes = batch.results()          # the clients, in submission order

    ``write_array`` and ``write_table`` take the arguments of the container's
    methods of the same names and return a ``concurrent.futures.Future`` of
    the node's client.
    """

    def __init__(self, container, *, concurrency: int | None = None, max_pending: int | None = None) -> None:
        session = container.context.session
        self._container = container
        self._concurrency = max(1, concurrency or session.limits.concurrency)
        self._slots = threading.BoundedSemaphore(max(self._concurrency, max_pending or 4 * self._concurrency))
        self._creates = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiled-core-batch-create")
        self._uploads = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="tiled-core-batch-data")
        self._futures: list[Future] = []
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<WriteBatch into {self._container.path or '/'}: {len(self._futures)} writes>"

    # -- submitting ------------------------------------------------------------
    def write_array(self, array, **kwargs) -> Future:
        """Queue ``container.write_array(array, **kwargs)``; checked now, sent in order."""
        return self._submit(self._container._prepare_array(array, **kwargs), kwargs.get("key"))

    def write_table(self, data, **kwargs) -> Future:
        """Queue ``container.write_table(data, **kwargs)``; checked now, sent in order."""
        return self._submit(self._container._prepare_table(data, **kwargs), kwargs.get("key"))

    def _claim(self, key: str | None) -> None:
        # Two writes of one key would race (the second create meets the first node half-written).
        if key is None:
            return
        if key in self._keys:
            raise ValueError(f"key {key!r} is written twice in this batch; each write needs a key of its own")
        self._keys.add(key)

    def _submit(self, pending: PendingWrite, key: str | None) -> Future:
        if self._closed:
            raise RuntimeError("this batch is finished; start a new one with container.batch()")
        if self._error is not None:
            self.wait()  # let what is in flight finish, then raise the failure with its count
            raise RuntimeError("this batch stopped at an earlier failure; rerun it with on_conflict='skip'")
        self._claim(key)
        self._slots.acquire()  # back-pressure: a bounded number of writes queued or in flight
        done: Future = Future()
        self._futures.append(done)
        self._creates.submit(self._create, pending, done)
        return done

    def _create(self, pending: PendingWrite, done: Future) -> None:
        if self._error is not None:
            self._settle(done, error=None)  # dropped: an earlier write failed
            return
        try:
            target = pending.create()
        except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
            self._settle(done, error=error)
            return
        if not target.needs_upload:
            self._settle(done, value=target.client)
            return
        self._uploads.submit(self._upload, pending, target, done)

    def _upload(self, pending: PendingWrite, target: WriteTarget, done: Future) -> None:
        try:
            pending.upload(target.client)
            finish_write(target.client)
        except BaseException as error:  # noqa: BLE001
            self._settle(done, error=error)
            return
        self._settle(done, value=target.client)

    def _settle(self, done: Future, *, value: Any = None, error: BaseException | None = None) -> None:
        if error is not None:
            with self._lock:
                if self._error is None:
                    self._error = error
            done.set_exception(error)
        elif value is None and self._error is not None:
            done.cancel()
            done.set_running_or_notify_cancel()
        else:
            done.set_result(value)
        self._slots.release()

    # -- finishing -------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        error = self._error
        if error is None:
            return
        stored = sum(1 for f in self._futures if f.done() and not f.cancelled() and f.exception() is None)
        error.add_note(f"in a batch of writes into {self._container.path or '/'}: {stored} of "
                       f"{len(self._futures)} submitted were stored; the rest were not created, or were left "
                       "incomplete. Rerun the same writes with on_conflict='skip' to finish them")
        self._error = _Reported(error)
        raise error

    def wait(self) -> None:
        """Wait for every submitted write; raise the first failure (once)."""
        self._creates.shutdown(wait=True)
        self._uploads.shutdown(wait=True)
        self._closed = True
        if not isinstance(self._error, _Reported):
            self._raise_if_failed()

    def results(self) -> list:
        """The written nodes' clients, in submission order (after the batch has finished)."""
        if not self._closed:
            raise RuntimeError("the batch is still running; call results() after its with block (or wait())")
        if self._error is not None:
            raise RuntimeError("the batch failed (its error was raised from the with block); "
                               "rerun it with on_conflict='skip'")
        return [future.result() for future in self._futures]

    def __enter__(self) -> "WriteBatch":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:  # stop creating; the caller's error is the one raised
            if self._error is not None and not isinstance(self._error, _Reported):
                exc.add_note(f"a write of the batch had failed too: {self._error!r}")
            self._error = _Reported(self._error or exc)
        self.wait()


class _Reported(Exception):
    """Stands for a failure already raised to the caller, so it is raised only once."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
