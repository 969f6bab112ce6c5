"""The server's response size limit (``response_bytesize_limit``, 300 MB by default)."""

from __future__ import annotations

from ...transport import ClientError


def too_large(error: ClientError) -> bool:
    """Whether the server refused a read because its response would exceed the size limit."""
    return error.status == 400 and "would exceed" in str(error.detail)
