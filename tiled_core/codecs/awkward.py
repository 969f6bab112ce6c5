"""Awkward arrays as a zip of their buffers (``application/zip``).

The server packs one uncompressed zip entry per buffer, named as
``awkward.to_buffers`` names them (``node0-offsets``, ``node1-data``, ...);
with the ``form`` and ``length`` from the node's structure they rebuild the array.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from ..transport import MalformedResponse

ZIP = "application/zip"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length
_LOCAL_SIGNATURE = b"PK\x03\x04"

__all__ = [
    "ZIP", "decode_buffers_zip", "encode_buffers_zip", "decode_awkward_zip", "array_from_buffers",
    "pack_awkward", "expected_buffers",
]


def decode_buffers_zip(body: bytes | memoryview, expected: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
    """Zip bytes -> ``{buffer key: 1-D array}`` for the ``expected`` keys and dtypes.

    Stored (uncompressed) entries are viewed in place, not copied, unless
    misaligned for their dtype. Entries not asked for are ignored (the server
    matches keys by prefix). A body that is not a complete zip, a missing entry,
    a CRC mismatch, or an entry whose size is not a whole number of items is
    MalformedResponse.
    """
    view = memoryview(body).cast("B")
    try:
        archive = zipfile.ZipFile(io.BytesIO(view))
        entries = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as exc:  # e.g. "zip file version 8.4"
        raise MalformedResponse(f"awkward payload is not a complete zip archive ({exc})") from None
    missing = [key for key in expected if key not in entries]
    if missing:
        raise MalformedResponse(f"awkward payload lacks buffers {missing}")
    result = {}
    for key, dtype in expected.items():
        dtype = np.dtype(dtype)
        info = entries[key]
        if info.file_size % dtype.itemsize:
            raise MalformedResponse(f"awkward buffer {key!r} has {info.file_size} bytes, not a multiple of {dtype}")
        raw = _entry_bytes(archive, info, view)
        if zlib.crc32(raw) != info.CRC:
            raise MalformedResponse(f"awkward buffer {key!r} is corrupt (CRC mismatch)")
        array = np.frombuffer(raw, dtype=dtype)
        if array.ctypes.data % dtype.alignment:
            array = array.copy()  # awkward's kernels expect aligned buffers
        result[key] = array
    return result


def _entry_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, view: memoryview):
    if info.flag_bits & 0x41:  # encrypted (bit 0) or strongly encrypted (bit 6): zipfile raises RuntimeError
        raise MalformedResponse(f"awkward buffer {info.filename!r} is marked encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        try:
            return archive.read(info)
        # zlib.error: a garbled deflate stream; NotImplementedError: a compression method zipfile lacks
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error, NotImplementedError) as exc:
            raise MalformedResponse(f"awkward buffer {info.filename!r} cannot be read ({exc})") from None
    start = info.header_offset  # from the central directory: may point anywhere, even before the start
    if start < 0 or start + _LOCAL_HEADER.size > len(view):
        raise MalformedResponse(f"awkward payload is truncated inside buffer {info.filename!r}")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(view, start)
    if signature != _LOCAL_SIGNATURE:
        raise MalformedResponse(f"awkward payload is corrupt at buffer {info.filename!r}")
    data_start = start + _LOCAL_HEADER.size + name_length + extra_length
    if data_start + info.file_size > len(view):
        raise MalformedResponse(f"awkward payload is truncated inside buffer {info.filename!r}")
    return view[data_start:data_start + info.file_size]


def encode_buffers_zip(container: Mapping[str, object]) -> bytes:
    """``{buffer key: array or bytes}`` -> zip bytes with one stored entry per buffer."""
    file = io.BytesIO()
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, buffer in container.items():
            if isinstance(buffer, np.ndarray):
                buffer = memoryview(np.ascontiguousarray(buffer).reshape(-1).view(np.uint8))
            archive.writestr(key, memoryview(buffer).cast("B") if not isinstance(buffer, bytes) else buffer)
    return file.getvalue()


def expected_buffers(form: dict) -> dict[str, np.dtype]:
    """The buffer keys (and dtypes) a form needs, named ``{form_key}-{role}`` as the server stores them."""
    import awkward as ak

    return ak.forms.from_dict(form).expected_from_buffers()


def array_from_buffers(form: dict, length: int, buffers: Mapping[str, np.ndarray]):
    """``form`` + ``length`` + buffers -> ``awkward.Array``; buffers that do not fit the form, or
    offsets, indices or tags outside their content, are MalformedResponse."""
    import awkward as ak

    try:
        array = ak.from_buffers(ak.forms.from_dict(form), length, buffers, allow_noncanonical_form=True)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MalformedResponse(f"awkward buffers do not match the form ({exc})") from None
    # from_buffers checks only buffer lengths: offsets, indices and union tags pointing outside
    # their content would be read out of bounds later. The check costs ~10 ms per 100 MB.
    problem = ak.validity_error(array)
    if problem:
        raise MalformedResponse(f"awkward buffers are inconsistent: {problem}")
    return array


def decode_awkward_zip(body: bytes | memoryview, form: dict, length: int):
    """Zip bytes + ``form`` + ``length`` -> ``awkward.Array``."""
    return array_from_buffers(form, length, decode_buffers_zip(body, expected_buffers(form)))


def pack_awkward(array) -> tuple[dict, int, dict[str, np.ndarray]]:
    """``awkward.Array`` (or anything ``ak.Array`` accepts) -> ``(form dict, length, buffers)``, packed."""
    import awkward as ak

    if not isinstance(array, ak.Array):
        try:
            array = ak.Array(array)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot make an awkward array from {type(array).__name__}: {exc}") from None
    form, length, container = ak.to_buffers(ak.to_packed(array))
    return form.to_dict(), int(length), container
