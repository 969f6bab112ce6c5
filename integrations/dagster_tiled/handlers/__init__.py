"""Type handlers: how each in-memory type is written to, described and read from Tiled.

The IO manager knows no formats: it asks this table which handler serves an
output value (by its type), an input annotation (by subclass) or, for
unannotated inputs, a node (by structure family and specs).
"""

from __future__ import annotations

from ._base import Handler, HandlerTable
from .arrays import DaskArrayHandler, NumpyHandler
from .awkward import AwkwardHandler
from .sparse import SparseHandler
from .tables import DaskDataFrameHandler, PandasHandler
from .xarray import XarrayHandler

__all__ = [
    "Handler", "HandlerTable", "DEFAULT_HANDLERS",
    "NumpyHandler", "DaskArrayHandler", "PandasHandler", "DaskDataFrameHandler",
    "XarrayHandler", "AwkwardHandler", "SparseHandler",
]

DEFAULT_HANDLERS: tuple[Handler, ...] = (
    NumpyHandler(), DaskArrayHandler(), PandasHandler(), DaskDataFrameHandler(),
    XarrayHandler(), AwkwardHandler(), SparseHandler(),
)
