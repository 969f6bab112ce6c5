"""Decoding of document bodies (msgpack, JSON) and of error details."""

from __future__ import annotations

import msgpack
import orjson

from ._errors import MalformedResponse

__all__ = ["decode_document", "error_detail", "MSGPACK", "JSON"]

MSGPACK = "application/x-msgpack"
JSON = "application/json"


def decode_document(body: bytes, content_type: str, *, url: str):
    """Decode a metadata-type body by its content type; garbage is MalformedResponse."""
    media = content_type.split(";", 1)[0].strip()
    try:
        if media == MSGPACK:
            return msgpack.unpackb(body, timestamp=3)
        if media == JSON or media.endswith("+json"):
            return orjson.loads(body) if body else None
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise MalformedResponse(f"{url}: undecodable {media} body ({exc})") from None
    snippet = body[:80].decode("utf-8", "replace")
    raise MalformedResponse(f"{url}: expected a msgpack or JSON document, got {media or 'no content type'}: {snippet!r}")


def error_detail(body: bytes, content_type: str) -> str:
    """The server's error message: FastAPI's ``detail``, or the start of the text."""
    if content_type.split(";", 1)[0].strip() == JSON:
        try:
            detail = orjson.loads(body).get("detail", body.decode("utf-8", "replace"))
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, list):  # 422 validation errors
            return "; ".join(
                f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg', item)}" for item in detail
            )
        if detail is not None:
            return str(detail)
    text = body[:500].decode("utf-8", "replace").strip()
    return text or "(no detail)"
