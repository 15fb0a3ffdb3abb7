"""The content-addressed cache: reuse across runs, commits and checkouts; safe under concurrency."""

from __future__ import annotations

import dataclasses
import multiprocessing
import shutil
from pathlib import Path

import pytest

from reposearcher_plugin.index import ParseCache, build_index
from tests.broken_tree_sitter import fresh_grammars  # noqa: F401 (a fixture, used by name)
from tests.conftest import git, write_tree

FILES = {f"pkg/mod{i}.py": f"class C{i}:\n    def m(self):\n        return {i}\n" for i in range(40)}


def _ids(index):
    return sorted(f"{path}::{entity.qualname}@{entity.start}" for path, entity in index.entities())


def test_warm_load_reads_nothing_and_gives_the_same_index(tmp_path, cache):
    root = write_tree(tmp_path / "repo", FILES)
    cold = build_index(root, cache=cache, workers=1)
    assert (cold.stats.parsed, cold.stats.from_cache, cold.stats.unchanged) == (40, 0, 0)
    warm = build_index(root, cache=cache, workers=1)
    assert (warm.stats.parsed, warm.stats.from_cache, warm.stats.unchanged) == (0, 0, 40)
    assert _ids(warm) == _ids(cold)


def test_a_warm_load_loads_no_grammar_and_a_parse_still_checks_the_runtime(
    tmp_path,
    cache,
    monkeypatch,
    fresh_grammars,  # noqa: F811
):
    # the start-up check loads every grammar (more than the rest of a warm load); a tree the snapshot holds
    # unchanged parses nothing, so it needs none, and a broken runtime cannot empty it
    from reposearcher_plugin.index import languages
    from tests.broken_tree_sitter import break_runtime

    root = write_tree(tmp_path / "repo", FILES)
    cold = build_index(root, cache=cache, workers=1)
    break_runtime(monkeypatch, "0.21 Language(ptr, name)")
    warm = build_index(root, cache=cache, workers=1)
    assert warm.stats.unchanged == 40 and _ids(warm) == _ids(cold)
    assert languages._parser_and_extractor.cache_info().currsize == 0
    (root / "pkg/new.py").write_text("def new():\n    return 0\n")
    with pytest.raises(languages.GrammarRuntimeError):
        build_index(root, cache=cache, workers=1)


def test_an_index_comes_with_its_build_stats_fixed(tmp_path, cache):
    # the index is shared by concurrent calls: nothing of it, its build's figures included, changes later
    index = build_index(write_tree(tmp_path / "repo", FILES), cache=cache)
    assert (index.stats.files, index.stats.entities) == (40, 80) == (len(index.files), index.entity_count)
    with pytest.raises(dataclasses.FrozenInstanceError):
        index.stats.parsed = 0  # type: ignore[misc]


def test_second_commit_reparses_only_changed_files(tmp_path, cache):
    root = write_tree(tmp_path / "repo", FILES)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    build_index(root, cache=cache, workers=1)
    (root / "pkg/mod3.py").write_text("class C3:\n    def renamed(self):\n        pass\n")
    (root / "pkg/new.py").write_text("def added():\n    pass\n")
    (root / "pkg/mod5.py").unlink()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two")
    second = build_index(root, cache=cache, workers=1)
    assert (second.stats.parsed, second.stats.unchanged) == (2, 38)
    assert "pkg/mod5.py" not in second.files
    assert [e.qualname for _, e in second.methods("C3", "renamed")] == ["C3.renamed"]
    assert second.methods("C3", "m") == []


def test_another_checkout_with_the_same_content_parses_nothing(tmp_path, cache):
    first = write_tree(tmp_path / "checkout1", FILES)
    build_index(first, cache=cache, workers=1)
    second = shutil.copytree(first, tmp_path / "checkout2")
    (second / "pkg/mod0.py").write_text("def changed():\n    pass\n")
    index = build_index(second, cache=cache, workers=1)
    assert (index.stats.parsed, index.stats.from_cache) == (1, 39)


def test_parallel_build_equals_serial_build(tmp_path):
    many = {f"pkg/m{i}.py": f"def f{i}():\n    pass\n" * 50 for i in range(200)}
    root = write_tree(tmp_path / "repo", many)
    serial = build_index(root, use_cache=False, workers=1)
    parallel = build_index(root, use_cache=False, workers=2)
    assert _ids(serial) == _ids(parallel)
    assert parallel.stats.parsed == 200


def test_corrupt_cache_file_is_set_aside_and_rebuilt(tmp_path):
    root = write_tree(tmp_path / "repo", FILES)
    cache = ParseCache(tmp_path / "cache")
    cache.directory.mkdir(parents=True)
    cache.path.write_bytes(b"this is not a sqlite database" * 100)
    index = build_index(root, cache=cache, workers=1)
    assert index.stats.parsed == 40
    assert len(list(cache.directory.glob(f"{cache.path.name}.damaged-*"))) == 1
    assert build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1).stats.unchanged == 40


def _index_in_process(args: tuple[str, str]) -> list[str]:
    root, cache_dir = args
    return _ids(build_index(root, cache=ParseCache(cache_dir), workers=1))


def test_several_processes_indexing_at_once_share_the_cache_safely(tmp_path):
    roots = []
    for n in range(3):
        files = dict(FILES)
        files[f"pkg/only{n}.py"] = f"def only{n}():\n    pass\n"
        roots.append(str(write_tree(tmp_path / f"repo{n}", files)))
    cache_dir = str(tmp_path / "shared-cache")
    jobs = [(root, cache_dir) for root in roots for _ in range(2)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_index_in_process, jobs)
    for (root, _), ids in zip(jobs, results, strict=True):
        assert ids == _ids(build_index(root, use_cache=False, workers=1))
    # everything the racing processes wrote is now reusable
    again = build_index(Path(roots[0]), cache=ParseCache(cache_dir), workers=1)
    assert again.stats.parsed == 0


def test_only_the_most_recently_used_tree_snapshots_are_kept(tmp_path, monkeypatch):
    import reposearcher_plugin.index.cache as cache_module

    monkeypatch.setattr(cache_module, "MAX_SNAPSHOTS", 2)
    cache = ParseCache(tmp_path / "cache")
    roots = [write_tree(tmp_path / f"commit{n}", {"m.py": f"def f{n}():\n    pass\n"}) for n in range(3)]
    for root in roots:
        build_index(root, cache=cache, workers=1)
    assert cache.snapshot_roots() == [str(roots[2].resolve()), str(roots[1].resolve())]
    again = build_index(roots[0], cache=cache, workers=1)
    assert (again.stats.parsed, again.stats.from_cache) == (0, 1)  # the evicted tree's parse is still cached


def test_tree_snapshots_are_kept_by_size_newest_first_and_the_newest_always(tmp_path, monkeypatch):
    # a batch over hundreds of commits keeps as many trees warm as fit, not a fixed two dozen
    import reposearcher_plugin.index.cache as cache_module

    cache = ParseCache(tmp_path / "cache")
    for n in range(4):
        cache.put_artifact(f"tree{n}", bytes(100))
    assert cache.artifact_keys() == ["tree3", "tree2", "tree1", "tree0"]  # 24 rows was the old cap
    monkeypatch.setattr(cache_module, "MAX_TREE_BYTES", 250)
    cache.put_artifact("tree4", bytes(100))
    assert cache.artifact_keys() == ["tree4", "tree3", "tree2"]  # 300 bytes: the third starts within 250
    cache.put_artifact("big", bytes(1000))
    assert cache.artifact_keys() == ["big"]
