"""tiled_copy_asset / tiled_copy_op: copy a Tiled container between two TiledResources."""

# No `from __future__ import annotations`: Dagster inspects the decorated functions' annotations.

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    OpDefinition,
    Out,
    Output,
    asset,
    op,
)

from ._nodes import ensure_container, lookup

__all__ = ["tiled_copy_asset", "tiled_copy_op"]

_SUMMARY_FIELDS = ("nodes", "bytes", "seconds", "skipped", "failed")


def _parts(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


def _run_copy(context, spec: dict[str, Any]) -> dict[str, Any]:
    """Copy ``source_path`` (on the source resource) into ``dest_path`` (on the destination); metadata."""
    from tiled_core.client.sync import CopyError, copy

    resources = context.resources
    source = lookup(getattr(resources, spec["source_resource_key"]).get_client(), _parts(spec["source_path"]))
    dest = ensure_container(getattr(resources, spec["dest_resource_key"]).get_client(), _parts(spec["dest_path"]))
    dask_client = getattr(resources, spec["dask_resource_key"]).get_client() if spec["dask_resource_key"] else None
    context.log.info(f"copying {source.uri} into {dest.uri}")
    try:
        summary = copy(source, dest, on_conflict=spec["on_conflict"], concurrency=spec["concurrency"],
                       progress=False, dask_client=dask_client)
    except CopyError as error:
        # What was done so far shows in the UI; a rerun with on_conflict="skip" finishes the copy.
        raise Failure(description=str(error), metadata=_metadata(error.summary, source, dest)) from error
    return _metadata(summary, source, dest)


def _metadata(summary, source, dest) -> dict[str, Any]:
    metadata: dict[str, Any] = {name: getattr(summary, name) for name in _SUMMARY_FIELDS}
    metadata.update({"source": MetadataValue.url(source.uri), "dagster/uri": dest.uri,
                     "tiled_url": MetadataValue.url(dest.uri)})
    if summary.errors:
        metadata["errors"] = MetadataValue.md("\n".join(f"- `/{path}`: {message}" for path, message in summary.errors))
    return metadata


def _spec(source_path, dest_path, source_resource_key, dest_resource_key, dask_resource_key, on_conflict, concurrency):
    from tiled_core.client.sync import ON_CONFLICT

    if on_conflict not in ON_CONFLICT:  # at definition time, not in the middle of a run
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, not {on_conflict!r}")
    return {"source_path": source_path, "dest_path": dest_path, "source_resource_key": source_resource_key,
            "dest_resource_key": dest_resource_key, "dask_resource_key": dask_resource_key,
            "on_conflict": on_conflict, "concurrency": concurrency}


def _required(spec: dict[str, Any]) -> set[str]:
    keys = {spec["source_resource_key"], spec["dest_resource_key"]}
    return keys | ({spec["dask_resource_key"]} if spec["dask_resource_key"] else set())


def tiled_copy_asset(
    name: str,
    source_path: str,
    dest_path: str = "",
    *,
    source_resource_key: str = "tiled_source",
    dest_resource_key: str = "tiled_dest",
    dask_resource_key: str | None = None,
    on_conflict: str = "skip",
    concurrency: int | None = None,
    deps: Sequence[Any] = (),
    group_name: str | None = None,
) -> AssetsDefinition:
    """An asset that copies the children of ``source_path`` into ``dest_path`` (created if missing).

    Both paths are from their server's root; the servers are the two
    ``TiledResource`` keys. ``on_conflict="skip"`` (default) makes it
    resumable: complete nodes are kept and unfinished ones completed, so a
    rerun after a failure finishes the copy. With ``dask_resource_key`` (a
    ``DaskResource``) the transfers run on that cluster. Materialisations
    report nodes, bytes, seconds, skipped and failed; a failed copy is a
    ``Failure`` carrying the same numbers.
    """
    spec = _spec(source_path, dest_path, source_resource_key, dest_resource_key, dask_resource_key, on_conflict,
                 concurrency)

    @asset(name=name, deps=list(deps), group_name=group_name, required_resource_keys=_required(spec),
           description=f"Copy of Tiled {source_path or '/'} into {dest_path or '/'}")
    def _copy(context) -> MaterializeResult:
        return MaterializeResult(metadata=_run_copy(context, spec))

    return _copy


def tiled_copy_op(
    name: str,
    source_path: str,
    dest_path: str = "",
    *,
    source_resource_key: str = "tiled_source",
    dest_resource_key: str = "tiled_dest",
    dask_resource_key: str | None = None,
    on_conflict: str = "skip",
    concurrency: int | None = None,
) -> OpDefinition:
    """The op form of :func:`tiled_copy_asset`: its output is the copy's summary as a dict."""
    spec = _spec(source_path, dest_path, source_resource_key, dest_resource_key, dask_resource_key, on_conflict,
                 concurrency)

    @op(name=name, required_resource_keys=_required(spec), out=Out(dict))
    def _copy(context):
        metadata = _run_copy(context, spec)
        summary = {field: metadata[field] for field in _SUMMARY_FIELDS}
        return Output(summary, metadata=metadata)

    return _copy
