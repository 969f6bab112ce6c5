"""Which Container writer takes which in-memory type: a table, matched in order.

Types are recognised without importing their libraries: a value can only be a
pandas DataFrame if pandas is already imported, so ``sys.modules`` is asked
first and nothing heavy is imported here.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tiled_core.client.conflict import check_on_conflict

__all__ = ["Writer", "WRITERS", "writer_for", "write"]


def _array(parent, data, **kwargs):
    return parent.write_array(data, **kwargs)


def _dataframe(parent, data, **kwargs):
    return parent.write_table(data, **kwargs)


def _awkward(parent, data, **kwargs):
    return parent.write_awkward(data, **kwargs)


def _sparse(parent, data, **kwargs):
    return parent.write_sparse(coords=data.coords, data=data.data, shape=data.shape, **kwargs)


def _xarray(parent, data, **kwargs):
    from tiled_core.client.xarray import write_xarray_dataset

    return write_xarray_dataset(parent, data, **kwargs)


@dataclass(frozen=True)
class Writer:
    """One row of the table: the type (by module and dotted name) and how to write it."""

    module: str
    name: str
    family: str
    write: Callable[..., Any]
    method: str  # the tiled_core callable it ends in, to check its keywords

    def matches(self, data: Any) -> bool:
        module = sys.modules.get(self.module)
        if module is None:
            return False
        cls: Any = module
        for part in self.name.split("."):
            cls = getattr(cls, part, None)
        return isinstance(cls, type) and isinstance(data, cls)


WRITERS: tuple[Writer, ...] = (
    Writer("numpy", "ndarray", "array", _array, "Container.write_array"),
    Writer("dask.array", "Array", "array", _array, "Container.write_array"),
    Writer("pandas", "DataFrame", "table", _dataframe, "Container.write_table"),
    Writer("dask.dataframe", "DataFrame", "table", _dataframe, "Container.write_table"),
    Writer("xarray", "Dataset", "xarray_dataset", _xarray, "tiled_core.client.xarray.write_xarray_dataset"),
    Writer("awkward", "Array", "awkward", _awkward, "Container.write_awkward"),
    Writer("sparse", "COO", "sparse", _sparse, "Container.write_sparse"),
)


def writer_for(data: Any) -> Writer:
    """The table row for ``data``; TypeError naming the supported types otherwise."""
    for writer in WRITERS:
        if writer.matches(data):
            return writer
    supported = ", ".join(f"{w.module}.{w.name}" for w in WRITERS)
    raise TypeError(f"cannot write a {type(data).__module__}.{type(data).__qualname__} to Tiled; supported: {supported}")


def _target(parent, writer: Writer) -> Callable:
    """The tiled_core callable behind a row (None if this tiled_core does not have it yet)."""
    if writer.method.startswith("Container."):
        return getattr(parent, writer.method.split(".", 1)[1], None)
    module, _, name = writer.method.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def write(parent, key: str, data: Any, *, metadata: dict | None, specs: list | None, on_conflict: str):
    """Write ``data`` as child ``key`` of container ``parent``; returns the new (or kept) node client.

    ``on_conflict`` is tiled_core's (see ``tiled_core.client.conflict``): "skip"
    keeps a complete node and finishes an interrupted one; "replace" writes anew.
    """
    check_on_conflict(on_conflict)
    writer = writer_for(data)
    target = _target(parent, writer)
    if target is None:
        raise NotImplementedError(f"writing {writer.family} nodes needs {writer.method}, which this tiled_core lacks")
    accepted = inspect.signature(target).parameters
    kwargs: dict[str, Any] = {"key": key}
    for name, value in (("metadata", metadata), ("specs", specs), ("on_conflict", on_conflict)):
        if value is not None and (name != "on_conflict" or value != "error"):
            if name not in accepted:
                hint = "; put it in the dataset's attrs" if writer.family == "xarray_dataset" else ""
                raise TypeError(f"{writer.method} does not take {name}={hint}")
            kwargs[name] = value
    return writer.write(parent, data, **kwargs)
