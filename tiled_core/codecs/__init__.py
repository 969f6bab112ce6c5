"""Codecs: pure functions between bytes and in-memory objects, no I/O."""

from .array import byte_view, decode_octet_stream, encode_octet_stream, expected_nbytes

__all__ = ["byte_view", "decode_octet_stream", "encode_octet_stream", "expected_nbytes"]
