"""Damage a parse cache on purpose and judge what an index build makes of it.

Shared by tests/test_index_cache_damage.py (a sample of positions) and eval/bench_cache_damage.py (every
position). A trial copies a pristine cache file, damages the copy, indexes two trees with it (one loads its
snapshot row, the other, a second checkout of the same files, reads the parse rows), then indexes both
again. Each build must give exactly the index built without a cache; the trial then says how the damage
was met: unnoticed, every build served as from the intact file (``cached``), rows treated as misses and
rebuilt (``miss``), the store moved aside and rebuilt (``rebuilt``), or the cache given up for the run
(``uncached``: right, but meant for caches that cannot be written, not for damage). Anything else is
``wrong``.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reposearcher_plugin.index import ParseCache, RepoIndex, build_index
from reposearcher_plugin.index import build as build_module
from tests.conftest import write_tree

TREE = {
    "pkg/__init__.py": "from .shapes import Square\n\nVERSION = 1\n",
    "pkg/shapes.py": '''
        import math


        class Shape:
            """Something with an area."""

            def area(self):
                return 0

            @property
            def label(self):
                return "shape"


        class Square(Shape):
            def __init__(self, side):
                self.side = side

            def area(self):
                return self.side**2


        class Circle(Shape):
            def __init__(self, radius):
                self.radius = radius

            def area(self):
                return math.pi * self.radius**2


        def biggest(shapes):
            return max(shapes, key=lambda shape: shape.area())
        ''',
    "pkg/util.py": """
        from pkg.shapes import biggest


        def total_area(shapes):
            def one(shape):
                return shape.area()

            return sum(one(shape) for shape in shapes)


        def describe(shapes):
            return f"{len(shapes)} shapes, the biggest {biggest(shapes)}"
        """,
    # big enough that its parse row and the snapshot row run over onto overflow pages
    "pkg/many.py": "".join(
        f'def step_{n}(value):\n    """Step {n} of the pipeline."""\n    return value + {n}\n\n\n'
        for n in range(40)
    ),
}

OUTCOMES = ("cached", "miss", "rebuilt", "uncached", "wrong")


def describe(index: RepoIndex) -> tuple:
    """Everything an index answers from: per file its digest, names, whole parse and words, plus the name
    map."""
    files = tuple(
        (
            path,
            indexed.module,
            indexed.size,
            indexed.digest,
            indexed.names,
            tuple(indexed.parse),
            indexed.words,
        )
        for path, indexed in sorted(index.files.items())
    )
    by_name = tuple(sorted((name, tuple(paths)) for name, paths in index._by_name.items()))
    return files, by_name


def forget_worker_caches() -> None:
    """Close the connections a serial build keeps for its chunks, so no trial reads an earlier trial's file."""
    for kept in build_module._worker_caches.values():
        kept.close()
    build_module._worker_caches.clear()


@dataclass
class Bench:
    """Two checkouts of TREE, their indexes built without a cache, and a cache file holding both."""

    roots: tuple[Path, Path]
    expected: tuple[tuple, tuple]
    store_name: str
    pristine: bytes
    page_size: int
    # (table, start, end): runs of file bytes holding a stored value (a blob's pages, a names text)
    row_spans: list[tuple[str, int, int]] = field(default_factory=list)
    # (parsed, from_cache, unchanged) of each build of a trial on the intact file
    intact_stats: list[tuple[int, int, int]] = field(default_factory=list)

    def row_positions(self, table: str | None = None, header_bytes: int = 24) -> list[int]:
        """Positions of stored values, with the record bytes just before each run (the end of a key,
        which lookups read from the key's index, so a flip there goes unnoticed and does no harm)."""
        positions = set()
        for name, start, end in self.row_spans:
            if table is None or name == table:
                positions.update(range(max(0, start - header_bytes), end))
        return sorted(positions)


def make_bench(scratch: Path) -> Bench:
    first = write_tree(scratch / "checkout1", TREE)
    second = shutil.copytree(first, scratch / "checkout2")
    expected = (
        describe(build_index(first, use_cache=False, workers=1)),
        describe(build_index(second, use_cache=False, workers=1)),
    )
    cache = ParseCache(scratch / "pristine-cache")
    build_index(first, cache=cache, workers=1)  # the second checkout is left to the parse rows
    cache.close()
    forget_worker_caches()
    # One self-contained file (no -wal beside it) holding everything committed.
    single = scratch / "pristine.sqlite"
    source = sqlite3.connect(cache.path)
    target = sqlite3.connect(single)
    source.backup(target)
    source.close()
    target.close()
    pristine = single.read_bytes()
    page_size = int.from_bytes(pristine[16:18], "big") or 65536
    bench = Bench((first, second), expected, cache.path.name, pristine, page_size)
    bench.row_spans = _row_spans(single, pristine, page_size)
    intact, bench.intact_stats, gave_up = _trial_stats(bench, scratch / "intact-trial", bytes)
    assert intact and not gave_up, "the intact cache gave another index than no cache"
    return bench


def _row_spans(single: Path, pristine: bytes, page_size: int) -> list[tuple[str, int, int]]:
    """Every run of file bytes holding a stored value, overflow pages included."""
    connection = sqlite3.connect(single)
    connection.text_factory = bytes
    values = [
        ("parses", bytes(value))
        for row in connection.execute("SELECT data, names, words FROM parses")
        for value in row
    ]
    values += [("snapshots", row[0]) for row in connection.execute("SELECT data FROM snapshots")]
    connection.close()
    spans = []
    for table, value in values:
        done = 0
        while done < len(value):
            piece = value[done : done + 32]
            if done == 0:
                start = pristine.find(piece)
            else:  # the rest of a value runs on overflow pages, after each one's 4-byte next-page number
                starts = range(4, len(pristine), page_size)
                start = next((p for p in starts if pristine[p : p + len(piece)] == piece), -1)
            if not piece or start < 0:
                break
            length = 0
            limit = min(len(value) - done, (start // page_size + 1) * page_size - start)
            while length < limit and pristine[start + length] == value[done + length]:
                length += 1
            spans.append((table, start, start + length))
            done += length
    return spans


def run_trial(bench: Bench, directory: Path, damage: Callable[[bytearray], bytes]) -> str:
    """Damage a copy of the pristine file, index both checkouts twice with it; return the outcome."""
    try:
        right, stats, gave_up = _trial_stats(bench, directory, damage)
    except Exception:  # a build that raises is as bad as a wrong index: the damage stayed fatal
        return "wrong"
    if not right:
        return "wrong"
    if gave_up:
        return "uncached"
    if any(".damaged-" in path.name for path in directory.iterdir()):
        return "rebuilt"
    return "cached" if stats == bench.intact_stats else "miss"


def _trial_stats(
    bench: Bench, directory: Path, damage: Callable[[bytearray], bytes]
) -> tuple[bool, list[tuple[int, int, int]], bool]:
    """(every index right, each build's (parsed, from_cache, unchanged), a cache was given up)"""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / bench.store_name).write_bytes(damage(bytearray(bench.pristine)))
    stats = []
    gave_up = False
    for _ in range(2):
        cache = ParseCache(directory)
        try:
            for root, expected in zip(bench.roots, bench.expected, strict=True):
                index = build_index(root, cache=cache, workers=1)
                if describe(index) != expected:
                    return False, stats, gave_up
                assert index.stats is not None
                stats.append((index.stats.parsed, index.stats.from_cache, index.stats.unchanged))
                kept = build_module._worker_caches.values()
                gave_up = gave_up or not cache.usable or not all(other.usable for other in kept)
        finally:
            cache.close()
            forget_worker_caches()
    return True, stats, gave_up


def flip(position: int, mask: int = 0xFF) -> Callable[[bytearray], bytes]:
    def damage(data: bytearray) -> bytes:
        if position < len(data):
            data[position] ^= mask
        return bytes(data)

    return damage


def truncate(length: int) -> Callable[[bytearray], bytes]:
    return lambda data: bytes(data[:length])


def garbage_page(page: int, page_size: int) -> Callable[[bytearray], bytes]:
    def damage(data: bytearray) -> bytes:
        start = page * page_size
        noise = bytes((start + 7 * offset) * 31 % 251 for offset in range(page_size))
        data[start : start + page_size] = noise[: len(data[start : start + page_size])]
        return bytes(data)

    return damage
