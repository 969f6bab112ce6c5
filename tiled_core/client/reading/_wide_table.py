"""The 1-D variables of an xarray dataset read as one table: ``container/full`` in Arrow, a request per dimension.

A dataset of many short 1-D variables (a "wide table": one column per
detector channel, ...) costs a request per variable when each is read as an
array; the server can instead send several of a container's array children
as the columns of one Arrow table (``GET container/full/<path>?field=a&field=b``,
or the same as a POST with the field list as its JSON body when the URL would
be too long), as the reference client reads them.

The server builds that table through ``xarray``: variables on different
dimensions come out as the product of those dimensions. So variables are
grouped by their one dimension, and each group of two or more is a request.
No I/O happens here except in :func:`fetch_columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from ...codecs.table import ARROW_FILE, decode_arrow

__all__ = ["LENGTH_LIMIT", "fetch_columns", "group_by_dimension"]

LENGTH_LIMIT = 1_000_000  # longer variables are read as arrays (block by block), as the reference does
_FIELD_PARAM_CHARS = len("&field=")


def group_by_dimension(variables: Sequence[tuple[str, object]]) -> tuple[list[list[str]], list[str]]:
    """Split ``(name, array client)`` pairs into ``(groups of names read as one table, names read alone)``.

    A variable joins a group when it is 1-D and shorter than :data:`LENGTH_LIMIT`;
    a group is the variables of one dimension (same name, same length).
    """
    groups: dict[tuple, list[str]] = {}
    alone = []
    for name, client in variables:
        structure = client.structure()
        shape, dims = tuple(structure.shape), structure.dims
        if len(shape) == 1 and shape[0] < LENGTH_LIMIT and dims:
            groups.setdefault((dims[0], shape[0]), []).append(name)
        else:
            alone.append(name)
    tables = []
    for names in groups.values():
        if len(names) > 1:
            tables.append(names)
        else:
            alone.extend(names)  # one variable: an array read is as few requests and cheaper for the server
    return tables, alone


def fetch_columns(session, path: tuple[str, ...], names: Sequence[str], url_limit: int) -> "pyarrow.Table":
    """One request for the children ``names`` of the container at ``path`` as an Arrow table
    (the field list in a POST body when the GET URL would be longer than ``url_limit``)."""
    route = "container/full/" + "/".join(path)
    names = list(names)
    length = len(session.url(route)) + sum(_FIELD_PARAM_CHARS + len(quote(n, safe="")) for n in names)
    if length > url_limit:
        return decode_arrow(session.get_bytes(route, None, accept=ARROW_FILE, json=names))
    return decode_arrow(session.get_bytes(route, [("field", n) for n in names], accept=ARROW_FILE))
