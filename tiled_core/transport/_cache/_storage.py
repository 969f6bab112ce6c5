"""Entries and their bodies in the cache file, on a connection the caller holds in a transaction.

A body is a BLOB in a table of its own, written and read in pieces straight
from/into the caller's buffer, with a CRC-32 to tell a damaged one.
"""

from __future__ import annotations

import json
import sqlite3
import zlib

__all__ = ["Damaged", "insert_entry", "make_room", "read_blob", "remove_entries"]

_PIECE = 8 << 20  # bytes moved per BLOB read/write call


class Damaged(Exception):
    """One entry does not match what was stored with it."""


def insert_entry(conn: sqlite3.Connection, key: str, etag: str, status: int, headers: list[tuple[str, str]],
                 body: memoryview, now: float) -> None:
    """Add an entry and its body (no entry may have ``key``; inside the caller's write transaction)."""
    size = body.nbytes
    body_id = conn.execute("INSERT INTO bodies (body) VALUES (zeroblob(?))", (size,)).lastrowid
    checksum = 0
    if size:
        with conn.blobopen("bodies", "body", body_id) as blob:
            for start in range(0, size, _PIECE):
                piece = body[start:start + _PIECE]
                blob.write(piece)
                checksum = zlib.crc32(piece, checksum)
    conn.execute(
        "INSERT INTO responses (cache_key, etag, status_code, headers, size, checksum, time_created, "
        "time_last_accessed, time_validated, body_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (key, etag, status, json.dumps(headers), size, checksum, now, now, now, body_id),
    )


def make_room(conn: sqlite3.Connection, incoming: int, capacity: int) -> None:
    """Evict the least recently used entries until ``incoming`` more bytes fit in ``capacity``."""
    (total,) = conn.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()
    excess = total + incoming - capacity
    if excess <= 0:
        return
    victims = []
    for victim, size in conn.execute("SELECT cache_key, size FROM responses ORDER BY time_last_accessed, rowid"):
        victims.append(victim)
        excess -= size
        if excess <= 0:
            break
    remove_entries(conn, victims)


def remove_entries(conn: sqlite3.Connection, keys: list[str]) -> None:
    """Delete entries and their bodies (inside the caller's write transaction)."""
    for key in keys:
        row = conn.execute("SELECT body_id FROM responses WHERE cache_key = ?", (key,)).fetchone()
        if row is not None:
            conn.execute("DELETE FROM responses WHERE cache_key = ?", (key,))
            conn.execute("DELETE FROM bodies WHERE id = ?", row)


def read_blob(conn: sqlite3.Connection, rowid: int, size: int, checksum: int,
              out: memoryview | None) -> bytes | bool:
    """The body (or True once copied into ``out``); Damaged when it is not what was stored."""
    try:
        blob = conn.blobopen("bodies", "body", rowid, readonly=True)
    except sqlite3.OperationalError as exc:  # no such row: the body went missing
        if size == 0 and checksum == 0:
            return b"" if out is None else True
        raise Damaged(f"its body is missing ({exc})") from None
    with blob:
        if len(blob) != size:
            raise Damaged(f"its body has {len(blob)} bytes, {size} were stored")
        crc = 0
        pieces = []
        for start in range(0, size, _PIECE):
            piece = blob.read(_PIECE)
            crc = zlib.crc32(piece, crc)
            if out is None:
                pieces.append(piece)
            else:
                out[start:start + len(piece)] = piece
    if crc != checksum:
        raise Damaged("its body does not match its checksum")
    return b"".join(pieces) if out is None else True

