"""AwkwardClient: awkward arrays, read as ``awkward.Array``, fetching only the buffers a slice needs."""

from __future__ import annotations

import operator
from collections.abc import Mapping

from ..codecs.awkward import ZIP, array_from_buffers, decode_buffers_zip, encode_buffers_zip, expected_buffers, pack_awkward
from ..structures import AwkwardStructure
from ..transport import ClientError
from .reading._awkward_plan import has_default_form_keys, plan
from .reading._limits import too_large
from .base import BaseClient

__all__ = ["AwkwardClient"]

URL_LIMIT = 4000  # characters of form_key parameters per request (proxies cap URL length)
# Read everything through /awkward/full when a slice needs at least this share of the bytes
# (estimated from item sizes): tiled 0.2.20 serves /awkward/buffers several times slower per
# byte, because it hashes the stored buffers (as bytes) slowly for the response's ETag.
FULL_ROUTE_SHARE = 0.25


def _check_first_index(selection, length: int) -> None:
    """An integer on the first axis must be in range (the typetracer cannot tell: it knows no length)."""
    first = selection[0] if isinstance(selection, tuple) and selection else selection
    if isinstance(first, (str, bool)):
        return
    try:
        index = operator.index(first)
    except TypeError:
        return  # slices, fields, arrays, masks: awkward checks those itself
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of bounds for an awkward array of length {length}")


def _batches(keys: list[str]) -> list[list[str]]:
    """Group buffer keys so that each request's query string stays under URL_LIMIT."""
    batches: list[list[str]] = [[]]
    size = 0
    for key in keys:
        cost = len(key) + len("&form_key=")
        if batches[-1] and size + cost > URL_LIMIT:
            batches.append([])
            size = 0
        batches[-1].append(key)
        size += cost
    return batches


def _share(keys: list[str], form: dict) -> float:
    """Rough share of the array's bytes in ``keys``: item sizes, as if every buffer had the same length."""
    sizes = {key: dtype.itemsize for key, dtype in expected_buffers(form).items()}
    return sum(sizes.get(key, 0) for key in keys) / max(sum(sizes.values()), 1)


class AwkwardClient(BaseClient):
    """An awkward array node; ``read()`` and ``c[...]`` return ``awkward.Array`` objects.

    A slice is traced first (no data) to find which buffers it touches, so
    ``c["field"]`` downloads that field's buffers only; the slice itself is
    applied locally.
    """

    def structure(self) -> AwkwardStructure:
        if self._structure is None or isinstance(self._structure, dict):
            self._structure = AwkwardStructure.from_json(self._structure or self.item["attributes"]["structure"])
        return self._structure

    def __len__(self) -> int:
        return self.structure().length

    def __repr__(self) -> str:
        if self._structure is None and not self._item["attributes"].get("structure"):
            return super().__repr__()  # not known yet, and a repr sends no request
        structure = self.structure()
        fields = structure.form.get("fields") if structure.form.get("class") == "RecordArray" else None
        shown = ""
        if fields:
            shown = " {" + ", ".join(fields[:6]) + (", ..." if len(fields) > 6 else "") + "}"
        return f"<{type(self).__name__} {self.path or '/'}{shown} length={structure.length}>"

    # -- reads ---------------------------------------------------------------
    def _fetch(self, keys: list[str] | None, expected: dict) -> dict:
        """Buffers by key (all when ``keys`` is None): one GET, or several concurrent ones when the
        keys do not fit in one URL or the server refuses the response as too large."""
        if keys is not None and len(_batches(keys)) > 1:
            return self._fetch_groups(_batches(keys), expected)
        params = [("form_key", k) for k in keys or []]
        try:
            body = self._context.session.get_bytes(self._route("awkward/buffers"), params, accept=ZIP)
        except ClientError as error:
            if not too_large(error) or (keys is not None and len(keys) == 1):
                raise
            return self._fetch_groups([[k] for k in (keys or sorted(expected))], expected)
        return decode_buffers_zip(body, {k: expected[k] for k in keys} if keys is not None else expected)

    def _fetch_full(self, expected: dict) -> dict | None:
        """Every buffer from ``/awkward/full``; None when the server refuses it as too large.

        Much faster than ``/awkward/buffers`` for everything: tiled 0.2.20 hashes
        the response for its ETag, and hashing the stored buffers (bytes) costs
        the server many times more than hashing the arrays this route rebuilds.
        """
        try:
            body = self._context.session.get_bytes(self._route("awkward/full"), accept=ZIP)
        except ClientError as error:
            if too_large(error):
                return None
            raise
        return decode_buffers_zip(body, expected)

    def _fetch_groups(self, groups: list[list[str]], expected: dict) -> dict:
        parts = self._context.session.run_concurrently(lambda group: self._fetch(group, expected), groups)
        return {key: value for part in parts for key, value in part.items()}

    def read(self, slice=...):
        """The whole array, or ``array[slice]`` (fields, ranges, integers, ... as awkward accepts).

        Bad field names and out-of-range integers on the first axis raise before any request.
        """
        structure = self.structure()
        if slice is not Ellipsis:
            _check_first_index(slice, structure.length)
        form, keys = plan(structure.form, slice)
        expected = expected_buffers(form)
        if not expected:
            buffers = {}
        elif (keys is None or _share(keys, structure.form) >= FULL_ROUTE_SHARE) and has_default_form_keys(structure.form):
            buffers = self._fetch_full(expected_buffers(structure.form))
            if buffers is not None:
                form = structure.form  # everything arrived: rebuild it all, then slice
            else:  # too large for one response: one buffer per request
                buffers = self._fetch_groups([[key] for key in keys or sorted(expected)], expected)
        else:
            buffers = self._fetch(keys, expected)
        array = array_from_buffers(form, structure.length, buffers)
        return array if slice is Ellipsis else array[slice]

    def __getitem__(self, slice):
        return self.read(slice=slice)

    # -- writes --------------------------------------------------------------
    def write(self, container) -> None:
        """Replace the node's data: an ``awkward.Array`` of the node's form and length, or its buffers.

        Buffers (``{"node0-offsets": ..., ...}``, as ``awkward.to_buffers`` names
        them) are checked against the node's form before sending: the server
        stores whatever it is given.
        """
        structure = self.structure()
        if not isinstance(container, Mapping):
            form, length, container = pack_awkward(container)
            if length != structure.length:
                raise ValueError(f"the array has length {length}; {self.path} has length {structure.length}")
            if set(expected_buffers(form)) != set(expected_buffers(structure.form)) or not _same_form(form, structure.form):
                raise ValueError(f"the array's form does not match the form of {self.path}")
        missing = sorted(set(expected_buffers(structure.form)) - set(container))
        if missing:
            raise ValueError(f"buffers {missing} are missing for the form of {self.path}")
        self._context.session.send("PUT", self._route("awkward/full"), content=encode_buffers_zip(container),
                                   content_type=ZIP)

    # -- export ------------------------------------------------------------
    def export(self, filepath, *, format=None) -> None:
        """Download the array in a format the server offers (zip, json, arrow, parquet), streamed to a file.

        ``format`` is a media type or an extension; by default it comes from ``filepath``'s extension.
        """
        self._export(filepath, format=format, route="awkward/full")


def _same_form(a: dict, b: dict) -> bool:
    import awkward as ak

    return ak.forms.from_dict(a) == ak.forms.from_dict(b)
