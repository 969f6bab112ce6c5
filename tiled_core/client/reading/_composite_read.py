"""A composite node's parts read into one ``xarray.Dataset`` (see ``CompositeClient.read``).

Each part gives zero or more named variables: an array part one, a table
part one per wanted column. Parts are read concurrently (each is its own
request or set of requests); the dimension names are chosen once all are in.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["read_dataset"]

_ARRAYS = ("array", "sparse")


def _family(item: dict) -> str:
    family = item["attributes"].get("structure_family")
    return getattr(family, "value", family)


def _wanted(name: str, variables: list[str] | None) -> bool:
    return variables is None or name in variables


def _plan(contents: dict[str, dict], variables: list[str] | None) -> list[tuple[str, str, list[str]]]:
    """``[(part key, family, columns)]`` to read; errors for bytes parts named explicitly."""
    plan = []
    for key, item in contents.items():
        family = _family(item)
        if family == "bytes":
            if variables is not None and key in variables:
                raise ValueError(f"cannot read the bytes-family child {key!r} into an xarray.Dataset: bytes parts "
                                 "are opaque payloads; download them from the node's assets instead")
            continue
        if family == "table":
            columns = list((item["attributes"].get("structure") or {}).get("columns") or [])
            wanted = [c for c in columns if _wanted(c, variables)]
            if wanted:
                plan.append((key, family, wanted))
        elif family in (*_ARRAYS, "awkward", "ragged"):
            if _wanted(key, variables):
                plan.append((key, family, []))
        else:
            raise ValueError(f"the part {key!r} of a composite node is a {family!r} node, which has no "
                             "xarray representation")
    return plan


def _ragged_to_numpy(name: str, value) -> Any:
    import awkward
    import numpy as np

    layout = getattr(value, "_impl", value)
    try:
        return awkward.to_numpy(layout)
    except ValueError as error:
        # Jagged: pad every inner axis to its longest row with NaN.
        padded = awkward.Array(layout)
        for axis in range(1, padded.ndim):
            longest = int(awkward.max(awkward.num(padded, axis=axis), axis=None) or 0)
            padded = awkward.pad_none(padded, longest, axis=axis, clip=True)
        dense = awkward.to_numpy(awkward.fill_none(padded, np.nan))
        warnings.warn(f"Failed to convert ragged array {name!r} to numpy: {error}. "
                      "Returning it as a dense array padded with NaNs.", UserWarning, stacklevel=4)
        return dense


def _read_part(base, key: str, family: str, columns: list[str]) -> list[tuple[str, Any, Any]]:
    """``[(variable name, values, declared dims or None)]`` of one part."""
    import pandas as pd

    client = base[key]
    if family in _ARRAYS:
        structure = client.structure()
        return [(key, client.read(), getattr(structure, "dims", None) or None)]
    if family == "awkward":
        try:
            return [(key, client.read().to_numpy(), None)]
        except ValueError as error:
            raise ValueError(f"Failed to convert awkward array {key!r} to numpy: {error}") from error
    if family == "ragged":
        return [(key, _ragged_to_numpy(key, client.read()), None)]
    frame = client.read(columns)
    if hasattr(frame, "compute"):
        frame = frame.compute()
    result = []
    for column in columns:
        values = frame[column].to_numpy()
        if isinstance(frame[column].dtype, pd.StringDtype) or (
                values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string"):
            values = values.astype("U")  # numpy text, as xarray expects
        result.append((column, values, None))
    return result


def _dims(variables: list[tuple[str, Any, Any]], dim0: str | None) -> dict[str, tuple[str, ...]]:
    free = [v for v in variables if not v[2] and len(v[1].shape) > 0]
    shared = len({v[1].shape[0] for v in free}) <= 1
    if dim0 is not None and not shared:
        raise ValueError("dim0 cannot be given: the arrays' first dimensions have different lengths")
    dims = {}
    for name, values, declared in variables:
        ndim = len(values.shape)
        if declared:
            dims[name] = tuple(declared)
        elif shared:
            dims[name] = ((dim0 or "dim0",) + tuple(f"{name}_dim{i}" for i in range(1, ndim)))[:ndim]
        else:
            dims[name] = tuple(f"{name}_dim{i}" for i in range(ndim))
    return dims


def _fetch_count(base, contents: dict[str, dict], plan) -> int:
    """How many fetches reading ``plan`` makes now (no request to tell): each in-memory array's
    ``fetch_count()``, one per awkward or ragged part, a table's partitions. Lazy arrays fetch later."""
    from ..array import ArrayClient, DaskArrayClient

    total = 0
    for key, family, _ in plan:
        if family == "table":
            total += (contents[key]["attributes"].get("structure") or {}).get("npartitions", 1)
        elif family in ("awkward", "ragged"):
            total += 1
        else:
            client = base._client(contents[key])
            if isinstance(client, ArrayClient) and not isinstance(client, DaskArrayClient):
                total += client.fetch_count()
    return total


def read_dataset(base, contents: dict[str, dict], variables: list[str] | None, dim0: str | None):
    """Read the wanted parts of a composite node (``base``: it as a plain Container) into a Dataset,
    under one progress bar (interactive sessions) for all of their fetches."""
    plan = _plan(contents, variables)
    total = _fetch_count(base, contents, plan) if base.context._bars_possible() else 0
    with base.context.tracking_progress(total):
        return _read_dataset(base, plan, dim0)


def _read_dataset(base, plan, dim0: str | None):
    import xarray

    session = base.context.session
    # Arrays concurrently; tables one by one (the server's SQL storage takes one read at a time).
    arrays = [entry for entry in plan if entry[1] != "table"]
    pieces = dict(zip([e[0] for e in arrays], session.run_concurrently(lambda e: _read_part(base, *e), arrays)))
    for entry in plan:
        if entry[1] == "table":
            pieces[entry[0]] = _read_part(base, *entry)
    read = [variable for entry in plan for variable in pieces[entry[0]]]
    dims = _dims(read, dim0)
    return xarray.Dataset(data_vars={name: (dims[name], values) for name, values, _ in read})
