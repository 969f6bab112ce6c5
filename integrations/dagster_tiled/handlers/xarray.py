"""xarray Datasets <-> containers with the ``xarray_dataset`` spec (the reference client's layout)."""

from __future__ import annotations

from ._base import Handler

__all__ = ["XarrayHandler"]


class XarrayHandler(Handler):
    """``xarray.Dataset`` <-> a container of arrays (data variables and coordinates, with dims and attrs).

    Variables backed by dask are written block by block; reads are lazy when
    the node was opened with dask clients.
    """

    type_paths = ("xarray:Dataset",)
    family = "container"
    spec = "xarray_dataset"

    def write(self, parent, key, obj, metadata):
        from tiled_core.client.conflict import INCOMPLETE_SPEC, finish_write
        from tiled_core.client.xarray import write_xarray_dataset

        # The dataset's container is made first, with our metadata and marked incomplete;
        # write_xarray_dataset then finds it ("skip") and adds the variables; the mark goes last,
        # so a run that dies halfway leaves a dataset that says so.
        node = parent.create_container(
            key, metadata={**metadata, "attrs": dict(obj.attrs)}, specs=["xarray_dataset", INCOMPLETE_SPEC],
            on_conflict="replace",
        )
        write_xarray_dataset(parent, obj, key=key, on_conflict="skip")
        finish_write(node)
        return node

    def describe(self, obj, node):
        return {
            "dims": {str(k): int(v) for k, v in obj.sizes.items()},
            "data_vars": [str(n) for n in obj.data_vars],
            "coords": [str(n) for n in obj.coords],
            "bytes written": int(obj.nbytes),
        }

    def concat(self, values, keys):
        import pandas as pd
        import xarray as xr

        return xr.concat(values, dim=pd.Index(keys, name="partition"))
