"""TiledIOManager: Dagster asset values stored as Tiled nodes."""

# No `from __future__ import annotations`: Dagster reads the field annotations at runtime.

import typing
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext, ResourceDependency

from ._nodes import ensure_container
from .handlers import DEFAULT_HANDLERS, Handler, HandlerTable
from .resource import TiledResource

__all__ = ["TiledIOManager", "storage_parts"]


def storage_parts(context: OutputContext) -> tuple[str, ...]:
    """Keys (below ``base_path``) of an output: its asset key, or ``runs/<run>/<step>/<output>`` for ops."""
    if context.has_asset_key:
        return tuple(context.asset_key.path)
    return ("runs", *context.get_identifier())


def _provenance(context: OutputContext, partition: str | None) -> dict[str, Any]:
    """Where a node came from, kept in its Tiled metadata (searchable, e.g. by run id)."""
    origin: dict[str, Any] = {"run_id": context.run_id}
    if context.has_asset_key:
        origin["asset_key"] = context.asset_key.to_user_string()
    else:
        origin["step_key"], origin["output"] = context.step_key, context.name
    if partition is not None:
        origin["partition"] = partition
    return {"dagster": origin}


def _values_by_partition(context: OutputContext, obj: Any) -> dict[str, Any]:
    """The value of each partition this output covers (a run over a range returns a dict of them)."""
    keys = [str(key) for key in context.asset_partition_keys]
    if len(keys) == 1:
        return {keys[0]: obj}
    if isinstance(obj, Mapping) and set(map(str, obj)) == set(keys):
        return {str(key): value for key, value in obj.items()}
    raise TypeError(
        f"this run covers {len(keys)} partitions of {context.asset_key.to_user_string()}: "
        "return a dict keyed by partition key"
    )


def _split_annotation(annotation: Any) -> tuple[bool, Any]:
    """``(wants a dict, the per-partition annotation)`` for an input annotation."""
    origin = typing.get_origin(annotation)
    if annotation in (dict, Mapping) or origin in (dict, Mapping):
        args = typing.get_args(annotation)
        return True, (args[1] if len(args) == 2 else Any)
    return False, annotation


class TiledIOManager(ConfigurableIOManager):
    """Stores asset values in Tiled, under ``tiled.base_path`` + the asset key.

    Writes choose a handler from the value's type: numpy and dask arrays
    (array nodes), pandas and dask DataFrames (tables), xarray Datasets,
    awkward arrays and sparse arrays. Loads follow the input's annotation
    (``dask.array.Array`` / ``dask.dataframe.DataFrame`` load lazily), or the
    node's structure family when unannotated (lazily if the resource's
    ``structure_clients`` is ``"dask"``). Rematerialising replaces the node.

    Partitions: each partition key is a child node of the asset's container.
    An input covering several partitions is a dict keyed by partition, or one
    concatenated object when annotated with the value type (e.g.
    ``pd.DataFrame``). Set ``allow_missing_partitions`` in the input's
    metadata to skip partitions that were never materialised.

    Every materialisation reports ``dagster/uri``, a clickable ``tiled_url``,
    and the structure written (shape/dtype/chunks, or row count and column
    schema) with its size. Subclass and override ``type_handlers`` to add types.
    """

    tiled: ResourceDependency[TiledResource]

    def type_handlers(self) -> Sequence[Handler]:
        """The handlers in use (override to add or replace some)."""
        return DEFAULT_HANDLERS

    def _table(self) -> HandlerTable:
        return HandlerTable(self.type_handlers())

    # -- writing -----------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            context.log.debug("TiledIOManager: the output is None; nothing stored")
            return
        table = self._table()
        parts = (*self.tiled.base_parts, *storage_parts(context))
        if not context.has_asset_partitions:
            handler = table.for_value(obj)  # an unsupported type fails before any request
            node = handler.write(ensure_container(self.tiled.get_client(), parts[:-1]), parts[-1], obj,
                                 _provenance(context, None))
            context.add_output_metadata(_output_metadata(node, handler.describe(obj, node)))
            return
        values = _values_by_partition(context, obj)
        handlers = {key: table.for_value(value) for key, value in values.items()}
        parent = ensure_container(self.tiled.get_client(), parts)
        for key, value in values.items():
            node = handlers[key].write(parent, key, value, _provenance(context, key))
        if len(values) == 1:
            context.add_output_metadata(_output_metadata(node, handlers[key].describe(value, node)))
        else:
            context.add_output_metadata({**_output_metadata(parent, {}), "partitions written": len(values)})

    # -- loading -----------------------------------------------------------
    def load_input(self, context: InputContext) -> Any:
        wants_dict, annotation = _split_annotation(context.dagster_type.typing_type)
        handler = self._handler_for_annotation(annotation)
        parts = (*self.tiled.base_parts, *storage_parts(context.upstream_output))
        if not context.has_asset_partitions:
            return self._load(parts, handler)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        values: dict[str, Any] = {}
        for key in context.asset_partition_keys:
            try:
                values[str(key)] = self._load((*parts, str(key)), handler)
            except KeyError:
                if not allow_missing:
                    raise
                context.log.info(f"partition {key} of {'/'.join(parts)} was never materialised; skipped")
        if wants_dict:
            return values
        if len(values) == 1 and len(context.asset_partition_keys) == 1:
            return next(iter(values.values()))
        if handler is None:
            return values  # unannotated: several partitions come as a dict
        return handler.concat(list(values.values()), list(values))

    def _handler_for_annotation(self, annotation: Any) -> Handler | None:
        if annotation in (Any, object, None) or not isinstance(annotation, type):
            return None  # unannotated: decided by the node
        handler = self._table().for_annotation(annotation)
        if handler is None:
            raise TypeError(
                f"TiledIOManager cannot load an input annotated {annotation.__module__}.{annotation.__qualname__}; "
                f"supported types: {self._table().supported()}"
            )
        return handler

    def _load(self, parts: Sequence[str], handler: Handler | None) -> Any:
        from tiled_core.client import from_context
        from tiled_core.client.conflict import is_incomplete

        lazy = handler.lazy if handler is not None else self.tiled.structure_clients == "dask"
        context = self.tiled.get_client().context
        try:
            node = from_context(context, "dask" if lazy else "numpy", list(parts))
        except KeyError:
            raise KeyError(f"no Tiled node at {'/'.join(parts)}: has it been materialised?") from None
        if is_incomplete(node):
            raise RuntimeError(f"{node.path} is incomplete (its write was interrupted): materialise it again")
        if handler is None:
            handler = self._table().for_node(node, lazy=lazy)
        elif not handler.reads(node):
            raise TypeError(
                f"{node.path} is a {node.structure_family} node; it cannot be loaded as {handler.type_paths[0]}"
            )
        return handler.read(node)


def _output_metadata(node, described: dict[str, Any]) -> dict[str, Any]:
    return {"dagster/uri": node.uri, "tiled_url": MetadataValue.url(node.uri), **described}
