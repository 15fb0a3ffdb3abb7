"""The persistent, content-addressed parse cache.

One SQLite file holds four tables:

- ``parses``: a file's parse, its entity names and its words (index/identifiers.py) keyed by
  ``parser version : language module : sha1 of its bytes`` (``repo_index.content_key``). Any
  repository, any commit, any checkout path that contains the same bytes reuses it, so indexing another
  commit of a repository re-parses only the files that changed.
- ``snapshots``: per indexed root, the (size, mtime) of every file and the whole index, so an unchanged
  tree loads with one read and no hashing.
- ``tokens``: what layers above the index derive from one file's content alone (the search index's
  tokenized entity documents, tools/tokens.py), keyed by the file's content key prefixed with the
  deriving code's version; content-addressed and kept like the parses.
- ``artifacts``: what they derive from a whole tree (the BM25 term matrix of a snapshot), keyed by a hash
  of the tree's content. Of these and of the snapshots, the most recently used are kept: at most
  ``MAX_SNAPSHOTS`` rows and, newest first, ``MAX_TREE_BYTES`` per table.

SQLite gives atomic writes and safe concurrent use by several processes (WAL journal, busy timeout).
What it cannot give is trust in bytes a disk, a copy or another program changed, so the cache never
believes what it reads:

- every row carries a CRC-32 of its key and values, checked on each read: a row that fails is a miss (the
  file is parsed again and the row replaced), never a wrong name or span. CRC-32 catches every change of
  up to 32 adjacent bits and all but 2**-32 of the others, at a fraction of a warm load's time;
- the file names its schema (``application_id`` and ``user_version``): one that is not this cache of this
  schema is never read as one;
- a file SQLite reports as damaged, or one of another schema, is renamed ``<name>.damaged-<time>-<pid>``
  with one warning and a new store is started. Renames happen under an exclusive ``flock`` of a lock file
  beside the store and only while the file at the path is still the one found damaged, so processes that
  meet the same damage at once move it aside once, and none moves aside the store another just started.
  Stores are opened under the shared lock, so no rename falls between SQLite opening a file and its
  journal. The newest ``KEEP_DAMAGED`` damaged stores are kept for inspection;
- a cache that cannot be opened or written (its path is a file, its directory is read-only, the disk is
  full) is given up by that ``ParseCache`` object, with one warning per process: the index is built
  without it. A new ``ParseCache`` tries again (the disk may have room by then).
- a connection is never used across ``fork()`` (SQLite forbids it): a forked worker opens its own.

A ``ParseCache`` never raises for the state of its files: each method answers "nothing cached" instead.

The file format (the tables, the header naming the schema, the rows' CRC-32) is ``cache_format.py``. This
module, though long, is one job: the store's operations and its damage and failure handling are not two,
since every read and write runs through that handling (``_run``) and the handling exists only for them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from reposearcher_plugin.cache_home import default_cache_dir
from reposearcher_plugin.index.cache_format import (
    SCHEMA_VERSION,
    NotOurSchema,
    checksum,
    ensure_schema,
    intact,
    transaction,
)

# A snapshot row holds a whole tree's index (about 9 MB for Django), an artifact row a tree's search matrix
# (about 12 MB); batch runs index one tree per commit, so only the most recently used ones of each are
# kept, by count and by size: a batch over SWE-bench Lite's 300 commits (about 1.5 GB of snapshots and
# 1.7 GB of matrices) finds every tree warm the next time, where a fixed count of 24 rebuilt nearly all.
# Content-addressed parses and tokens stay: they are what other commits reuse.
MAX_SNAPSHOTS = 1000
MAX_TREE_BYTES = 2 << 30  # per table; the newest row is kept whatever its size
_KEYS_PER_QUERY = 500  # below SQLite's limit on the parameters of one statement
KEEP_DAMAGED = 2  # damaged stores kept for inspection; older ones are deleted so damage cannot fill a disk
_USE_RESOLUTION_S = 600

log = logging.getLogger("reposearcher.index.cache")

# Primary SQLite result codes that mean "this file is not a store we can read": the store is set aside.
# Every other failure (read-only, cannot open, I/O error, disk full, locked too long) means the cache
# cannot be used here and now: indexing goes on without it.
_DAMAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_FORMAT,
        sqlite3.SQLITE_ERROR,  # "no such table / column": a schema the header claims but the file lacks
        sqlite3.SQLITE_MISMATCH,
        sqlite3.SQLITE_SCHEMA,
        sqlite3.SQLITE_TOOBIG,
        sqlite3.SQLITE_RANGE,
    }
)

_warned: set[tuple[str, str]] = set()  # (store path, kind): warnings already given by this process
# Connections inherited over fork(): SQLite forbids using them in the child, and closing them there could
# checkpoint and delete a journal the parent still uses. Kept referenced so they are never closed.
_inherited: list[sqlite3.Connection] = []

_Result = TypeVar("_Result")


class _Unusable(Exception):
    """The cache cannot be opened or written here."""


class ParseCache:
    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / f"index-v{SCHEMA_VERSION}-m{marshal.version}.sqlite"
        self._lock_path = Path(f"{self.path}.lock")
        self._connection: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file the connection opened
        self._pid = os.getpid()
        self._disabled = False

    @property
    def usable(self) -> bool:
        """False once the cache was found unusable here: every call then answers "nothing cached"."""
        return not self._disabled

    # --- the public operations: each answers "nothing cached" rather than raise ---------------------------

    def get_parse(self, key: str) -> tuple[bytes, str, bytes] | None:
        """(encoded FileParse, "\n"-joined entity names, encoded words) for a cache key, when stored
        intact."""

        def read(connection: sqlite3.Connection) -> tuple[bytes, str, bytes] | None:
            row = connection.execute(
                "SELECT key, data, names, words, crc FROM parses WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            stored_key, data, names, words, crc = row
            if stored_key != key.encode() or not intact(crc, stored_key, data, names, words):
                self._warn_damaged_row()
                return None  # a miss: the file is parsed again and its row replaced
            return bytes(data), bytes(names).decode(), bytes(words)

        return self._run(read, None)

    def put_parses(self, items: Iterable[tuple[str, bytes, str, bytes]]) -> None:
        rows = [
            (key, data, names, words, checksum(key.encode(), data, names.encode(), words))
            for key, data, names, words in items
        ]

        def write(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.executemany(
                    "INSERT OR REPLACE INTO parses (key, data, names, words, crc) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

        self._run(write, None, writing=True)

    def get_snapshot(self, root: str) -> bytes | None:
        return self._get_recent("snapshots", "root", root)

    def put_snapshot(self, root: str, data: bytes) -> None:
        self._put_recent("snapshots", "root", root, data)

    def snapshot_roots(self) -> list[str]:
        return self._recent_keys("snapshots", "root")

    def get_tokens(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The intact ``tokens`` rows among ``keys``: key -> data (a damaged row is left out: a miss)."""
        wanted = list(dict.fromkeys(keys))

        def read(connection: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                rows = connection.execute(
                    f"SELECT key, data, crc FROM tokens WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for stored_key, data, crc in rows:
                    if not intact(crc, stored_key, data):
                        self._warn_damaged_row()
                        continue  # a miss: derived again and its row replaced
                    found[bytes(stored_key).decode()] = bytes(data)
            return found

        return self._run(read, {}) if wanted else {}

    def put_tokens(self, items: Iterable[tuple[str, bytes]]) -> None:
        rows = [(key, data, checksum(key.encode(), data)) for key, data in items]
        if not rows:
            return

        def write(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.executemany(
                    "INSERT OR REPLACE INTO tokens (key, data, crc) VALUES (?, ?, ?)", rows
                )

        self._run(write, None, writing=True)

    def get_artifact(self, key: str) -> bytes | None:
        """The intact artifact row of ``key``; a damaged one is deleted and answers None."""
        return self._get_recent("artifacts", "key", key)

    def put_artifact(self, key: str, data: bytes) -> None:
        self._put_recent("artifacts", "key", key, data)

    def artifact_keys(self) -> list[str]:
        return self._recent_keys("artifacts", "key")

    # --- the tables of whole trees (snapshots, artifacts): the most recently used are kept, at most
    # MAX_SNAPSHOTS rows and MAX_TREE_BYTES of them
    # ``table`` and ``column`` are these constants, never data, so they may stand in the SQL text.

    def _get_recent(self, table: str, column: str, key: str) -> bytes | None:
        def read(connection: sqlite3.Connection) -> bytes | None:
            row = connection.execute(
                f"SELECT {column}, data, used, crc FROM {table} WHERE {column} = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            stored_key, data, used, crc = row
            if stored_key != key.encode() or not intact(crc, stored_key, data):
                self._warn_damaged_row()
                # a row that stays bad would warn each run; the caller rebuilds and writes it again
                with contextlib.suppress(sqlite3.Error):
                    connection.execute(f"DELETE FROM {table} WHERE {column} = ? AND crc IS ?", (key, crc))
                return None
            now = time.time()
            if not isinstance(used, float | int) or now - used > _USE_RESOLUTION_S:
                # (not on every load: that write would cost more than the load itself)
                with contextlib.suppress(sqlite3.Error):  # only the eviction order depends on it
                    connection.execute(f"UPDATE {table} SET used = ? WHERE {column} = ?", (now, key))
            return bytes(data)

        return self._run(read, None, writing=True)

    def _put_recent(self, table: str, column: str, key: str, data: bytes) -> None:
        crc = checksum(key.encode(), data)

        def write(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.execute(
                    f"INSERT OR REPLACE INTO {table} ({column}, data, used, crc) VALUES (?, ?, ?, ?)",
                    (key, data, time.time(), crc),
                )
                # newest first: a row goes when it is past the count, or starts past the size. The sizes
                # are taken first (MATERIALIZED): a window over length(data) itself copies every row's
                # blob into the window's table, seconds per write with a few hundred MB kept, all of it
                # inside the write lock that every other process's writes wait on.
                connection.execute(
                    f"WITH sized AS MATERIALIZED (SELECT {column}, used, length(data) AS size FROM {table})"
                    f" DELETE FROM {table} WHERE {column} IN (SELECT {column} FROM (SELECT {column},"
                    " ROW_NUMBER() OVER newest AS place, SUM(size) OVER newest - size AS before"
                    f" FROM sized WINDOW newest AS (ORDER BY used DESC, {column}))"
                    " WHERE place > ? OR before >= ?)",
                    (MAX_SNAPSHOTS, MAX_TREE_BYTES),
                )
            # Move the freshly written pages from the write-ahead log into the database now, while we are
            # writing anyway, rather than making the next load read them through the log.
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

        self._run(write, None, writing=True)

    def _recent_keys(self, table: str, column: str) -> list[str]:
        def read(connection: sqlite3.Connection) -> list[str]:
            rows = connection.execute(f"SELECT {column} FROM {table} ORDER BY used DESC").fetchall()
            return [bytes(row[0]).decode(errors="replace") for row in rows]

        return self._run(read, [])

    def close(self) -> None:
        if self._connection is not None:
            if self._pid == os.getpid():
                self._connection.close()
            else:
                _inherited.append(self._connection)
            self._connection = None

    # --- opening, damage and failure ---------------------------------------------------------------------

    def _run(
        self, operation: Callable[[sqlite3.Connection], _Result], nothing: _Result, *, writing: bool = False
    ) -> _Result:
        """``operation`` on an open store; on damage the store is set aside and the operation tried once
        more on a new one; when the cache cannot be used, ``nothing``."""
        for attempt in range(2):
            if self._disabled:
                return nothing
            try:
                connection = self._connect(check_replaced=writing)
                return operation(connection)
            except _Unusable as error:
                self._disable(str(error))
            except (NotOurSchema, sqlite3.DatabaseError, UnicodeDecodeError) as error:
                # (UnicodeDecodeError: SQLite quoting damaged schema text in its message)
                if isinstance(error, sqlite3.DatabaseError) and not _is_damage(error):
                    self._disable(_describe(error))
                    continue
                identity = self._identity
                self._drop_connection()
                try:
                    self._set_aside(identity, _describe(error))
                except OSError as move_error:
                    self._disable(f"cannot move the damaged store aside: {move_error.strerror or move_error}")
                if attempt == 1:
                    self._disable(f"still damaged after starting a new store: {_describe(error)}")
        return nothing

    def _connect(self, *, check_replaced: bool = False) -> sqlite3.Connection:
        if self._connection is not None and self._pid != os.getpid():
            _inherited.append(self._connection)  # never used nor closed in this process
            self._connection = None
        if self._connection is not None and check_replaced and _identity(self.path) != self._identity:
            # Another process set the store aside since we opened it: what we write must reach the new one.
            self._drop_connection()
        if self._connection is None:
            self._connection = self._open()
            self._pid = os.getpid()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _Unusable(f"cannot create its directory: {error.strerror or error}") from None
        # Under a shared lock, so no store is set aside while this process opens it (between SQLite
        # opening the file and its journal, a rename would pair one file with another's journal).
        with self._locked(fcntl.LOCK_SH):
            try:
                connection = sqlite3.connect(
                    self.path, timeout=60, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as error:
                raise _Unusable(_describe(error)) from None
            self._identity = _identity(self.path)
            try:
                # Raw bytes out, so a damaged text value is a checksum mismatch rather than a decode error.
                connection.text_factory = bytes
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("PRAGMA cell_size_check=ON")  # meet damaged b-tree pages as errors
                ensure_schema(connection)
            except BaseException:
                connection.close()
                raise
        return connection

    @contextlib.contextmanager
    def _locked(self, operation: int) -> Iterator[None]:
        try:
            handle = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise _Unusable(f"cannot create its lock file: {error.strerror or error}") from None
        try:
            try:
                fcntl.flock(handle, operation)
            except OSError as error:  # a file system without locks: SQLite's own WAL locking fails there too
                raise _Unusable(f"cannot lock its lock file: {error.strerror or error}") from None
            yield
        finally:
            os.close(handle)  # releases the lock

    def _set_aside(self, identity: tuple[int, int] | None, reason: str) -> None:
        """Rename the damaged store (and its journal files) out of the way, unless it is gone already."""
        try:
            with self._locked(fcntl.LOCK_EX):
                if identity is None or _identity(self.path) != identity:
                    return  # another process moved it aside first (and may have started the new store)
                stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
                aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{os.getpid()}")
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
                self._prune_damaged()
        except _Unusable as error:
            raise OSError(str(error)) from None
        log.warning(
            "index cache %s is damaged (%s); moved it to %s and started a new one",
            self.path,
            reason,
            aside.name,
        )

    def _prune_damaged(self) -> None:
        # By name, which starts with the time it was set aside (its mtime is that of its last write).
        kept = sorted(self.directory.glob(f"{self.path.name}.damaged-*[0-9]"))
        for old in kept[:-KEEP_DAMAGED]:
            for path in (old, Path(f"{old}-wal"), Path(f"{old}-shm")):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self.close()
            self._connection = None
        self._identity = None

    def _disable(self, reason: str) -> None:
        self._disabled = True
        self._drop_connection()
        _warn_once(
            self.path,
            "unusable",
            "index cache %s cannot be used (%s); indexing without a cache",
            self.directory,
            reason,
        )

    def _warn_damaged_row(self) -> None:
        _warn_once(
            self.path,
            "row",
            "index cache %s holds damaged entries; they are ignored, computed again and replaced",
            self.path,
        )


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # raised by the sqlite3 module itself about what it read
        return not isinstance(error, sqlite3.OperationalError)
    return code & 0xFF in _DAMAGE_CODES


def _describe(error: BaseException) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "SQLite reports damaged text"
    return str(error) or type(error).__name__


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _warn_once(path: Path, kind: str, message: str, *args: object) -> None:
    if (str(path), kind) not in _warned:
        _warned.add((str(path), kind))
        log.warning(message, *args)
