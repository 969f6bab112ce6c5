"""Metadata and specs on the way to the server: JSON checks, patches, local bookkeeping. No I/O.

What crosses the wire is JSON. ``json_value`` turns user metadata into plain
JSON values the way the reference client's encoder does (numpy scalars and
arrays, ``bytes`` as a base64 data URI, paths and datetimes as strings) and
refuses, before any request, what JSON cannot carry faithfully: NaN and
infinities (the server would store ``null``), complex numbers, sets, non-string
keys, text that is not valid Unicode, integers beyond 64 bits, nesting deeper
than the JSON encoders on both sides allow, and other objects.
"""

from __future__ import annotations

import base64
import collections.abc
import copy
import math
import os
import sys
from typing import Any

import orjson

from ...structures import Spec
from ...transport import ClientError
from ._readonly import ListView
from ..metadata_update import apply_update_patch, merge

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "SpecsRefused",
    "apply_patch",
    "diff",
    "json_value",
    "merged_metadata",
    "normalize_specs_patch",
    "spec_dicts",
    "specs_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH)
MAX_SPECS = 20  # the server's limit (422 beyond it)
# orjson (ours, and the server's when it stores metadata) stops at 254 levels of nesting, and the
# request wraps metadata in a few levels of its own (a JSON Patch: body, list, operation).
MAX_DEPTH = 250
_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson encodes


def _where(path: tuple) -> str:
    return "".join(f"[{p!r}]" for p in path)


def _check_text(text: str, what: str, path: tuple) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{what}{_where(path)} is not valid Unicode text ({error.reason} at position "
                         f"{error.start}); JSON carries UTF-8 only") from None


def _check(value: Any, what: str, path: tuple = ()) -> None:
    """Raise for values JSON cannot represent faithfully, naming where they are."""
    if isinstance(value, float):  # includes numpy.float64
        if not math.isfinite(value):
            raise ValueError(f"{what}{_where(path)} is {value}: JSON cannot carry NaN or infinity "
                             "(the server would store null); use None or a string")
        return
    if isinstance(value, str):
        _check_text(value, what, path)
        return
    if isinstance(value, int) and not isinstance(value, bool) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise ValueError(f"{what}{_where(path)} is the integer {value}, beyond the 64 bits JSON numbers "
                         "carry here; store it as a string")
    if isinstance(value, (bool, int, type(None))):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{what}{_where(path)} has the key {key!r}: JSON object keys are strings")
            _check_text(key, what, path + (key,))
            _check(item, what, path + (key,))
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, what, path + (i,))
        return
    if isinstance(value, complex):
        raise TypeError(f"{what}{_where(path)} is the complex number {value!r}, which JSON cannot carry")
    numpy = sys.modules.get("numpy")  # only if the caller already uses numpy
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        if value.dtype.kind == "c":
            raise TypeError(f"{what}{_where(path)} is complex ({value.dtype}), which JSON cannot carry")
        if value.dtype.kind == "f" and not numpy.isfinite(value).all():
            raise ValueError(f"{what}{_where(path)} holds NaN or infinity, which JSON cannot carry "
                             "(the server would store null)")
        if value.dtype.kind == "O":
            for i, item in enumerate(value.ravel().tolist()):
                _check(item, what, path + (i,))


def _default(value: Any) -> Any:
    # The reference client's fallbacks, so both clients store the same JSON.
    if isinstance(value, (bytes, bytearray)):
        return "data:application/octet-stream;base64," + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            return value.tolist()
        if isinstance(value, numpy.bytes_):
            return bytes(value).decode("utf-8")
    raise TypeError


def json_value(value: Any, what: str = "metadata", max_depth: int = MAX_DEPTH) -> Any:
    """``value`` as plain JSON (dicts, lists, str, int, float, bool, None), or a clear error."""
    value = _plain(value, what, max_depth=max_depth)
    _check(value, what)
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=_default))
    except TypeError:
        raise TypeError(f"{what}{_where(_unencodable(value))} of type {type(_at(value, _unencodable(value))).__name__} "
                        "is not JSON-serialisable") from None


def _unencodable(value: Any, path: tuple = ()) -> tuple:
    """Path to the first part of ``value`` orjson refuses (for the error message)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return path
    for key, item in items:
        try:
            orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)
        except TypeError:
            return _unencodable(item, path + (key,))
    return path


def _at(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def merged_metadata(current: dict, update: collections.abc.Mapping) -> dict:
    """``current`` updated like ``dict.update``, recursively (``DELETE_KEY`` removes), as JSON."""
    if not isinstance(update, collections.abc.Mapping):
        raise ValueError(f"metadata must be a mapping (a JSON object), not {type(update).__name__}")
    return json_value(apply_update_patch(copy.deepcopy(current), _plain(update)))


def _plain(value: Any, what: str = "metadata", path: tuple = (), *, max_depth: int = MAX_DEPTH) -> Any:
    """Other mappings and sequences (e.g. the read-only views of ``node.metadata``) as dicts and lists.

    Nesting deeper than ``max_depth`` is refused here, before any recursion could overflow.
    """
    if isinstance(value, (collections.abc.Mapping, list, tuple, ListView)) and len(path) >= max_depth:
        shown = _where(path[:3]) + "..." if path else ""
        raise ValueError(f"{what}{shown} is nested more than {MAX_DEPTH} levels deep: the JSON encoders "
                         "(client and server) cannot carry it; flatten it")
    if isinstance(value, collections.abc.Mapping):
        return {k: _plain(v, what, path + (k,), max_depth=max_depth) for k, v in value.items()}
    if isinstance(value, (list, tuple, ListView)):
        return [_plain(v, what, path + (i,), max_depth=max_depth) for i, v in enumerate(value)]
    return value


def diff(old: Any, new: Any) -> list[dict]:
    """An RFC 6902 JSON Patch turning ``old`` into ``new``."""
    import jsonpatch

    return jsonpatch.JsonPatch.from_diff(old, new, dumps=orjson.dumps).patch


def apply_patch(document: Any, patch: Any, content_type: str) -> Any:
    """Apply a JSON Patch or a JSON Merge Patch to a copy of ``document``; ValueError if it cannot apply."""
    if content_type == JSON_PATCH:
        import jsonpatch
        import jsonpointer

        try:
            return jsonpatch.apply_patch(document, patch, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError,
                TypeError, AttributeError) as error:
            raise ValueError(f"{type(error).__name__}: {error}") from None
    if content_type == MERGE_PATCH:
        return merge(copy.deepcopy(document), patch, removes=None)  # RFC 7386
    raise ValueError(f"content_type must be one of {PATCH_TYPES}, not {content_type!r}")


class SpecsRefused(ClientError, ValueError):
    """Specs the server would refuse (more than 20, a repeated one, a name over 255 characters).

    Found before any request. A ValueError, and a ``ClientError`` with the
    status the server answers such specs with (422), as the reference client raises.
    """

    def __init__(self, detail: str, *, url: str = "") -> None:
        super().__init__(422, detail, url=url)


def spec_dicts(specs, *, url: str = "") -> list[dict]:
    """Specs (names, ``Spec`` objects or dicts) as their wire form, checked (``url``: the node's, for errors)."""
    if isinstance(specs, (str, Spec, dict)):
        raise TypeError("specs is a list of specs (names or Spec objects), not a single one")
    try:
        result = [Spec.coerce(s).to_json() for s in specs]
    except ValueError as error:  # a name that is empty or too long
        raise SpecsRefused(str(error), url=url) from None
    if len(result) > MAX_SPECS:
        raise SpecsRefused(f"{len(result)} specs given; the server allows at most {MAX_SPECS}", url=url)
    names = [(s["name"], s["version"]) for s in result]
    if len(set(names)) != len(names):
        raise SpecsRefused(f"specs must be unique, got {[s['name'] for s in result]}", url=url)
    return result


def specs_patch(current: list[dict], wanted: list[dict]) -> list[dict]:
    """A JSON Patch of list-level operations turning spec list ``current`` into ``wanted``.

    The server applies it to its list of spec objects, so operations must
    address whole entries (``/1``), never fields inside one (``/1/name``).
    """
    def token(spec: dict) -> str:
        return orjson.dumps([spec["name"], spec.get("version")]).decode()

    by_token = {token(s): s for s in [*current, *wanted]}
    patch = diff([token(s) for s in current], [token(s) for s in wanted])
    for op in patch:
        if "value" in op:
            op["value"] = dict(by_token[op["value"]])
    return patch


def normalize_specs_patch(specs_patch: list, content_type: str) -> list:
    """A caller's specs patch with bare names turned into spec objects (as the reference does)."""
    if content_type == MERGE_PATCH:
        return spec_dicts(specs_patch)
    result = []
    for op in specs_patch:
        if not isinstance(op, collections.abc.Mapping) or "op" not in op:
            raise ValueError(f"a JSON Patch is a list of operations like {{'op': 'add', ...}}, got {op!r}")
        op = dict(op)
        if "value" in op:
            op["value"] = Spec.coerce(op["value"]).to_json()
        result.append(op)
    return result
