"""xarray Datasets <-> containers with the ``xarray_dataset`` spec (the reference client's layout)."""

from __future__ import annotations

from ._base import Handler

__all__ = ["XarrayHandler"]

_VARIABLE_SPECS = (("data_vars", "xarray_data_var"), ("coords", "xarray_coord"))


def _dataset_client_types() -> tuple[type, ...]:
    try:
        from tiled_core.client import xarray as module  # issue 3's DatasetClient, once it exists
    except ImportError:
        return ()
    return tuple(t for t in (getattr(module, "DatasetClient", None), getattr(module, "DaskDatasetClient", None)) if t)


class XarrayHandler(Handler):
    """``xarray.Dataset`` <-> a container of arrays (data variables and coordinates, with dims and attrs).

    Variables backed by dask are written block by block; reads are lazy when
    the node was opened with dask clients.
    """

    type_paths = ("xarray:Dataset",)
    family = "container"
    spec = "xarray_dataset"

    def write(self, parent, key, obj, metadata):
        from tiled_core.client._conflict import INCOMPLETE_SPEC, finish_write

        # Marked incomplete until every variable is stored, like any single-node write.
        node = parent.create_container(
            key, metadata={**metadata, "attrs": dict(obj.attrs)}, specs=["xarray_dataset", INCOMPLETE_SPEC],
            on_conflict="replace",
        )
        for group, spec in _VARIABLE_SPECS:
            for name in getattr(obj, group):
                variable = obj[name]
                node.write_array(
                    variable.data, key=str(name), metadata={"attrs": dict(variable.attrs)},
                    dims=[str(d) for d in variable.dims], specs=[spec],
                )
        finish_write(node)
        return node

    def describe(self, obj, node):
        return {
            "dims": {str(k): int(v) for k, v in obj.sizes.items()},
            "data_vars": [str(n) for n in obj.data_vars],
            "coords": [str(n) for n in obj.coords],
            "bytes written": int(obj.nbytes),
        }

    def read(self, node):
        if isinstance(node, _dataset_client_types()):
            return node.read()
        import xarray as xr

        # Until tiled_core has DatasetClient: assemble the dataset from its array children.
        data_vars, coords = {}, {}
        for name, child in node.items():
            target = coords if "xarray_coord" in {s.name for s in child.specs} else data_vars
            attrs = dict(child.metadata.get("attrs") or {})
            target[name] = xr.Variable(child.dims or (), child.read(), attrs=attrs)
        return xr.Dataset(data_vars, coords=coords, attrs=dict(node.metadata.get("attrs") or {}))

    def concat(self, values, keys):
        import pandas as pd
        import xarray as xr

        return xr.concat(values, dim=pd.Index(keys, name="partition"))
