"""Where a copy's data jobs run: threads of this process, or Dask workers.

A runner takes a list of ``(source path, dest path, TRANSFERS key, unit)``
and returns a future of the bytes moved per unit. It also says how many jobs
may be in flight (``slots``) and how many units one job may carry (Dask tasks
cost scheduler time, so tiny units travel in batches there).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..distributed._transfers import TransferBatch, move, run_batch

__all__ = ["DaskRunner", "ThreadRunner"]

MiB = 1 << 20


class ThreadRunner:
    """Data jobs on a bounded thread pool of this process (one unit per job)."""

    batch_units = 1
    batch_bytes = 0

    def __init__(self, source_session, dest_session, concurrency: int) -> None:
        self.slots = concurrency
        self._source, self._dest = source_session, dest_session
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tiled-core-copy-data")

    def submit(self, items):
        return self._pool.submit(move, self._source, self._dest, items)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskRunner:
    """Data jobs as tasks on a ``distributed`` cluster: workers read the source and write the destination.

    The tasks carry session handles (credential *sources*, never keys), paths
    and unit descriptions; data never passes through this process.
    """

    batch_units = 32
    batch_bytes = 4 * MiB

    def __init__(self, dask_client, source_handle, dest_handle, concurrency: int | None) -> None:
        self._client = dask_client
        self._source, self._dest = source_handle, dest_handle
        threads = sum(dask_client.nthreads().values()) or 1
        self.slots = concurrency or 2 * threads  # keep every worker thread fed, not the scheduler flooded
        self._futures: set = set()

    def submit(self, items):
        batch = TransferBatch(self._source, self._dest, tuple(items))
        future = self._client.submit(run_batch, batch, pure=False)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def close(self) -> None:
        pending = [f for f in list(self._futures) if not f.done()]
        if pending:
            self._client.cancel(pending)
        self._futures.clear()
