"""A damaged, foreign or unwritable cache never makes an index wrong and never stops a build."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pwd
import random
import resource
import signal
import sqlite3
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.index.cache import KEEP_DAMAGED
from tests.cache_damage import (
    TREE,
    describe,
    flip,
    forget_worker_caches,
    garbage_page,
    make_bench,
    run_trial,
    truncate,
)
from tests.conftest import write_tree

CACHE_LOGGER = "reposearcher.index.cache"


@pytest.fixture(autouse=True)
def _fresh_worker_caches():
    forget_worker_caches()
    yield
    forget_worker_caches()


def _cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CACHE_LOGGER and r.levelno >= logging.WARNING]


def _damaged_copies(cache: ParseCache) -> list[Path]:
    return sorted(cache.directory.glob(f"{cache.path.name}.damaged-*[0-9]"))


def _reference(root: Path) -> tuple:
    return describe(build_index(root, use_cache=False, workers=1))


def test_byte_flips_truncations_and_garbage_pages_give_the_right_index_or_a_rebuild(tmp_path):
    """A sample of what eval/bench_cache_damage.py sweeps in full: every outcome must be a right index."""
    bench = make_bench(tmp_path)
    rng = random.Random(12)
    size = len(bench.pristine)
    in_rows = bench.row_positions()
    damages = [flip(p, rng.randrange(1, 256)) for p in rng.sample(in_rows, min(24, len(in_rows)))]
    damages += [flip(p, rng.randrange(1, 256)) for p in rng.sample(range(size), 10)]
    damages += [truncate(n) for n in (0, 50, 4096, size // 2, size - 4096, size - 1)]
    damages += [garbage_page(page, bench.page_size) for page in range(size // bench.page_size)]
    outcomes = Counter(run_trial(bench, tmp_path / "trial", damage) for damage in damages)
    assert outcomes["wrong"] == 0, outcomes
    assert outcomes["uncached"] == 0, outcomes  # damage is repaired, not answered by giving the cache up
    assert sum(outcomes.values()) == len(damages)


def test_every_flip_of_one_snapshot_byte_is_caught(tmp_path):
    """The snapshot row is the one that used to lie: each flip there must be noticed, not just survived."""
    bench = make_bench(tmp_path)
    stored = bench.row_positions("snapshots", header_bytes=0)
    positions = stored[:: max(1, len(stored) // 20)]
    outcomes = Counter(run_trial(bench, tmp_path / "trial", flip(p)) for p in positions)
    assert outcomes["wrong"] == 0, outcomes
    assert outcomes["cached"] == 0, outcomes  # every flip in the stored bytes is detected


def test_garbage_file_is_moved_aside_once_and_rebuilt(tmp_path, caplog):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    cache.directory.mkdir(parents=True)
    cache.path.write_bytes(b"this is not a sqlite database" * 300)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        index = build_index(root, cache=cache, workers=1)
        assert describe(index) == _reference(root)
        assert len(_damaged_copies(cache)) == 1
        again = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)
    assert again.stats.unchanged == len(TREE)
    warnings = _cache_warnings(caplog)
    assert len(warnings) == 1 and "damaged" in warnings[0] and "moved it to" in warnings[0], warnings


def test_only_the_newest_damaged_stores_are_kept(tmp_path):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    for round_ in range(4):
        cache.directory.mkdir(parents=True, exist_ok=True)
        cache.path.write_bytes(f"damage number {round_} ".encode() * 300)
        build_index(root, cache=ParseCache(cache.directory), workers=1)
        forget_worker_caches()
    kept = _damaged_copies(cache)
    assert len(kept) == KEEP_DAMAGED == 2
    assert [copy.read_bytes()[:15] for copy in kept] == [b"damage number 2", b"damage number 3"]


def test_garbage_written_into_pages_of_a_valid_store_is_moved_aside(tmp_path):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    build_index(root, cache=cache, workers=1)
    cache.close()
    forget_worker_caches()
    data = bytearray(cache.path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):  # every page but the header's
        data[start : start + page] = bytes(range(256)) * (page // 256)
    cache.path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{cache.path}{suffix}").unlink(missing_ok=True)
    for _ in range(2):  # used to fail on this and every later run
        index = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)
        assert describe(index) == _reference(root)
    assert len(_damaged_copies(cache)) == 1


def test_foreign_database_is_moved_aside_not_misread(tmp_path, caplog):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    cache.directory.mkdir(parents=True)
    foreign = sqlite3.connect(cache.path)
    foreign.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    foreign.execute("INSERT INTO users (name) VALUES ('someone')")
    foreign.commit()
    foreign.close()
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        for _ in range(2):
            index = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)
            assert describe(index) == _reference(root)
    assert len(_damaged_copies(cache)) == 1
    kept = sqlite3.connect(_damaged_copies(cache)[0])
    assert kept.execute("SELECT name FROM users").fetchall() == [("someone",)]  # set aside intact
    kept.close()
    assert len(_cache_warnings(caplog)) == 1


@pytest.mark.parametrize(
    "schema",
    [
        # our table names with other columns (another release's layout)
        "CREATE TABLE parses (key TEXT PRIMARY KEY, blob BLOB);"
        "CREATE TABLE snapshots (root TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL)",
        # the layout an older release wrote, with no checksums: its rows must not be trusted
        "CREATE TABLE parses (key TEXT PRIMARY KEY, data BLOB NOT NULL, names TEXT NOT NULL);"
        "CREATE TABLE snapshots (root TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL);"
        "INSERT INTO snapshots VALUES ('{root}', x'00', 0)",
    ],
    ids=["other-columns", "older-release"],
)
def test_store_with_a_foreign_schema_is_moved_aside(tmp_path, schema):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    cache.directory.mkdir(parents=True)
    foreign = sqlite3.connect(cache.path)
    foreign.executescript(schema.format(root=root.resolve()))
    foreign.close()
    for _ in range(2):
        index = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)
        assert describe(index) == _reference(root)
    assert len(_damaged_copies(cache)) == 1
    assert index.stats.unchanged == len(TREE)  # the new store works


def test_bad_marshal_row_is_a_miss_and_is_replaced(tmp_path, caplog):
    first = write_tree(tmp_path / "checkout1", TREE)
    cache = ParseCache(tmp_path / "cache")
    build_index(first, cache=cache, workers=1)
    cache.close()
    forget_worker_caches()
    store = sqlite3.connect(cache.path)
    (key,) = store.execute("SELECT key FROM parses WHERE names LIKE '%Square%'").fetchone()
    store.execute("UPDATE parses SET data = ? WHERE key = ?", (b"\xff not marshal \x00", key))
    store.commit()
    store.close()
    second = write_tree(tmp_path / "checkout2", TREE)  # no snapshot: its files come from the parse rows
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        for _ in range(2):
            index = build_index(second, cache=ParseCache(tmp_path / "cache"), workers=1)
            assert describe(index) == _reference(second)
            forget_worker_caches()
        third = write_tree(tmp_path / "checkout3", TREE)
        replaced = build_index(third, cache=ParseCache(tmp_path / "cache"), workers=1)
    assert (replaced.stats.parsed, replaced.stats.from_cache) == (0, len(TREE))  # the row was rewritten
    assert len(_cache_warnings(caplog)) == 1  # once for the store, not once per run or per row


def test_snapshot_row_with_valid_marshal_but_other_values_is_not_believed(tmp_path):
    """The silent case: the damaged row still unmarshals, but names and spans in it changed."""
    import marshal

    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    build_index(root, cache=cache, workers=1)
    cache.close()
    forget_worker_caches()
    store = sqlite3.connect(cache.path)
    (data,) = store.execute("SELECT data FROM snapshots").fetchone()
    lied = bytes(data).replace(b"Square", b"Sqvare")
    assert lied != data and isinstance(marshal.loads(lied), dict)
    store.execute("UPDATE snapshots SET data = ?", (lied,))
    store.commit()
    store.close()
    index = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)
    assert describe(index) == _reference(root)


def test_cache_directory_that_is_a_file_indexes_uncached_with_one_warning(tmp_path, caplog):
    root = write_tree(tmp_path / "repo", TREE)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be\n")
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        for directory in (blocker, blocker / "cache"):  # the path itself, and a path under a file
            for _ in range(2):
                index = build_index(root, cache=ParseCache(directory), workers=1)
                assert describe(index) == _reference(root)
                assert index.stats.parsed == len(TREE)
    assert blocker.read_text() == "a file where the cache directory should be\n"
    warnings = _cache_warnings(caplog)
    assert len(warnings) == 2 and all("without" in warning for warning in warnings), warnings


def test_parallel_build_with_an_unusable_cache_warns_once(tmp_path):
    many = {f"pkg/m{i}.py": f"def f{i}():\n    pass\n" * 400 for i in range(80)}
    root = write_tree(tmp_path / "repo", many)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    # A file handler, so the forked workers' warnings are counted too (caplog sees only this process's).
    log_file = tmp_path / "warnings.log"
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger(CACHE_LOGGER)
    logger.addHandler(handler)
    try:
        index = build_index(root, cache=ParseCache(blocker), workers=2)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert index.stats.parsed == len(many)
    assert len(log_file.read_text().splitlines()) == 1, log_file.read_text()


def _in_a_child_as_nobody(check: Callable[[], bool]) -> int:
    """Exit status of ``check()`` run in a forked child that gave up root (permissions do not stop root)."""
    child = os.fork()
    if child == 0:  # pragma: no cover - reports through its exit status only
        code = 3
        try:
            nobody = pwd.getpwnam("nobody")
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            code = 0 if check() else 1
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("existing", [False, True], ids=["empty", "with-a-store"])
def test_read_only_cache_directory_indexes_uncached(existing):
    # Not under tmp_path: that is private to root, and the check may have to run as another user.
    with tempfile.TemporaryDirectory(prefix="reposearcher-read-only-") as scratch:
        base = Path(scratch)
        base.chmod(0o755)
        root = write_tree(base / "repo", TREE)
        directory = base / "cache"
        if existing:
            build_index(root, cache=ParseCache(directory), workers=1)
            forget_worker_caches()
            (root / "pkg/util.py").write_text("def changed():\n    pass\n")  # so the build must write
        directory.mkdir(exist_ok=True)
        directory.chmod(0o555)
        expected = _reference(root)

        def check() -> bool:
            warnings: list[str] = []
            handler = logging.Handler(logging.WARNING)
            handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
            logging.getLogger(CACHE_LOGGER).addHandler(handler)
            try:
                for _ in range(2):
                    if describe(build_index(root, cache=ParseCache(directory), workers=1)) != expected:
                        return False
            finally:
                logging.getLogger(CACHE_LOGGER).removeHandler(handler)
            return len(warnings) == 1 and "without a cache" in warnings[0]

        try:
            if os.geteuid() == 0:
                assert _in_a_child_as_nobody(check) == 0
            else:
                assert check()
        finally:
            directory.chmod(0o755)


def test_full_disk_indexes_uncached_with_one_warning(tmp_path, caplog):
    """RLIMIT_FSIZE makes every write past a few KB fail as a full disk would, even for root."""
    many = {f"pkg/m{i}.py": f"class C{i}:\n" + "    def m(self):\n        pass\n" * 60 for i in range(30)}
    root = write_tree(tmp_path / "repo", many)
    expected = _reference(root)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(
        signal.SIGXFSZ, signal.SIG_IGN
    )  # a write past the limit fails, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, hard))
    try:
        with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
            for _ in range(2):
                index = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)
                assert describe(index) == expected
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert len(_cache_warnings(caplog)) == 1, _cache_warnings(caplog)
    index = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)  # room again: caching resumes
    assert describe(index) == expected


def test_two_stores_meeting_the_same_damage_move_it_aside_once(tmp_path):
    root = write_tree(tmp_path / "repo", TREE)
    directory = tmp_path / "cache"
    build_index(root, cache=ParseCache(directory), workers=1)
    forget_worker_caches()
    first, second = ParseCache(directory), ParseCache(directory)
    assert first.get_parse("no such key") is None and second.get_parse("no such key") is None  # both open
    inspect = sqlite3.connect(first.path)
    (snapshots_page,) = inspect.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'snapshots'"
    ).fetchone()
    (page_size,) = inspect.execute("PRAGMA page_size").fetchone()
    inspect.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    inspect.close()
    with open(first.path, "r+b") as handle:  # in place, so both stores still hold the damaged file
        handle.seek((snapshots_page - 1) * page_size)
        handle.write(b"\x0d" * page_size)
    index = build_index(root, cache=first, workers=1)
    assert describe(index) == _reference(root)
    assert len(_damaged_copies(first)) == 1
    # The second store meets the damage in the file it opened, finds that file already replaced, and uses
    # the new store rather than moving that aside too.
    index = build_index(root, cache=second, workers=1)
    assert describe(index) == _reference(root)
    assert index.stats.unchanged == len(TREE)
    assert len(_damaged_copies(first)) == 1


def _index_ids(args: tuple[str, str]) -> tuple:
    root, cache_dir = args
    return describe(build_index(root, cache=ParseCache(cache_dir), workers=1))


def test_processes_meeting_a_damaged_cache_at_once_all_get_the_right_index(tmp_path):
    roots = [str(write_tree(tmp_path / f"repo{n}", TREE)) for n in range(3)]
    directory = tmp_path / "shared-cache"
    cache = ParseCache(directory)
    cache.directory.mkdir(parents=True)
    cache.path.write_bytes(os.urandom(20000))
    jobs = [(root, str(directory)) for root in roots for _ in range(2)]
    with multiprocessing.get_context("fork").Pool(3) as pool:
        results = pool.map(_index_ids, jobs)
    for (root, _), result in zip(jobs, results, strict=True):
        assert result == _reference(Path(root))
    assert len(_damaged_copies(cache)) == 1
    again = build_index(Path(roots[0]), cache=ParseCache(directory), workers=1)
    assert again.stats.parsed == 0


def test_a_forked_process_opens_its_own_connection(tmp_path):
    """SQLite forbids using a connection across fork(); a serial build leaves one that forked workers inherit."""
    cache = ParseCache(tmp_path / "cache")
    assert cache.get_parse("no such key") is None
    inherited = cache._connection
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status only
        try:
            cache.get_parse("no such key")
            os._exit(0 if cache._connection is not inherited else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache._connection is inherited  # the parent's connection is untouched


def test_the_command_line_meets_a_damaged_and_an_unusable_cache_with_one_line_each(tmp_path):
    root = write_tree(tmp_path / "repo", TREE)
    damaged = ParseCache(tmp_path / "damaged")
    damaged.directory.mkdir()
    damaged.path.write_bytes(b"\x00garbage" * 1000)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for cache_dir, expected in ((damaged.directory, "is damaged"), (blocker, "indexing without a cache")):
        env = dict(os.environ, REPOSEARCHER_CACHE=str(cache_dir))
        run = subprocess.run(
            ["reposearcher", "index", str(root), "--json"], capture_output=True, text=True, env=env
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["files"] == len(TREE)
        assert "Traceback" not in run.stderr
        assert [line for line in run.stderr.splitlines() if "index cache" in line] == [
            line for line in run.stderr.splitlines() if expected in line
        ]
        assert len([line for line in run.stderr.splitlines() if expected in line]) == 1, run.stderr
