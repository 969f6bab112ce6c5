"""The layout of the cache file: its tables, their version, and making a file ready for use."""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA_VERSION", "Unusable", "prepare_schema"]

SCHEMA_VERSION = 4  # 4: bodies carry a CRC-32
_VERSION_TABLE = "tiled_core_response_cache_version"
_PAGE_SIZE = 65536  # large pages: big BLOBs read in fewer, longer runs


class Unusable(Exception):
    """The file cannot serve as this cache (not ours, or read-only and missing or outdated)."""


def prepare_schema(conn: sqlite3.Connection, readonly: bool) -> None:
    """Check the file's layout; create it (replacing an old one) unless ``readonly``. Unusable otherwise."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and _VERSION_TABLE not in tables:
        raise Unusable("the file is not a tiled_core response cache")
    version = None
    if tables:
        row = conn.execute(f"SELECT version FROM {_VERSION_TABLE}").fetchone()
        version = row[0] if row else None
    if version == SCHEMA_VERSION:
        return
    if readonly:
        raise Unusable(f"cache schema version {version}, expected {SCHEMA_VERSION}, and read-only")
    if not tables:
        conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # only takes effect on an empty file
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA journal_size_limit=67108864")
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = None
        if _VERSION_TABLE in {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}:
            row = conn.execute(f"SELECT version FROM {_VERSION_TABLE}").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:  # still (another process may have just made it)
            # A cache is disposable: an old layout is replaced, not migrated.
            for table in ("responses", "bodies", _VERSION_TABLE):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(
                "CREATE TABLE responses (cache_key TEXT PRIMARY KEY, etag TEXT NOT NULL, "
                "status_code INTEGER NOT NULL, headers TEXT NOT NULL, size INTEGER NOT NULL, "
                "checksum INTEGER NOT NULL, time_created REAL NOT NULL, time_last_accessed REAL NOT NULL, "
                "time_validated REAL NOT NULL, body_id INTEGER NOT NULL)"
            )
            conn.execute("CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            conn.execute("CREATE INDEX responses_by_last_access ON responses (time_last_accessed)")
            conn.execute(f"CREATE TABLE {_VERSION_TABLE} (version INTEGER NOT NULL)")
            conn.execute(f"INSERT INTO {_VERSION_TABLE} VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
