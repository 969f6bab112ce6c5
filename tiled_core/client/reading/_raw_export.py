"""Raw export: the files backing a node, downloaded as the server serves them (``asset/bytes``)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from ..registering._uris import path_from_uri

__all__ = ["asset_manifest", "raw_export"]


def _route(action: str, path: tuple[str, ...]) -> str:
    return f"{action}/{'/'.join(path)}"


def asset_manifest(session, path: tuple[str, ...], data_sources) -> dict:
    """``{asset id: [relative paths]}`` for directory assets, ``{asset id: None}`` for single files."""
    manifests = {}
    for source in data_sources:
        for asset in source.assets:
            if asset.is_directory:
                # JSON: the server cannot send its manifest (paths) as msgpack.
                body = session.get_bytes(_route("asset/manifest", path), [("id", str(asset.id))],
                                         accept="application/json")
                root = str(path_from_uri(asset.data_uri))
                manifests[asset.id] = [_relative(entry, root) for entry in json.loads(body)["manifest"]]
            else:
                manifests[asset.id] = None
    return manifests


def _relative(entry: str, root: str) -> str:
    # The server lists files by their full path on its side; the route wants them relative.
    entry = str(entry)
    if os.path.isabs(entry):
        entry = os.path.relpath(entry, root)
    return PurePosixPath(*Path(entry).parts).as_posix()


def _safe_relative(relative: str) -> PurePosixPath:
    # The manifest comes from the server: never write outside the destination.
    candidate = PurePosixPath(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise ValueError(f"the server listed an unsafe relative path {relative!r}")
    return candidate


def _plan(session, path, data_sources) -> list[tuple[list, str, int | None]]:
    """``[(query params, relative target, expected size or None)]`` for every file to fetch."""
    manifests = asset_manifest(session, path, data_sources)
    plan = []
    for source in data_sources:
        several = len(source.assets) > 1
        for asset in source.assets:
            base = PurePosixPath(str(asset.id)) if several else PurePosixPath()
            if asset.is_directory:
                for relative in manifests[asset.id]:
                    plan.append(([("id", str(asset.id)), ("relative_path", relative)],
                                 str(base / _safe_relative(relative)), None))
            else:
                plan.append(([("id", str(asset.id))], str(base / path_from_uri(asset.data_uri).name),
                             getattr(asset, "size", None)))
    return plan


def raw_export(session, path: tuple[str, ...], data_sources, destination=None, *, max_workers: int = 4,
               compression: bool = True) -> list:
    """Download every asset of ``data_sources`` into ``destination`` (a directory, default the current one,
    or a MutableMapping of ``io.BytesIO``); return the paths (or keys) written.

    A file goes to ``destination/<name>`` (``<asset id>/<name>`` when a data
    source has several assets; directories keep their layout). Files are
    written under a temporary name and renamed when complete. ``compression``:
    ask for the codings that decode as they stream (``STREAMING_ACCEPT_ENCODING``:
    not blosc2), or with False for none (``identity``). Each file has a progress
    task whose total is the asset's recorded size (None when unknown).
    """
    from ..download import STREAMING_ACCEPT_ENCODING, progress_tasks, write_chunks

    if not data_sources:
        raise ValueError(f"/{'/'.join(path)} has no data sources to export")
    if len(data_sources) != 1:
        raise NotImplementedError("raw export of a node with several data sources is not supported")
    in_memory = isinstance(destination, MutableMapping)
    root = None if in_memory else Path(destination if destination is not None else Path.cwd())
    plan = _plan(session, path, data_sources)
    route = _route("asset/bytes", path)
    encoding = STREAMING_ACCEPT_ENCODING if compression else "identity"
    lock = threading.Lock()

    with progress_tasks() as tasks:
        def fetch(entry):
            params, relative, task = entry
            with session.stream(route, params, accept="application/octet-stream", accept_encoding=encoding) as chunks:
                tasks.started(task, None)
                target = relative if in_memory else root / relative
                return write_chunks(chunks, target, destination if in_memory else None, lock,
                                    lambda n: tasks.advance(task, n))

        jobs = [(params, relative, tasks.add(relative, size)) for params, relative, size in plan]
        with ThreadPoolExecutor(max_workers=max(1, int(max_workers))) as pool:
            return list(pool.map(fetch, jobs))
