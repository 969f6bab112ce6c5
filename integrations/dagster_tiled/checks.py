"""tiled_asset_check: does an asset's Tiled node exist and have the expected structure and metadata?"""

# No `from __future__ import annotations`: Dagster inspects the decorated functions' annotations.

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    asset_check,
)

from ._nodes import lookup

__all__ = ["tiled_asset_check", "node_problems"]


def node_problems(
    node,
    *,
    family: str | None = None,
    shape: Sequence[int | None] | None = None,
    dtype: Any = None,
    columns: Sequence[str] | None = None,
    metadata_keys: Sequence[str] = (),
) -> list[str]:
    """What about ``node`` differs from the expectations (empty: all met).

    ``shape`` may hold ``None`` for "any length"; ``columns`` must all be
    present (others may be too); ``metadata_keys`` are dotted paths.
    """
    from tiled_core.client.conflict import is_incomplete

    problems = ["incomplete: its write was interrupted"] if is_incomplete(node) else []
    if family is not None and node.structure_family != family:
        problems.append(f"structure family is {node.structure_family}, expected {family}")
    structure = node.structure()
    if shape is not None:
        actual = tuple(_field(structure, "shape") or ())
        expected = tuple(shape)
        if len(actual) != len(expected) or any(e is not None and a != e for a, e in zip(actual, expected)):
            problems.append(f"shape is {actual}, expected {expected}")
    if dtype is not None:
        import numpy as np

        actual_dtype = getattr(node, "dtype", None)
        if actual_dtype is None or np.dtype(actual_dtype) != np.dtype(dtype):
            problems.append(f"dtype is {actual_dtype}, expected {np.dtype(dtype)}")
    if columns is not None:
        present = list(getattr(node, "columns", None) or _field(structure, "columns") or [])
        missing = [c for c in columns if c not in present]
        if missing:
            problems.append(f"columns {missing} missing (has {present})")
    for dotted in metadata_keys:
        value: Any = node.metadata
        for part in dotted.split("."):
            value = value.get(part, _MISSING) if hasattr(value, "get") else _MISSING
        if value is _MISSING:
            problems.append(f"metadata key {dotted!r} missing")
    return problems


_MISSING = object()


def _field(structure: Any, name: str) -> Any:
    # Families tiled_core models are dataclasses; the others are still the server's JSON.
    return structure.get(name) if isinstance(structure, dict) else getattr(structure, name, None)


def tiled_asset_check(
    asset: AssetsDefinition | AssetKey | str | Sequence[str],
    *,
    name: str = "tiled_node_matches",
    family: str | None = None,
    shape: Sequence[int | None] | None = None,
    dtype: Any = None,
    columns: Sequence[str] | None = None,
    metadata_keys: Sequence[str] = (),
    resource_key: str = "tiled",
    blocking: bool = False,
    description: str | None = None,
) -> AssetChecksDefinition:
    """An asset check that the asset's node (under the resource's ``base_path``) exists and matches.

    Expectations are optional: ``family``, ``shape`` (``None`` entries match any
    length), ``dtype``, ``columns`` (must be present) and ``metadata_keys``.
    For a partitioned asset, every materialised partition is checked. The result's
    metadata lists what was checked and any problems.
    """
    key = asset.key if isinstance(asset, AssetsDefinition) else AssetKey.from_coercible(asset)
    expectations = {"family": family, "shape": shape, "dtype": dtype, "columns": columns,
                    "metadata_keys": tuple(metadata_keys)}
    partitioned = isinstance(asset, AssetsDefinition) and asset.partitions_def is not None

    @asset_check(
        asset=asset, name=name, blocking=blocking, required_resource_keys={resource_key},
        description=description or f"The Tiled node of {key.to_user_string()} exists and has the expected structure",
    )
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        tiled = getattr(context.resources, resource_key)
        path = tiled.node_path(*key.path)
        try:
            node = lookup(tiled.get_client(), tuple(path.split("/")))
        except KeyError:
            return AssetCheckResult(passed=False, description=f"no Tiled node at {path}",
                                    metadata={"path": path})
        targets = list(node.items()) if partitioned else [("", node)]
        problems = [
            f"{part}: {problem}" if part else problem
            for part, target in targets
            for problem in node_problems(target, **expectations)
        ]
        metadata = {"path": path, "dagster/uri": node.uri, "tiled_url": MetadataValue.url(node.uri),
                    "nodes checked": len(targets)}
        if problems:
            metadata["problems"] = MetadataValue.md("\n".join(f"- {p}" for p in problems))
        if partitioned and not targets:
            return AssetCheckResult(passed=False, description="no partition materialised yet", metadata=metadata)
        return AssetCheckResult(passed=not problems, metadata=metadata,
                                description="; ".join(problems) if problems else "node matches")

    return _check
