"""What the session uses for one GET: the stored entry, its revalidation, freshness, offline use, storing the answer."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ._store import Cache

__all__ = ["CacheSlot", "CachedEntry", "CachedResponse", "storable"]


class CachedResponse(httpx.Response):
    """A response answered from the response cache (``Cache.get``, and what ``record_history()``
    shows for a request the server answered ``304 Not Modified``): the stored status, headers and body.

    ``json()`` decodes msgpack bodies too. For a read streamed straight into
    the caller's buffer the history's copy carries the headers only.
    """

    def json(self, **kwargs):
        from .._decode import decode_document

        content_type = self.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip() == "application/x-msgpack":
            where = str(self._request.url) if self._request is not None else "a cached response"
            return decode_document(self.content, content_type, url=where)
        return super().json(**kwargs)


def storable(request_headers, response_status: int, response_headers) -> bool:
    """A ``200`` with an ``ETag`` (so it can be revalidated), and no ``no-store`` either way."""
    if response_status != 200 or not response_headers.get("etag"):
        return False
    for headers in (request_headers, response_headers):
        directives = [d.strip().lower() for d in headers.get("cache-control", "").split(",")]
        if "no-store" in directives:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class CachedEntry:
    """What is known of a stored response before reading its body."""

    key: str
    etag: str
    status: int
    headers: tuple[tuple[str, str], ...]
    size: int
    validated_at: float  # when the server last confirmed this version (stored it, or answered 304)

    @property
    def content_type(self) -> str:
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return ""

    def response(self, request: httpx.Request | None, body: bytes | None = None) -> CachedResponse:
        """This entry as a ``CachedResponse`` (with ``body``, or headers only)."""
        response = CachedResponse(self.status, headers=list(self.headers), content=body, request=request)
        response.extensions["from_cache"] = True
        return response


@dataclasses.dataclass
class CacheSlot:
    """One GET's place in a cache: the stored entry to revalidate (if any), and where the answer goes."""

    cache: "Cache"
    key: str
    entry: CachedEntry | None

    def validators(self) -> dict[str, str]:
        """Headers making the GET conditional on the stored version."""
        return {"if-none-match": self.entry.etag} if self.entry is not None else {}

    def stored_body(self, out: memoryview | None = None, *, validated: bool = False):
        """The stored body (or True after filling ``out``); None/False if it changed meanwhile.

        ``validated``: the server has just confirmed it (a 304).
        """
        if self.entry is None:
            return None if out is None else False
        return self.cache.read_body(self.entry, out, validated=validated)

    def fresh(self) -> bool:
        """True when the cache's ``max_age`` lets the stored entry answer without asking the server."""
        max_age = self.cache.max_age
        return self.entry is not None and max_age is not None and time.time() - self.entry.validated_at <= max_age

    def offline(self, out: memoryview | None = None):
        """The stored body when the server is unreachable and the cache allows offline reads."""
        if not self.cache.allow_offline or self.entry is None:
            return None if out is None else False
        result = self.stored_body(out)
        if result is not None and result is not False:
            self.cache.note_offline()
        return result

    def keep(self, request_headers, status: int, headers, body) -> None:
        """Store the answer if it may be cached."""
        if storable(request_headers, status, headers):
            self.cache.store(self.key, status, headers, body)
