"""``Content-Encoding: blosc2`` for httpx: the Tiled server's own compression, decoded as it arrives.

httpx decodes the content codings it knows (gzip, deflate, br, zstd); a Tiled
server also offers ``blosc2`` when a client asks for it (a script setting
``context.http_client.headers["Accept-Encoding"] = "blosc2, ..."``, as the
reference client allows). httpx has no public hook for another coding, so a
decoder is added to its table (``httpx._decoders.SUPPORTED_DECODERS``, the
same table the reference client extends), only when ``blosc2`` is installed
and no decoder is registered under that name yet. httpx's default
``Accept-Encoding`` is computed when httpx loads, so default requests do not
start asking for blosc2. tiled_core's own data requests never ask for it.

A streamed body is a sequence of independent blosc2 chunks (the server
compresses each write on its own); each is decompressed as soon as it is
complete, so memory stays at about one chunk.
"""

from __future__ import annotations

import importlib.util

__all__ = ["Blosc2Decoder", "register"]

_HEADER = 32  # bytes of a blosc2 chunk header (BLOSC2_MAX_OVERHEAD): enough to read its compressed size


class Blosc2Decoder:
    """An httpx content decoder for a body of concatenated blosc2 chunks."""

    def __init__(self) -> None:
        import blosc2  # deferred: it imports numpy

        self._blosc2 = blosc2
        self._pending = bytearray()

    def _complete_chunks(self, final: bool) -> bytes:
        out = []
        view = memoryview(self._pending)
        offset = 0
        try:
            while len(view) - offset >= (1 if final else _HEADER):
                _, cbytes, _ = self._blosc2.get_cbuffer_sizes(view[offset:])
                if cbytes <= 0:
                    raise ValueError("a blosc2 chunk header with no size")
                if len(view) - offset < cbytes:
                    if final:
                        raise ValueError(f"the body ends inside a blosc2 chunk ({len(view) - offset} of {cbytes} bytes)")
                    break
                out.append(self._blosc2.decompress(view[offset:offset + cbytes]))
                offset += cbytes
        finally:
            view.release()
        del self._pending[:offset]
        return b"".join(out)

    def decode(self, data: bytes) -> bytes:
        self._pending += data
        return self._complete_chunks(final=False)

    def flush(self) -> bytes:
        return self._complete_chunks(final=True)


def register() -> None:
    """Add :class:`Blosc2Decoder` to httpx's decoders (when blosc2 is installed and none is there)."""
    if importlib.util.find_spec("blosc2") is None:
        return
    from httpx._decoders import SUPPORTED_DECODERS

    SUPPORTED_DECODERS.setdefault("blosc2", Blosc2Decoder)
