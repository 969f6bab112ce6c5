"""What a file holds: structure family, structure, metadata and specs, read on the client.

Each inspector has the interface of the reference's adapters used for
registration: ``Inspector.from_uris(*uris, **parameters)``, then
``structure_family``, ``structure()``, ``metadata()`` and ``specs``. The
server reads the data itself with its own readers, so a structure here must
describe the file the way the server's reader serves it (same shape, chunks
and dtype). Format libraries (tifffile, Pillow, h5py, pandas, pyarrow, zarr,
openpyxl) are imported only when a file of that format is inspected.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...structures import ArrayStructure, BuiltinDtype, StructDtype, TableStructure
from ._mimetypes import XLSX_MIMETYPE
from ._uris import path_from_uri

__all__ = ["DEFAULT_INSPECTORS_BY_MIMETYPE", "Inspector", "jsonable_metadata"]


def jsonable_metadata(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of metadata read from a file (enums, numpy values, bytes); ``None`` for what has no JSON form."""
    if _depth > 20:
        return None
    if isinstance(value, enum.Enum):
        return jsonable_metadata(value.value, _depth + 1)
    if isinstance(value, (bool, str, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return jsonable_metadata(value.item(), _depth + 1)
    if isinstance(value, np.ndarray):
        return jsonable_metadata(value.tolist(), _depth + 1) if value.size <= 10_000 else None
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    if isinstance(value, Mapping):
        return {str(k): jsonable_metadata(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable_metadata(v, _depth + 1) for v in value]
    return None


def _dtype(dtype) -> BuiltinDtype | StructDtype:
    dtype = np.dtype(dtype)
    return StructDtype.from_numpy_dtype(dtype) if dtype.fields is not None else BuiltinDtype.from_numpy_dtype(dtype)


def _whole(shape, dtype, dims=None) -> ArrayStructure:
    """An array served as one chunk."""
    shape = tuple(int(s) for s in shape)
    return ArrayStructure(data_type=_dtype(dtype), chunks=tuple((s,) for s in shape), shape=shape, dims=dims)


def _split(total: int, size: int) -> tuple[int, ...]:
    size = max(int(size), 1)
    full, rest = divmod(int(total), size)
    return (size,) * full + ((rest,) if rest else ())


def _paths(uris):
    if not uris:
        raise ValueError("give at least one file")
    return [path_from_uri(u) for u in uris]


class Inspector:
    """A file (or files) described for registration."""

    structure_family = "array"

    def __init__(self, structure, *, metadata: dict | None = None, specs: list | None = None) -> None:
        self._structure = structure
        self._metadata = dict(metadata or {})
        self.specs = list(specs or [])

    def structure(self):
        return self._structure

    def metadata(self) -> dict:
        return self._metadata

    @classmethod
    def from_uris(cls, *uris: str, **parameters):  # pragma: no cover - each format defines it
        raise NotImplementedError


# -- images and numpy files ------------------------------------------------------
def _tiff_array_shape(file) -> tuple[tuple[int, ...], np.dtype]:
    if file.is_shaped:
        shape = tuple(file.shaped_metadata[0]["shape"])
    else:
        shape = file.asarray().shape
    return shape, file.series[0].dtype


def _tiff_tags(file) -> dict:
    return jsonable_metadata({tag.name: tag.value for tag in file.pages[0].tags.values()})


class TiffInspector(Inspector):
    """One TIFF file: an array of the file's shape, its first page's tags as metadata."""

    @classmethod
    def from_uris(cls, data_uri: str, **parameters):
        import tifffile

        with tifffile.TiffFile(_paths([data_uri])[0]) as file:
            shape, dtype = _tiff_array_shape(file)
            return cls(_whole(shape, dtype), metadata=_tiff_tags(file))


def _sequence(frames_shape, dtype, count: int) -> ArrayStructure:
    """Frames stacked along a new first axis, one chunk per file."""
    shape = (count, *frames_shape)
    chunks = ((1,) * count, *((int(s),) for s in frames_shape))
    return ArrayStructure(data_type=_dtype(dtype), chunks=chunks, shape=tuple(int(s) for s in shape))


class TiffSequenceInspector(Inspector):
    """Several TIFF files, one frame each, stacked along a new first axis."""

    @classmethod
    def from_uris(cls, *data_uris: str, **parameters):
        import tifffile

        paths = _paths(data_uris)
        with tifffile.TiffFile(paths[0]) as file:
            shape, dtype = _tiff_array_shape(file)
        # Each file is one frame (of the file's own shape) along a new first axis.
        return cls(_sequence(shape, dtype, len(paths)))


def _jpeg_array(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


class JPEGInspector(Inspector):
    """One JPEG file: a (rows, columns[, channels]) uint8 array."""

    @classmethod
    def from_uris(cls, data_uri: str, **parameters):
        array = _jpeg_array(_paths([data_uri])[0])
        return cls(_whole(array.shape, array.dtype))


class JPEGSequenceInspector(Inspector):
    """Several JPEG files stacked along a new first axis."""

    @classmethod
    def from_uris(cls, *data_uris: str, **parameters):
        paths = _paths(data_uris)
        first = _jpeg_array(paths[0])
        return cls(_sequence(first.shape, first.dtype, len(paths)))


class NPYInspector(Inspector):
    """One ``.npy`` file (only its header is read)."""

    @classmethod
    def from_uris(cls, data_uri: str, **parameters):
        array = np.load(_paths([data_uri])[0], mmap_mode="r", allow_pickle=False)
        return cls(_whole(array.shape, array.dtype))


class NPYSequenceInspector(Inspector):
    """Several ``.npy`` files of one shape stacked along a new first axis."""

    @classmethod
    def from_uris(cls, *data_uris: str, **parameters):
        paths = _paths(data_uris)
        first = np.load(paths[0], mmap_mode="r", allow_pickle=False)
        return cls(_sequence(first.shape, first.dtype, len(paths)))


# -- tables --------------------------------------------------------------------------
def _table_structure(schema, npartitions: int, columns) -> TableStructure:
    from ...codecs.table import encode_schema

    return TableStructure(arrow_schema=encode_schema(schema), npartitions=npartitions,
                          columns=tuple(str(c) for c in columns))


def _frame_schema(frame):
    import pyarrow

    return pyarrow.Table.from_pandas(frame.iloc[:0]).schema


class CSVInspector(Inspector):
    """CSV files (one partition each) read as a table; ``parameters`` are ``pandas.read_csv`` options."""

    structure_family = "table"

    @classmethod
    def from_uris(cls, *data_uris: str, **parameters):
        import pandas

        paths = _paths(data_uris)
        frame = pandas.read_csv(paths[0], **parameters)
        if parameters.get("usecols"):
            frame = frame[list(parameters["usecols"])]
        return cls(_table_structure(_frame_schema(frame), len(paths), frame.columns))

    def generate_data_sources(self, mimetype, data_uri, is_directory=False, size=None, parameters=None):
        """CSV tables name their files ``data_uris`` (the server's CSV reader takes a list)."""
        from ...structures import Asset, DataSource, Management

        return [DataSource(structure_family="table", structure=self.structure(), mimetype=mimetype,
                           parameters=dict(parameters or {}), management=Management.external,
                           assets=[Asset(data_uri=data_uri, is_directory=is_directory, parameter="data_uris",
                                         num=0, size=size)])]


class CSVArrayInspector(Inspector):
    """CSV files without a header row read as one 2-D array (rows of all files, in order)."""

    @classmethod
    def from_uris(cls, *data_uris: str, **parameters):
        import pandas

        options = {"header": None, **parameters}
        frames = [pandas.read_csv(p, **options) for p in _paths(data_uris)]
        rows = tuple(len(f) for f in frames)
        joined = pandas.concat(frames, axis=0)
        kinds = {str(t) for t in joined.dtypes}
        if len(kinds) > 1 or "object" in kinds:
            records = joined.to_records(index=False)
            dtype = np.dtype([(str(n), records.dtype[n] if records.dtype[n] != object else
                               np.asarray(joined[n].astype(str).to_numpy(), dtype="U").dtype)
                              for n in records.dtype.names])
            structure = ArrayStructure(data_type=_dtype(dtype), chunks=(rows, (1,)), shape=(sum(rows), 1))
        else:
            values = joined.to_numpy()
            ncols = values.shape[1]
            structure = ArrayStructure(data_type=_dtype(values.dtype), chunks=(rows, (ncols,)),
                                       shape=(sum(rows), ncols))
        return cls(structure)


class ParquetInspector(Inspector):
    """Parquet files (one partition each) with one schema."""

    structure_family = "table"

    @classmethod
    def from_uris(cls, *data_uris: str, **parameters):
        import pyarrow.parquet

        paths = _paths(data_uris)
        schema = pyarrow.parquet.read_schema(paths[0])
        columns = [n for n in schema.names if n not in _index_columns(schema)]
        return cls(_table_structure(schema, len(paths), columns))

    def generate_data_sources(self, mimetype, data_uri, is_directory=False, size=None, parameters=None):
        """Parquet tables name their files ``data_uris``."""
        from ...structures import Asset, DataSource, Management

        return [DataSource(structure_family="table", structure=self.structure(), mimetype=mimetype,
                           parameters=dict(parameters or {}), management=Management.external,
                           assets=[Asset(data_uri=data_uri, is_directory=is_directory, parameter="data_uris",
                                         num=0, size=size)])]


def _index_columns(schema) -> set[str]:
    import json

    meta = (schema.metadata or {}).get(b"pandas")
    if not meta:
        return set()
    return {c for c in json.loads(meta).get("index_columns", []) if isinstance(c, str)}


class ArrowInspector(ParquetInspector):
    """Arrow IPC files (one partition each)."""

    @classmethod
    def from_uris(cls, *data_uris: str, **parameters):
        import pyarrow

        paths = _paths(data_uris)
        with pyarrow.memory_map(str(paths[0])) as source:
            schema = pyarrow.ipc.open_file(source).schema
        return cls(_table_structure(schema, len(paths), schema.names))


class ExcelInspector(Inspector):
    """An Excel workbook: a container with one table per sheet (the server reads the sheets)."""

    structure_family = "container"

    @classmethod
    def from_uris(cls, data_uri: str, **parameters):
        _paths([data_uri])
        return cls(None)


# -- HDF5 ----------------------------------------------------------------------------
def _hdf5_attrs(path, dataset: str | None) -> dict:
    import h5py

    with h5py.File(path, "r") as file:
        node = file[dataset] if dataset else file
        return jsonable_metadata(dict(node.attrs))


def _hdf5_array(paths, dataset: str, slice=None, squeeze: bool = False) -> ArrayStructure:
    """The structure the server gives datasets at ``dataset`` in ``paths``, concatenated along axis 0."""
    import h5py

    facts = []
    for path in paths:
        with h5py.File(path, "r") as file:
            node = file[dataset]
            if not isinstance(node, h5py.Dataset):
                raise ValueError(f"{dataset!r} in {path} is a group, not a dataset")
            facts.append((tuple(node.shape), tuple(node.chunks or node.shape), node.dtype))
    dtype = facts[0][2]
    if dtype.kind == "O":
        dtype = np.dtype("S0") if h5py.check_string_dtype(dtype) is None else np.dtype("O")
    if slice or squeeze or all((not shape) or 0 in shape for shape, _, _ in facts):
        # Selections and degenerate arrays are served as one chunk: compute the resulting shape.
        shape = (sum(s[0] for s, _, _ in facts), *facts[0][0][1:]) if facts[0][0] else ()
        probe = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.int8), shape=shape, strides=(0,) * len(shape))
        if slice:
            probe = probe[_parse_slice(slice)]
        if squeeze:
            probe = probe.squeeze()
        return _whole(probe.shape, dtype)
    first_axis = tuple(size for shape, chunks, _ in facts for size in _split(shape[0], chunks[0]))
    rest_shape = facts[0][0][1:]
    rest = tuple(_split(size, min(chunks[i + 1] for _, chunks, _ in facts)) for i, size in enumerate(rest_shape))
    shape = (sum(first_axis), *rest_shape)
    return ArrayStructure(data_type=_dtype(dtype), chunks=(first_axis, *rest), shape=tuple(int(s) for s in shape))


def _parse_slice(text):
    if not isinstance(text, str):
        return text
    parts = []
    for piece in text.strip("[]() ").split(","):
        piece = piece.strip()
        if piece == "...":
            parts.append(Ellipsis)
        elif ":" in piece:
            parts.append(slice(*[int(p) if p.strip() else None for p in piece.split(":")]))
        elif piece:
            parts.append(int(piece))
    return tuple(parts)


class HDF5Inspector(Inspector):
    """An HDF5 file: a container of its groups and datasets, or with ``dataset=`` one array.

    Several files with ``dataset=`` concatenate along the first axis.
    """

    structure_family = "container"

    @classmethod
    def from_uris(cls, *data_uris: str, dataset: str | None = None, slice=None, squeeze: bool = False,
                  **options):
        paths = _paths(data_uris)
        metadata = _hdf5_attrs(paths[0], dataset)
        if dataset is None:
            return cls(None, metadata=metadata)
        inspector = HDF5ArrayInspector(_hdf5_array(paths, dataset, slice, squeeze), metadata=metadata)
        return inspector


class HDF5ArrayInspector(Inspector):
    """A dataset inside HDF5 files (see ``HDF5Inspector``)."""


# -- Zarr ----------------------------------------------------------------------------
def _zarr_dims(array) -> tuple[str, ...] | None:
    names = getattr(getattr(array, "metadata", None), "dimension_names", None)
    if names is None:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    if names is None or any(n is None for n in names):
        return None
    return tuple(names)


class ZarrInspector(Inspector):
    """A Zarr store (a directory): an array, or a group served as a container."""

    structure_family = "container"

    @classmethod
    def from_uris(cls, data_uri: str, **parameters):
        import zarr

        store = zarr.open(str(_paths([data_uri])[0]), mode="r")
        if isinstance(store, zarr.Group):
            attrs = getattr(store, "attrs", {})
            return cls(None, metadata={"attributes": jsonable_metadata(dict(attrs))})
        chunks = tuple(_split(size, chunk) if size else (0,) for size, chunk in zip(store.shape, store.chunks))
        structure = ArrayStructure(data_type=_dtype(store.dtype), chunks=chunks,
                                   shape=tuple(int(s) for s in store.shape), dims=_zarr_dims(store))
        return ZarrArrayInspector(structure)


class ZarrArrayInspector(Inspector):
    """A Zarr array (see ``ZarrInspector``)."""


# -- registry ------------------------------------------------------------------------
DEFAULT_INSPECTORS_BY_MIMETYPE: dict[str, type[Inspector]] = {
    "image/tiff": TiffInspector,
    "multipart/related;type=image/tiff": TiffSequenceInspector,
    "image/jpeg": JPEGInspector,
    "multipart/related;type=image/jpeg": JPEGSequenceInspector,
    "application/x-npy": NPYInspector,
    "multipart/related;type=application/x-npy": NPYSequenceInspector,
    "text/csv": CSVInspector,
    "text/csv;header=present": CSVInspector,
    "multipart/related;type=text/csv": CSVInspector,
    "text/csv;header=absent": CSVArrayInspector,
    "application/x-parquet": ParquetInspector,
    "application/vnd.apache.arrow.file": ArrowInspector,
    XLSX_MIMETYPE: ExcelInspector,
    "application/x-hdf5": HDF5Inspector,
    "application/x-zarr": ZarrInspector,
}
