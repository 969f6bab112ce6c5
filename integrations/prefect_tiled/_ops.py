"""What the tasks do, as plain functions (the sync tasks call them; the async twins run them in a thread)."""

from __future__ import annotations

import collections.abc
import inspect
import numbers
from typing import Any

from prefect.logging import get_run_logger

from tiled_core.client.conflict import check_on_conflict

from . import _writers
from .credentials import TiledCredentials

__all__ = ["read", "search", "write", "coerce_queries", "describe", "logger", "split_node_path"]


def logger():
    """The run logger inside a flow or task run, else the package's logger."""
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:  # called outside a run (e.g. from a plain script)
        from prefect.logging import get_logger

        return get_logger("prefect_tiled")


def split_node_path(path: str) -> tuple[str, str]:
    """``"a/b/c"`` -> ``("a/b", "c")``: the parent container and the new node's key."""
    if not isinstance(path, str):
        raise TypeError(f"node paths are strings like 'a/b', not {type(path).__name__}")
    parent, _, key = path.strip("/").rpartition("/")
    if not key:
        raise ValueError(f"{path!r} names no node to write: give 'container/key'")
    return parent, key


def read(credentials: TiledCredentials, path: str, slice: Any = None, columns: Any = None) -> Any:
    """Read the node at ``path``: numpy / pandas / xarray / awkward / sparse by structure family."""
    node = credentials.node(path)
    reader = getattr(node, "read", None)
    if reader is None:
        raise TypeError(f"{path or '/'} is a {node.structure_family} node, which has no data to read; "
                        "use search_nodes to list what is inside")
    accepted = inspect.signature(reader).parameters
    kwargs = {}
    for name, value in (("slice", slice), ("columns", columns)):
        if value is None:
            continue
        if name == "columns" and name not in accepted and "variables" in accepted:
            name = "variables"  # an xarray dataset's columns are its variables
        if name not in accepted:
            raise TypeError(f"{path or '/'} is a {node.structure_family} node: reading it takes no {name}=")
        kwargs[name] = value
    logger().info("reading %s node %s from %s", node.structure_family, path or "/", credentials.target)
    return reader(**kwargs)


def coerce_queries(query: Any) -> list:
    """``None``, a query, a ``{"key": value}`` dict (each pair an ``Eq``) or a list of these -> queries."""
    from tiled_core.queries import Eq

    if query is None:
        return []
    if isinstance(query, collections.abc.Mapping):
        return [Eq(key, value) for key, value in query.items()]
    if isinstance(query, (list, tuple)):
        return [q for item in query for q in coerce_queries(item)]
    if callable(getattr(query, "encode", None)):
        return [query]
    raise TypeError(f"queries come from tiled_core.queries or as a {{'key': value}} dict, not {query!r}")


def _coerce_sort(sort: Any) -> list[tuple[str, int]]:
    if sort is None:
        return []
    if isinstance(sort, str) or (isinstance(sort, (list, tuple)) and len(sort) == 2 and isinstance(sort[1], int)):
        sort = [sort]
    result = []
    for entry in sort:
        if isinstance(entry, str):  # "key" or "-key", as on the command line
            entry = (entry[1:], -1) if entry.startswith("-") else (entry, 1)
        result.append(tuple(entry))  # JSON parameters arrive as lists
    return result


def search(credentials: TiledCredentials, path: str = "", query: Any = None, sort: Any = None,
           limit: int | None = None) -> list[str]:
    """Paths (from the server root) of the children of ``path`` matching ``query``."""
    queries = coerce_queries(query)
    sorting = _coerce_sort(sort)
    if limit is not None and (not isinstance(limit, numbers.Integral) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, not {limit!r}")
    container = credentials.node(path)
    if container.structure_family != "container":
        raise TypeError(f"{path} is a {container.structure_family} node; only containers can be searched")
    for q in queries:
        container = container.search(q)
    if sorting:
        container = container.sort(*sorting)
    keys = list(container.keys()[:limit]) if limit is not None else list(container.keys())
    prefix = path.strip("/")
    logger().info("found %d node(s) under %s on %s", len(keys), prefix or "/", credentials.target)
    return [f"{prefix}/{key}" if prefix else key for key in keys]


def _nbytes(data: Any) -> int | None:
    try:
        nbytes = getattr(data, "nbytes", None)
    except NotImplementedError:  # a dask DataFrame: unknown without computing it
        return None
    if isinstance(nbytes, numbers.Integral):
        return int(nbytes)
    usage = getattr(data, "memory_usage", None)  # pandas
    if callable(usage) and type(data).__module__.startswith("pandas"):
        return int(usage(index=True).sum())
    return None


def describe(data: Any, node, family: str | None = None) -> dict:
    """A small summary of one write, for logs and the markdown artifact."""
    shape = getattr(data, "shape", None)
    if shape is not None and not all(isinstance(n, numbers.Integral) for n in shape):
        shape = None  # e.g. a dask DataFrame's unknown row count
    dtype = getattr(data, "dtype", None)
    return {
        "path": node.path,
        "uri": node.uri,
        "family": family or node.structure_family,
        "type": f"{type(data).__module__.split('.')[0]}.{type(data).__name__}",
        "shape": tuple(int(n) for n in shape) if shape is not None else None,
        "dtype": str(dtype) if dtype is not None else None,
        "bytes": _nbytes(data),
    }


def write(credentials: TiledCredentials, path: str, data: Any, metadata: dict | None = None,
          specs: list | None = None, on_conflict: str = "error") -> dict:
    """Write ``data`` as the node ``path`` ("container/key"); returns ``describe()`` of it."""
    parent_path, key = split_node_path(path)
    writer = _writers.writer_for(data)  # unsupported types fail before any request
    check_on_conflict(on_conflict)
    parent = credentials.node(parent_path)
    if parent.structure_family != "container":
        raise TypeError(f"{parent_path or '/'} is a {parent.structure_family} node; writes go into containers")
    node = _writers.write(parent, key, data, metadata=metadata, specs=specs, on_conflict=on_conflict)
    summary = describe(data, node, writer.family)
    logger().info("wrote %s %s as %s node %s on %s (on_conflict=%s)", summary["type"], summary["shape"] or "",
                  writer.family, node.path, credentials.target, on_conflict)
    return summary
