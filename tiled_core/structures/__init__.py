"""Typed values for the structure JSON the server sends and accepts."""

from ._array import ArrayStructure, BuiltinDtype, Field, ListEqualTuple, StructDtype
from ._core import Spec, StructureFamily
from ._container import ContainerStructure
from ._table import TableStructure
from ._sparse import SparseStructure
from ._awkward import AwkwardStructure
from ._data_source import Asset, DataSource, Management, data_source_to_json
from ._ragged import RaggedStructure

__all__ = [
    "ArrayStructure", "BuiltinDtype", "StructDtype", "Field", "ListEqualTuple",
    "ContainerStructure", "Spec", "StructureFamily", "TableStructure",
    "SparseStructure", "AwkwardStructure", "RaggedStructure",
    "Asset", "DataSource", "Management", "data_source_to_json",
]
