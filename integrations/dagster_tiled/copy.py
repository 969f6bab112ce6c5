"""tiled_copy_asset / tiled_copy_op: copy a Tiled container between two TiledResources."""

# No `from __future__ import annotations`: Dagster inspects the decorated functions' annotations.

import dataclasses
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

__all__ = ["TiledCopy", "tiled_copy_asset", "tiled_copy_op"]

_SUMMARY_FIELDS = ("nodes", "bytes", "seconds", "skipped", "failed")


def _parts(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


@dataclasses.dataclass(frozen=True)
class TiledCopy:
    """A copy of the children of ``source_path`` into ``dest_path`` (created if missing).

    Both paths are from their server's root; the servers are two
    ``TiledResource`` keys. ``on_conflict="skip"`` (default) makes it
    resumable: complete nodes are kept and unfinished ones completed, so a
    rerun after a failure finishes the copy. With ``dask_resource_key`` (a
    ``DaskResource``) the transfers run on that cluster. ``asset()`` and
    ``op()`` make the Dagster definitions.
    """

    source_path: str
    dest_path: str = ""
    source_resource_key: str = "tiled_source"
    dest_resource_key: str = "tiled_dest"
    dask_resource_key: str | None = None
    on_conflict: str = "skip"
    concurrency: int | None = None

    def __post_init__(self) -> None:
        from tiled_core.client.sync import ON_CONFLICT

        if self.on_conflict not in ON_CONFLICT:  # at definition time, not in the middle of a run
            raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, not {self.on_conflict!r}")

    @property
    def resource_keys(self) -> set[str]:
        keys = {self.source_resource_key, self.dest_resource_key}
        return keys | ({self.dask_resource_key} if self.dask_resource_key else set())

    def run(self, context) -> dict[str, Any]:
        """Copy, inside a run; return the materialisation metadata (a ``Failure`` if nodes failed)."""
        from tiled_core.client.sync import CopyError, copy

        resources = context.resources
        source = lookup(getattr(resources, self.source_resource_key).get_client(), _parts(self.source_path))
        dest = ensure_container(getattr(resources, self.dest_resource_key).get_client(), _parts(self.dest_path))
        dask_client = getattr(resources, self.dask_resource_key).get_client() if self.dask_resource_key else None
        context.log.info(f"copying {source.uri} into {dest.uri}")
        try:
            summary = copy(source, dest, on_conflict=self.on_conflict, concurrency=self.concurrency,
                           progress=False, dask_client=dask_client)
        except CopyError as error:
            # What was done so far shows in the UI; a rerun with on_conflict="skip" finishes the copy.
            raise Failure(description=str(error), metadata=_metadata(error.summary, source, dest)) from error
        return _metadata(summary, source, dest)

    def asset(self, name: str, *, deps: Sequence[Any] = (), group_name: str | None = None) -> AssetsDefinition:
        """An asset whose materialisations report nodes, bytes, seconds, skipped and failed."""

        @asset(name=name, deps=list(deps), group_name=group_name, required_resource_keys=self.resource_keys,
               description=f"Copy of Tiled {self.source_path or '/'} into {self.dest_path or '/'}")
        def _copy(context) -> MaterializeResult:
            return MaterializeResult(metadata=self.run(context))

        return _copy

    def op(self, name: str) -> OpDefinition:
        """An op whose output is the copy's summary as a dict (with the same metadata)."""

        @op(name=name, required_resource_keys=self.resource_keys, out=Out(dict))
        def _copy(context):
            metadata = self.run(context)
            return Output({field: metadata[field] for field in _SUMMARY_FIELDS}, metadata=metadata)

        return _copy


def _metadata(summary, source, dest) -> dict[str, Any]:
    metadata: dict[str, Any] = {name: getattr(summary, name) for name in _SUMMARY_FIELDS}
    metadata.update({"source": MetadataValue.url(source.uri), "dagster/uri": dest.uri,
                     "tiled_url": MetadataValue.url(dest.uri)})
    if summary.errors:
        metadata["errors"] = MetadataValue.md("\n".join(f"- `/{path}`: {message}" for path, message in summary.errors))
    return metadata


def tiled_copy_asset(name: str, source_path: str, dest_path: str = "", *, deps: Sequence[Any] = (),
                     group_name: str | None = None, **options) -> AssetsDefinition:
    """An asset copying ``source_path`` into ``dest_path``; ``options`` are :class:`TiledCopy`'s fields."""
    return TiledCopy(source_path, dest_path, **options).asset(name, deps=deps, group_name=group_name)


def tiled_copy_op(name: str, source_path: str, dest_path: str = "", **options) -> OpDefinition:
    """An op copying ``source_path`` into ``dest_path``; ``options`` are :class:`TiledCopy`'s fields."""
    return TiledCopy(source_path, dest_path, **options).op(name)
