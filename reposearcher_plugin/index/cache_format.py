"""The parse cache's file format: its four tables, the header that names its schema, every row's CRC-32,
and the write transaction (``cache.py`` is the store that runs on it: its operations, damage and failure
handling).
"""

from __future__ import annotations

import contextlib
import sqlite3
import zlib

# Bumped whenever the layout of a row changes, so an older store is set aside rather than misread. The
# marshal format is part of the name: rows written by another Python's marshal may not load here.
SCHEMA_VERSION = "6"  # 6: the tokens and artifacts tables; 5: parse rows hold each file's words
_APPLICATION_ID = 0x52504331  # "RPC1" in the file header: this file is a RepoSearcher parse cache
_USER_VERSION = int(SCHEMA_VERSION)


class NotOurSchema(Exception):
    """The open store is not a usable cache of this schema."""


def ensure_schema(connection: sqlite3.Connection) -> None:
    """Accept this cache's schema, create it in an empty file, and refuse anything else as damage."""
    if _schema_state(connection) == "ours":
        return
    with transaction(connection):  # decided again under the write lock: another process may be creating it
        state = _schema_state(connection)
        if state == "ours":
            return
        if state == "foreign":
            raise NotOurSchema("not a cache of this schema")
        connection.execute(
            "CREATE TABLE parses (key TEXT PRIMARY KEY, data BLOB NOT NULL, names TEXT NOT NULL,"
            " words BLOB NOT NULL, crc INTEGER NOT NULL)"
        )
        connection.execute(
            "CREATE TABLE snapshots"
            " (root TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL, crc INTEGER NOT NULL)"
        )
        connection.execute(
            "CREATE TABLE tokens (key TEXT PRIMARY KEY, data BLOB NOT NULL, crc INTEGER NOT NULL)"
        )
        connection.execute(
            "CREATE TABLE artifacts"
            " (key TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL, crc INTEGER NOT NULL)"
        )
        connection.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {_USER_VERSION}")


def _schema_state(connection: sqlite3.Connection) -> str:
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    user_version = connection.execute("PRAGMA user_version").fetchone()[0]
    if (application_id, user_version) == (_APPLICATION_ID, _USER_VERSION):
        return "ours"
    has_objects = connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None
    if application_id == 0 and user_version == 0 and not has_objects:
        return "empty"
    return "foreign"


def checksum(*fields: bytes) -> int:
    """CRC-32 over each field's length and bytes (the lengths keep bytes from moving between fields)."""
    crc = 0
    for field in fields:
        crc = zlib.crc32(len(field).to_bytes(8, "little"), crc)
        crc = zlib.crc32(field, crc)
    return crc


def intact(crc: object, *fields: object) -> bool:
    if not isinstance(crc, int) or not all(isinstance(field, bytes) for field in fields):
        return False
    return checksum(*fields) == crc  # type: ignore[arg-type]


class transaction:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so concurrent writers queue, not fail."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.connection.execute("COMMIT")
        else:
            with contextlib.suppress(sqlite3.Error):  # the error that got us here is the one to report
                self.connection.execute("ROLLBACK")
