"""Parallel downloads of URLs to files or to a mapping, with a progress bar: the reference's ``tiled.client.download``.

``download(client, urls, targets)`` fetches each URL with an httpx client
(usually ``context.http_client``) and writes its body to the target path (or
to an ``io.BytesIO`` under the target key of ``mapping``). ``raw_export``
downloads a node's files the same way, through the session's retries.

Progress: a ``rich`` bar per file (when rich is installed; drawn only when
stderr is a terminal), its total seeded from the size the caller knows, since
a compressed, streamed response has no ``Content-Length``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from httpx._decoders import SUPPORTED_DECODERS

from .utils import handle_error

__all__ = ["ATTACHMENT_FILENAME_PLACEHOLDER", "STREAMING_ACCEPT_ENCODING", "download", "progress_tasks"]

# Accept-Encoding for downloads with compression: every coding httpx decodes as the body arrives.
# blosc2 is left out: a blosc2 body decodes only chunk by chunk at the server's chunk size, and the
# bar would stall. With compression off, "identity" is sent (and the server gives a Content-Length).
STREAMING_ACCEPT_ENCODING = ", ".join(name for name in SUPPORTED_DECODERS if name != "blosc2")

# A target whose file name (or key) contains this is named after the server's Content-Disposition.
ATTACHMENT_FILENAME_PLACEHOLDER = "CONTENT_DISPOSITION_HEADER_ATTACHMENT_FILENAME"
_DISPOSITION = re.compile(r'^attachment; ?filename="(.*)"$')


class _Tasks:
    """One progress task per download, on a rich ``Progress`` (a no-op without rich)."""

    def __init__(self, progress) -> None:
        self._progress = progress

    def add(self, description: str, total: int | None):
        if self._progress is None:
            return None
        return self._progress.add_task(description, start=False, total=total)

    def started(self, task, content_length: str | None) -> None:
        if self._progress is None:
            return
        if content_length is not None:
            self._progress.update(task, total=int(content_length))
        self._progress.start_task(task)

    def advance(self, task, nbytes: int) -> None:
        if self._progress is not None:
            self._progress.update(task, advance=nbytes)


@contextlib.contextmanager
def progress_tasks() -> Iterator[_Tasks]:
    """A context giving :class:`_Tasks` over one rich progress display (hidden unless stderr is a terminal)."""
    try:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        yield _Tasks(None)
        return
    progress = Progress(BarColumn(bar_width=None), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                        disable=not sys.stderr.isatty())
    with progress:
        yield _Tasks(progress)


def _resolve(target, disposition: str | None):
    text = target.name if isinstance(target, Path) else str(target)
    if ATTACHMENT_FILENAME_PLACEHOLDER not in text:
        return target
    match = _DISPOSITION.match(disposition or "")
    if match is None:
        raise ValueError(f"the server sent no attachment file name to put in {target!r}")
    name = os.path.basename(match.group(1))  # never a path of the server's choosing
    if isinstance(target, Path):
        return target.with_name(text.replace(ATTACHMENT_FILENAME_PLACEHOLDER, name))
    return text.replace(ATTACHMENT_FILENAME_PLACEHOLDER, name)


def write_chunks(chunks, target, mapping: MutableMapping | None, lock: threading.Lock | None, on_chunk) -> Any:
    """Write ``chunks`` to the path ``target`` (via a ``.partial`` file, renamed when complete), or store
    them as an ``io.BytesIO`` under ``mapping[target]``. ``on_chunk(n)`` follows the bytes. Returns ``target``."""
    if mapping is not None:
        buffer = io.BytesIO()
        for chunk in chunks:
            buffer.write(chunk)
            on_chunk(len(chunk))
        buffer.seek(0)
        with lock:
            mapping[target] = buffer
        return target
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with open(partial, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
                on_chunk(len(chunk))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target


def download(client, urls: Sequence[str], targets: Sequence, *, mapping: MutableMapping | None = None,
             max_workers: int = 4, totals: Sequence[int | None] | None = None,
             accept_encoding: str | None = None) -> list:
    """Download ``urls`` in parallel with the httpx ``client``; return the targets written, in order.

    Arguments:
        targets: one per URL: file paths, or (with ``mapping``) keys that receive an
            ``io.BytesIO`` each. A target holding ``ATTACHMENT_FILENAME_PLACEHOLDER`` is
            named after the file name the server gives (``Content-Disposition``).
        totals: one expected size per URL (None where unknown), for the progress bars.
        accept_encoding: the ``Accept-Encoding`` to send (``STREAMING_ACCEPT_ENCODING``,
            or ``"identity"`` for none); default: the client's.
        max_workers: downloads at once.

    Raises ValueError (before any request) when ``targets`` or ``totals`` are not one per
    URL; the server's error (as ``handle_error`` raises it) for a failed download, after
    the other downloads have finished. A file is written whole or not at all.
    """
    urls, targets = list(urls), list(targets)
    if len(urls) != len(targets):
        kind = "keys" if mapping is not None else "paths"
        raise ValueError(f"Must provide as many {kind} as URLs: {len(urls)} URLs and {len(targets)} {kind}.")
    if totals is None:
        totals = [None] * len(urls)
    else:
        totals = list(totals)
        if len(totals) != len(urls):
            raise ValueError(f"Must provide as many totals as URLs: {len(urls)} URLs and {len(totals)} totals.")
    if mapping is None:
        targets = [Path(t) for t in targets]
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else None
    lock = threading.Lock() if mapping is not None else None

    with progress_tasks() as tasks:
        def fetch(job):
            url, target, task = job
            with client.stream("GET", url, headers=headers) as response:
                handle_error(response)
                target = _resolve(target, response.headers.get("content-disposition"))
                tasks.started(task, response.headers.get("content-length"))
                return write_chunks(response.iter_bytes(), target, mapping, lock, lambda n: tasks.advance(task, n))

        jobs = [(url, target, tasks.add("download", total)) for url, target, total in zip(urls, targets, totals)]
        with ThreadPoolExecutor(max_workers=max(1, int(max_workers))) as pool:
            futures = [pool.submit(fetch, job) for job in jobs]
        return [future.result() for future in futures]
