"""Which buffers an awkward slice needs: trace the slice on a typetracer, project the form.

Pure functions on form dicts (no requests). ``plan(form, slice)`` returns the
smaller form that still answers ``array[slice]`` and the buffer keys to fetch.
"""

from __future__ import annotations

import builtins
import copy

import numpy as np

# Node classes that own buffers and wrap one ``content``.
_WRAPPERS_WITH_BUFFERS = {
    "ListOffsetArray", "ListArray", "IndexedArray", "IndexedOptionArray", "ByteMaskedArray", "BitMaskedArray",
}
_WRAPPERS_WITHOUT_BUFFERS = {"RegularArray", "UnmaskedArray"}


def _as_range(item):
    """An integer index becomes a length-1 range: same buffers touched, but the result stays an
    array (the typetracer cannot trace some scalars, e.g. a single string)."""
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        return builtins.slice(int(item), int(item) + 1 if item != -1 else None)
    return item


def touched_form_keys(form: dict, slice) -> set[str]:
    """Form keys whose data ``array[slice]`` reads; bad fields raise here, before any request."""
    import awkward as ak

    traced = tuple(_as_range(s) for s in slice) if isinstance(slice, tuple) else _as_range(slice)
    layout, report = ak.typetracer.typetracer_with_report(ak.forms.from_dict(form))
    result = ak.Array(layout)[traced]
    if isinstance(result, (ak.Array, ak.Record)):
        ak.typetracer.touch_data(result)
    elif callable(getattr(result, "touch_data", None)):  # a scalar: a typetracer array of no dimensions
        result.touch_data()
    return set(report.data_touched)


def _contains_touched(form: dict, touched: set[str]) -> bool:
    if form.get("form_key") in touched:
        return True
    children = form.get("contents") or ([form["content"]] if "content" in form else [])
    return any(_contains_touched(child, touched) for child in children)


def project_form(form: dict, touched: set[str]) -> dict | None:
    """The part of ``form`` that reaches the touched keys (None: nothing needed).

    Only named record fields are dropped; tuples, unions and lists keep their
    shape, so positions and offsets stay valid.
    """
    cls = form["class"]
    if cls == "RecordArray":
        projected = [project_form(content, touched) for content in form["contents"]]
        if form.get("fields") is None:  # a tuple: dropping a slot would renumber the others
            if not any(p is not None for p in projected):
                return None
            contents = [p if p is not None else content for p, content in zip(projected, form["contents"])]
            return {**form, "contents": contents}
        kept = [(f, p) for f, p in zip(form["fields"], projected) if p is not None]
        if not kept:
            return None
        return {**form, "fields": [f for f, _ in kept], "contents": [p for _, p in kept]}
    if cls == "UnionArray":
        return copy.deepcopy(form) if _contains_touched(form, touched) else None
    if cls == "NumpyArray":
        return copy.deepcopy(form) if form.get("form_key") in touched else None
    if cls == "EmptyArray":
        return copy.deepcopy(form)
    if cls in _WRAPPERS_WITHOUT_BUFFERS:
        content = project_form(form["content"], touched)
        return {**form, "content": content} if content is not None else None
    if cls in _WRAPPERS_WITH_BUFFERS:
        content = project_form(form["content"], touched)
        if content is None:
            if form.get("form_key") not in touched:
                return None
            content = copy.deepcopy(form["content"])  # e.g. only list lengths: the content must still be valid
        return {**form, "content": content}
    return copy.deepcopy(form) if _contains_touched(form, touched) else None  # unknown class: take it whole


def plan(form: dict, slice) -> tuple[dict, list[str] | None]:
    """``(form to rebuild with, buffer keys to fetch)``; keys None means every buffer."""
    from ...codecs.awkward import expected_buffers

    if slice is Ellipsis or slice is None:
        return form, None
    touched = touched_form_keys(form, slice)
    projected = project_form(form, touched)
    if projected is None:  # nothing but the length is needed: an empty record keeps it
        projected = {"class": "RecordArray", "fields": [], "contents": [], "parameters": {}, "form_key": None}
    needed = sorted(expected_buffers(projected))
    if needed == sorted(expected_buffers(form)):
        return form, None
    return projected, needed


def has_default_form_keys(form: dict) -> bool:
    """Whether ``form``'s keys are the ones ``awkward.to_buffers`` assigns (``node0``, ``node1``, ... in order).

    The server's ``/awkward/full`` route rebuilds the array and names its
    buffers afresh that way; its buffer names match the stored form's only then.
    """
    import awkward as ak

    renamed, _, _ = ak.to_buffers(ak.forms.from_dict(form).length_zero_array())
    return renamed.to_dict() == form
