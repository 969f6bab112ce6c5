"""tiled_sensor: one run per new entry of a Tiled container."""

# No `from __future__ import annotations`: Dagster inspects the decorated functions' annotations.

from collections.abc import Callable
from typing import Any

from dagster import (
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ._cursor import new_entries
from ._nodes import lookup

__all__ = ["tiled_sensor"]


def tiled_sensor(
    path: str,
    *,
    name: str,
    job: Any = None,
    target: Any = None,
    query: Any = None,
    order_by: str | None = None,
    partitions_def: DynamicPartitionsDefinition | None = None,
    run_request_fn: Callable[[str, Any], RunRequest | None] | None = None,
    resource_key: str = "tiled",
    max_runs_per_tick: int = 50,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor requesting one run per new entry of the container at ``path`` (from the server root).

    Arguments:
        path: the watched container, e.g. ``"raw/scans"``.
        name: the sensor's name.
        job / target: what to run (as for ``@sensor``).
        query: only entries matching this ``tiled_core.queries`` query (or a
            list of them) count. Entries are judged when first listed: one that
            only starts matching later is not offered.
        order_by: a metadata key that grows with new entries; default: the
            server's insertion order (see ``_cursor`` for the cursor design).
        partitions_def: a ``DynamicPartitionsDefinition``; each new entry's key
            is added to it and becomes the run's partition key.
        run_request_fn: ``(key, node) -> RunRequest | None`` to build the
            request yourself (``None`` skips the entry; its ``run_key`` defaults
            to the entry's path).
        resource_key: the key of the ``TiledResource``.
        max_runs_per_tick: new entries handled per evaluation; the rest wait.

    Each ``RunRequest`` has ``run_key`` = the entry's path, so even if a cursor
    were lost, Dagster would not run an entry twice. Tags: ``tiled/path``.
    """
    if max_runs_per_tick < 1:
        raise ValueError("max_runs_per_tick must be at least 1")
    queries = list(query) if isinstance(query, (list, tuple)) else ([query] if query is not None else [])
    for q in queries:
        if not callable(getattr(q, "encode", None)):
            raise TypeError(f"{q!r} is not a query from tiled_core.queries")
    prefix = "/".join(p for p in path.split("/") if p)

    @sensor(
        name=name, job=job, target=target, minimum_interval_seconds=minimum_interval_seconds,
        required_resource_keys={resource_key}, default_status=default_status,
        description=f"One run per new entry of Tiled container {prefix or '/'}",
    )
    def _sensor(context: SensorEvaluationContext, **_resources):
        # Direct invocation (tests) also passes the resources as keywords; the daemon does not.
        client = getattr(context.resources, resource_key).get_client()
        try:
            container = lookup(client, tuple(p for p in prefix.split("/") if p))
        except KeyError:  # e.g. the instrument has not made it yet
            return SensorResult(skip_reason=SkipReason(f"no container {prefix} yet"), cursor=context.cursor)
        for q in queries:
            container = container.search(q)
        keys, cursor = new_entries(container, context.cursor, order_by=order_by, limit=max_runs_per_tick)
        requests = []
        for key in keys:
            request = _request(container, key, f"{prefix}/{key}" if prefix else key, partitions_def, run_request_fn)
            if request is not None:
                requests.append(request)
        if not keys:
            return SensorResult(skip_reason=SkipReason(f"no new entries in {prefix or '/'}"), cursor=cursor)
        dynamic = [partitions_def.build_add_request(keys)] if partitions_def is not None else []
        return SensorResult(run_requests=requests, cursor=cursor, dynamic_partitions_requests=dynamic)

    return _sensor


def _request(container, key: str, entry_path: str, partitions_def, run_request_fn) -> RunRequest | None:
    if run_request_fn is None:
        return RunRequest(
            run_key=entry_path, tags={"tiled/path": entry_path},
            partition_key=key if partitions_def is not None else None,
        )
    request = run_request_fn(key, container[key])
    if request is not None and request.run_key is None:
        request = request.with_replaced_attrs(run_key=entry_path)
    return request
