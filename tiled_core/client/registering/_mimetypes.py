"""Which mimetype a file has, from its extension (and an optional hook)."""

from __future__ import annotations

import mimetypes as _system_mimetypes
import re
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["DEFAULT_MIMETYPES_BY_FILE_EXT", "IMG_SEQUENCE_EMPTY_NAME_ROOT", "IMG_SEQUENCE_MIMETYPES",
           "IMG_SEQUENCE_STEM_PATTERNS", "XLSX_MIMETYPE", "mimetype_from_extension"]

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Extensions the operating system's table may not know (or knows differently).
DEFAULT_MIMETYPES_BY_FILE_EXT: dict[str, str] = {
    ".h5": "application/x-hdf5",
    ".hdf": "application/x-hdf5",
    ".hdf5": "application/x-hdf5",
    ".nxs": "application/x-hdf5",  # NeXus files are HDF5
    ".npy": "application/x-npy",
    ".csv": "text/csv",  # some systems say text/x-comma-separated-values
    ".parquet": "application/x-parquet",
    ".zarr": "application/x-zarr",
}

# A file whose name ends in digits before one of these extensions belongs to a sequence.
_SEQUENCE_EXTENSIONS = {".tif": "tif|tiff", ".tiff": "tif|tiff", ".jpg": "jpg|jpeg", ".jpeg": "jpg|jpeg", ".npy": "npy"}
IMG_SEQUENCE_STEM_PATTERNS: dict[str, re.Pattern] = {
    ext: re.compile(rf"^(.*?)(\d+)\.(?:{alternatives})$") for ext, alternatives in _SEQUENCE_EXTENSIONS.items()
}
IMG_SEQUENCE_MIMETYPES: dict[str, str] = {
    ".tif": "multipart/related;type=image/tiff",
    ".tiff": "multipart/related;type=image/tiff",
    ".jpg": "multipart/related;type=image/jpeg",
    ".jpeg": "multipart/related;type=image/jpeg",
    ".npy": "multipart/related;type=application/x-npy",
}
IMG_SEQUENCE_EMPTY_NAME_ROOT = "_unnamed"  # the key of a sequence of files named only by digits


def mimetype_from_extension(path: Path, by_extension: Mapping[str, str],
                            hook: Callable[[Path, str | None], str | None] | None = None) -> str | None:
    """The mimetype of ``path``: longest known compound suffix first, then the system table, then ``hook``."""
    path = Path(path)
    suffixes = path.suffixes
    found = None
    for start in range(len(suffixes)):
        candidate = "".join(suffixes[start:])
        if candidate in by_extension:
            found = by_extension[candidate]
            break
    else:
        found, _ = _system_mimetypes.guess_type(str(path))
    if hook is not None:
        found = hook(path, found)
    return found
