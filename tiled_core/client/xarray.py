"""xarray Datasets stored as containers: the ``xarray_dataset`` spec over array children.

The layout is the reference client's: a container with spec ``xarray_dataset``
and metadata ``{"attrs": ...}``; one array child per variable, with spec
``xarray_data_var`` or ``xarray_coord``, metadata ``{"attrs": ...}`` and its
dimension names in the array structure's ``dims``.
"""

from __future__ import annotations

import copy
import threading

from ..structures import Spec
from .container import ITEM_FIELDS, Container
from .reading._wide_table import fetch_columns, group_by_dimension

__all__ = ["DaskDatasetClient", "DatasetClient", "write_xarray_dataset"]

DATASET_SPEC = "xarray_dataset"
DATA_VAR_SPEC = "xarray_data_var"
COORD_SPEC = "xarray_coord"


def _attrs(client) -> dict:
    return copy.deepcopy(dict(client.metadata_copy()[0].get("attrs") or {}))


class DaskDatasetClient(Container):
    """A container holding an xarray Dataset; ``read()`` gives one backed by dask arrays.

    It is still a Container: ``ds["temperature"]`` is the variable's array client.
    """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path or '/'}>"

    def _children(self) -> list[tuple[str, object]]:
        """``(name, client)`` of every variable: from the contents the server inlined in this node's
        item (no request), else one listing with their structures."""
        contents = (self._item["attributes"].get("structure") or {}).get("contents")
        if contents and not self._queries:
            return [(key, self._client({**item, "id": item.get("id") or key})) for key, item in contents.items()]
        return list(self._iterate(0, None, 1, None, fields=ITEM_FIELDS))

    def _variables(self, variables) -> list[tuple[str, str, object]]:
        """``(name, "coord" | "data_var", client)`` for the requested variables, in stored order."""
        if isinstance(variables, str):
            raise TypeError("variables must be a list of names, not a single string")
        wanted = None if variables is None else list(variables)
        found = []
        for name, client in self._children():
            if wanted is not None and name not in wanted:
                continue
            names = {spec.name for spec in client.specs}
            if COORD_SPEC in names:
                role = "coord"
            elif DATA_VAR_SPEC in names:
                role = "data_var"
            else:
                raise ValueError(
                    f"{client.path} is in an xarray_dataset but has neither the {COORD_SPEC!r} "
                    f"nor the {DATA_VAR_SPEC!r} spec"
                )
            found.append((name, role, client))
        if wanted is not None:
            missing = sorted(set(wanted) - {name for name, _, _ in found})
            if missing:
                raise KeyError(f"no variables {missing} in {self.path or '/'}")
        return found

    def _dataset(self, variables, optimize_wide_table: bool, eager: bool):
        import xarray

        found = self._variables(variables)
        clients = {name: client for name, _, client in found}
        if optimize_wide_table:
            tables, alone = group_by_dimension(list(clients.items()))
        else:
            tables, alone = [], list(clients)
        values = (self._read_now if eager else self._read_lazily)(clients, tables, alone)
        data_vars, coords = {}, {}
        for name, role, client in found:
            value = values[name]
            dims = client.dims
            if dims is None and getattr(value, "ndim", 0):
                raise ValueError(f"variable {client.path} has no dims in its structure")
            (coords if role == "coord" else data_vars)[name] = (tuple(dims or ()), value, _attrs(client))
        return xarray.Dataset(data_vars=data_vars, coords=coords, attrs=_attrs(self))

    def _read_now(self, clients, tables, alone) -> dict:
        session = self._context.session
        url_limit = self.URL_CHARACTER_LIMIT

        def run(job):
            kind, what = job
            if kind == "table":
                table = fetch_columns(session, self._path, what, url_limit)
                return {name: _column(table, name, clients[name]) for name in what}
            return {what: _read_eagerly(clients[what])}

        values = {}
        for part in session.run_concurrently(run, [("table", names) for names in tables] + [("array", n) for n in alone]):
            values.update(part)
        return values

    def _read_lazily(self, clients, tables, alone) -> dict:
        import dask
        import dask.array

        values = {name: clients[name].read() for name in alone}
        handle, url_limit = self._context.session_handle, self.URL_CHARACTER_LIMIT
        for names in tables:
            # One task fetches the group's table; each variable is a column of it.
            table = dask.delayed(_SharedTable(handle, self._path, tuple(names), url_limit))()
            for name in names:
                structure = clients[name].structure()
                column = dask.delayed(_column_of, pure=True)(table, name, structure.dtype, tuple(structure.shape))
                values[name] = dask.array.from_delayed(column, shape=structure.shape, dtype=structure.dtype)
        return values

    def read(self, variables=None, *, optimize_wide_table=True):
        """An ``xarray.Dataset`` of all variables (or the named ones), lazily backed by dask arrays.

        With ``optimize_wide_table`` (default), the short 1-D variables of each
        dimension are fetched together, as one table, when first computed.
        """
        return self._dataset(variables, optimize_wide_table, eager=False)

    def export(self, filepath, fields=None, *, format=None) -> None:
        """Download the dataset (or the named ``fields``) in a format the server offers (its ``formats``)."""
        params = [("field", name) for name in fields or []]
        self._export(filepath, format=format, route="container/full", params=params)


class DatasetClient(DaskDatasetClient):
    """A container holding an xarray Dataset; ``read()`` gives one in memory (numpy arrays).

    The variables are fetched concurrently.
    """

    def read(self, variables=None, *, optimize_wide_table=True):
        """An in-memory ``xarray.Dataset`` of all variables (or the named ones).

        With ``optimize_wide_table`` (default), the short (under a million
        elements) 1-D variables that share a dimension are read in one request,
        as the columns of a table (a POST when the URL would pass
        ``URL_CHARACTER_LIMIT``); the others as arrays. Without, one read per variable.
        """
        return self._dataset(variables, optimize_wide_table, eager=True)


def _read_eagerly(client):
    value = client.read()
    if hasattr(value, "compute") and hasattr(value, "dask"):  # a dask array from a dask-mode child
        value = value.compute()
    return value


def _column(table, name: str, client):
    structure = client.structure()
    return _column_of(table, name, structure.dtype, tuple(structure.shape))


def _column_of(table, name: str, dtype, shape: tuple):
    """Column ``name`` of a wide-table read as a numpy array of the variable's dtype and shape."""
    import numpy

    if name not in table.column_names:
        raise ValueError(f"the server's table has no column {name!r}")
    values = numpy.asarray(table.column(name).to_numpy(zero_copy_only=False))
    if values.shape != shape:
        raise ValueError(f"the server's table gave {values.shape} values for {name!r}, expected {shape}")
    return values.astype(dtype, copy=False)


class _SharedTable:
    """A group's table, fetched once (xarray computes index coordinates when it builds the Dataset,
    and the rest later). Pickles without the table or the lock (credential sources only, in the handle)."""

    def __init__(self, handle, path, names, url_limit) -> None:
        self._args = (handle, path, names, url_limit)
        self._table = None
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            if self._table is None:
                handle, path, names, url_limit = self._args
                self._table = fetch_columns(handle.get(), path, names, url_limit)
            return self._table

    def __getstate__(self):
        return {"_args": self._args}

    def __setstate__(self, state):
        self._args = state["_args"]
        self._table = None
        self._lock = threading.Lock()


def write_xarray_dataset(client_node, dataset, key=None, *, on_conflict: str = "error"):
    """Write ``dataset`` (an ``xarray.Dataset``) under ``client_node`` as the reference client lays it out.

    Returns the new dataset's client. Variables are uploaded concurrently.
    ``on_conflict`` (for an existing ``key``): ``"error"``; ``"replace"`` deletes
    the old dataset first; ``"skip"`` keeps what is there and writes only the
    variables that are missing or whose upload never finished (a dataset
    rerun after a crash), raising Conflict when an existing variable differs.
    """
    import xarray

    from ..transport import Conflict
    from .writing._conflict import check_on_conflict

    if not isinstance(dataset, xarray.Dataset):
        raise TypeError(f"expected an xarray.Dataset, not {type(dataset).__name__}")
    check_on_conflict(on_conflict)
    node = client_node.create_container(key=key, specs=[Spec(DATASET_SPEC)], metadata={"attrs": dict(dataset.attrs)},
                                        on_conflict=on_conflict)
    if DATASET_SPEC not in {spec.name for spec in node.specs}:
        raise Conflict(409, f"{node.path} exists and is not an xarray dataset; use on_conflict='replace'", url=node.uri)
    jobs = [(name, DATA_VAR_SPEC) for name in dataset.data_vars] + [(name, COORD_SPEC) for name in dataset.coords]
    per_variable = "skip" if on_conflict == "skip" else "error"

    def write(job):
        name, spec = job
        variable = dataset[name].variable
        node.write_array(variable.data, key=str(name), metadata={"attrs": dict(variable.attrs)},
                         dims=[str(d) for d in variable.dims], specs=[Spec(spec)], on_conflict=per_variable)

    node.context.session.run_concurrently(write, jobs)
    return node
