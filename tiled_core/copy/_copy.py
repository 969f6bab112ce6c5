"""Copy nodes from one Tiled server (or place) to another: ``copy(source, dest)``."""

from __future__ import annotations

import collections.abc
from collections.abc import Callable, Iterator
from typing import Any

from ..transport import Conflict, NotFound
from ..client.writing._conflict import same_structure
from ._engine import CopyEngine, Options, source_listing
from ._runners import DaskRunner, ThreadRunner
from ._progress import CopyConflict, CopyError, CopyProgress, CopySummary, make_reporter
from ..client.base import BaseClient

__all__ = ["CopyConflict", "CopyError", "CopyProgress", "CopySummary", "copy"]

MiB = 1 << 20
ON_CONFLICT = ("error", "warn", "skip")
EXTERNAL = ("register", "data")
DEFAULT_CONCURRENCY = 8
DEFAULT_CREATE_CONCURRENCY = 3
DEFAULT_MAX_MEMORY = 128 * MiB  # a 1 GiB copy peaks ~140 MiB above the process's baseline (bench_copy_memory)


def copy(
    source,
    dest,
    on_conflict: str = "error",
    *,
    concurrency: int | None = None,
    create_concurrency: int = DEFAULT_CREATE_CONCURRENCY,
    max_memory: int = DEFAULT_MAX_MEMORY,
    progress: bool | Callable[[CopyProgress], Any] | None = None,
    dask_client=None,
    external: str = "register",
    preserve_order: bool = True,
) -> CopySummary:
    """Copy data from one Tiled instance to another.

    As the reference ``tiled.client.sync.copy``: the children of ``source`` (a
    container, or a mapping / list of ``(key, node)`` pairs such as
    ``a.items().head()``) are recreated under the existing container ``dest``
    with their metadata, specs and structure, and their data copied: arrays
    and sparse arrays block by block (keeping the source's chunks), tables
    partition by partition, awkward and ragged arrays whole. Externally
    managed data is registered at ``dest`` with the same assets (the
    destination must be able to read them); ``external="data"`` copies its
    bytes into the destination's own storage instead. A non-container
    ``source`` has its data copied into ``dest``, an existing node of the same
    family and structure.

    Beyond the reference: data moves over ``concurrency`` parallel transfers
    (default 8) while nodes are created ``create_concurrency`` at a time
    (default 3: catalogs on SQLite fail under many parallel creates); so
    that children keep the source's order (unless ``preserve_order=False``) a
    container's children are created in order, up to 16 at once pipelined on
    one connection (one round trip for them all over a slow link); bytes
    stream from one server to the other a block at a time (neighbouring
    blocks of an evenly chunked array as one region of up to 32 MiB, or
    a quarter of ``max_memory``: a server spends ~25 ms per request whatever
    its size), with at most about ``max_memory`` bytes in flight (default
    128 MiB). ``progress``: None (a bar when stderr is a
    terminal and tqdm is installed), True/False, or a callable receiving
    :class:`CopyProgress`. ``dask_client``: run the transfers as tasks on that
    ``distributed`` cluster; workers read the source and write the
    destination directly (an API key given directly is shipped once to the
    workers, out of band; see ``tiled_core.distributed.share_credentials``).

    ``on_conflict`` for keys that exist at ``dest``: ``"error"`` (default)
    stops at the first one; ``"skip"`` keeps complete nodes and descends into
    existing containers; ``"warn"`` also warns for each node kept. A copy that
    was interrupted (server down, process killed) leaves its unfinished nodes
    marked; rerunning it with ``"skip"`` or ``"warn"`` finishes them without
    duplicating anything.

    Returns a :class:`CopySummary` (nodes, bytes, seconds, skipped, failed).
    Raises :class:`CopyError` (with ``.summary``; the first failure is its
    ``__cause__``) when nodes failed: :class:`CopyConflict`, also the server's
    409 ``Conflict`` (a ``ClientError``, as the reference raises), when the
    first failure was an existing key under ``on_conflict="error"``.
    ValueError/TypeError for bad arguments before any request.
    """
    options = _check_options(on_conflict, concurrency, create_concurrency, max_memory, external, preserve_order)
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"progress must be None, a bool or a callable, not {type(progress).__name__}")
    if not isinstance(dest, BaseClient):
        raise TypeError(f"dest must be a tiled_core client, not {type(dest).__name__}")
    source_context, listing, data_item = _source_plan(source, dest)
    if data_item is not None:
        _check_data_target(data_item, dest)
    runner = _runner(dask_client, source_context, dest.context, concurrency)
    try:
        reporter = make_reporter(progress)
    except BaseException:
        runner.close()
        raise
    engine = CopyEngine(source_context, dest.context, runner, reporter, options)
    if data_item is not None:
        summary = engine.copy_data(data_item, dest.item)
    else:
        summary = engine.copy_children(dest.path_parts, listing)
    if engine.error is not None:
        node, error = engine.error
        where = f"/{node.text}" if node.text else "the top of the copy"
        failure = CopyConflict if isinstance(error, Conflict) else CopyError
        extra = (error,) if failure is CopyConflict else ()
        raise failure(
            f"copy into {dest.uri} failed at {where}: {type(error).__name__}: {error}\n{summary}\n"
            "Rerun with on_conflict='skip' to finish it: complete nodes are kept and unfinished ones completed.",
            summary, *extra,
        ) from error
    return summary


def _check_options(on_conflict, concurrency, create_concurrency, max_memory, external, preserve_order) -> Options:
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {', '.join(map(repr, ON_CONFLICT))}, not {on_conflict!r}")
    if external not in EXTERNAL:
        raise ValueError(f"external must be one of {', '.join(map(repr, EXTERNAL))}, not {external!r}")
    for name, value in (("concurrency", concurrency), ("create_concurrency", create_concurrency),
                        ("max_memory", max_memory)):
        if value is None and name == "concurrency":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return Options(on_conflict, create_concurrency, max_memory, external, bool(preserve_order))


def _source_plan(source, dest) -> tuple[Any, Iterator | None, dict | None]:
    """``(source context, listing of (key, item with data sources) | None, data item | None)``."""
    from ..client.container import Container

    if isinstance(source, BaseClient):
        if source.structure_family != "container":
            return source.context, None, _with_data_sources(source)
        _require_container(dest)
        if not isinstance(source, Container):
            source = Container(source.context, item=source.item, structure_clients="numpy")
        return source.context, source_listing(source.context, None, source), None
    if isinstance(source, collections.abc.Mapping):
        pairs = list(source.items())
    elif isinstance(source, collections.abc.Iterable) and not isinstance(source, (str, bytes)):
        pairs = list(source)
    else:
        raise TypeError(f"source must be a tiled_core client, a mapping or (key, node) pairs, not {type(source).__name__}")
    _require_container(dest)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], BaseClient)):
            raise TypeError(f"source pairs must be (key, tiled_core node), not {pair!r}")
    contexts = {id(node.context): node.context for _, node in pairs}
    if len(contexts) > 1:
        raise ValueError("all source nodes must come from one connection (one from_uri)")
    context = next(iter(contexts.values()), dest.context)
    return context, ((key, _with_data_sources(node)) for key, node in pairs), None


def _check_data_target(item: dict, dest: BaseClient) -> None:
    family = item["attributes"]["structure_family"]
    if dest.structure_family != family or not same_structure(family, item["attributes"]["structure"], dest.item["attributes"]["structure"]):
        raise ValueError(f"{dest.uri} is not a {family} of the source's structure; cannot copy the data into it")


def _require_container(dest) -> None:
    if dest.structure_family != "container":
        raise TypeError(f"dest must be a container to copy children into, not a {dest.structure_family}")


def _with_data_sources(node: BaseClient) -> dict:
    if node.item["attributes"].get("data_sources") is not None:
        return node.item
    path = "metadata/" + "/".join(node.path_parts)
    try:
        return node.context.session.get_document(path, [("include_data_sources", "true"), ("omit_links", "true")])["data"]
    except NotFound:
        raise KeyError(node.path) from None


def _runner(dask_client, source_context, dest_context, concurrency):
    if dask_client is None:
        return ThreadRunner(source_context.session, dest_context.session, concurrency or DEFAULT_CONCURRENCY)
    from ..distributed._credentials import share_credentials

    share_credentials(dask_client, source_context, dest_context)  # no-op where workers have a source
    return DaskRunner(dask_client, source_context.session_handle, dest_context.session_handle, concurrency)
