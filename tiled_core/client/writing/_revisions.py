"""Earlier versions of a node's metadata, which the server keeps on every update."""

from __future__ import annotations

from ...transport import Session

__all__ = ["MetadataRevisions"]

_PAGE = 300


class MetadataRevisions:
    """A read-only sequence of a node's past metadata, oldest first.

    Each entry is the server's document: ``{"revision_number": n, "attributes":
    {"metadata", "specs", "time_updated"}}``. Like the reference client's:
    ``len()``, ``[i]`` (negative counts from the end), ``[start:stop]``, and
    ``delete_revision(n)`` (by revision number).
    """

    def __init__(self, session: Session, path: str) -> None:
        self._session = session
        self._route = f"revisions/{path}" if path else "revisions/"

    def __repr__(self) -> str:
        return f"<MetadataRevisions {self._route[len('revisions/'):] or '/'}>"

    def _page(self, offset: int, limit: int) -> dict:
        return self._session.get_document(self._route, [("page[offset]", str(offset)), ("page[limit]", str(limit))])

    def __len__(self) -> int:
        return int(self._page(0, 0)["meta"]["count"])

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self)) if _needs_length(index) else (index.start or 0, index.stop, 1)
            if step != 1:
                raise ValueError("revision slices take no step")
            return self._range(start, stop)
        if not isinstance(index, int):
            raise TypeError(f"revisions are indexed by int or slice, not {type(index).__name__}")
        if index < 0:
            index += len(self)
        data = self._page(index, 1)["data"] if index >= 0 else []
        if not data:
            raise IndexError("revision index out of range")
        return data[0]

    def _range(self, start: int, stop: int | None) -> list[dict]:
        result: list[dict] = []
        while stop is None or start < stop:
            limit = _PAGE if stop is None else min(_PAGE, stop - start)
            data = self._page(start, limit)["data"]
            result.extend(data)
            start += len(data)
            if len(data) < limit:
                break
        return result

    def __iter__(self):
        return iter(self._range(0, None))

    def delete_revision(self, n: int) -> None:
        """Delete the revision numbered ``n`` (its ``revision_number``, not its position)."""
        self._session.send("DELETE", self._route, params=[("number", str(int(n)))])


def _needs_length(index: slice) -> bool:
    return any(v is not None and v < 0 for v in (index.start, index.stop)) or index.step not in (None, 1)
