"""awkward arrays <-> awkward nodes."""

from __future__ import annotations

from ._base import Handler

__all__ = ["AwkwardHandler"]


class AwkwardHandler(Handler):
    """``awkward.Array`` <-> an awkward node (form, length and buffers)."""

    type_paths = ("awkward:Array",)
    family = "awkward"

    def write(self, parent, key, obj, metadata):
        return parent.write_awkward(obj, key=key, metadata=metadata, on_conflict="replace")

    def describe(self, obj, node):
        return {"length": len(obj), "type": str(obj.type), "bytes written": int(obj.nbytes)}

    def concat(self, values, keys):
        import awkward as ak

        return ak.concatenate(values)
