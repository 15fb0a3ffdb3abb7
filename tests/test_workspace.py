"""Workspace: snapshots of a repository at a commit from clones, bare mirrors and (file://) remotes."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from reposearcher_plugin.workspace import (
    CommitNotFound,
    RepositoryNotFound,
    SnapshotCache,
    Workspace,
    WorkspaceError,
    parse_aliases,
)
from reposearcher_plugin.workspace.git import missing_objects
from tests.conftest import git, write_tree

# Raw bytes as committed. The attributes would change them under `git archive` (export-ignore drops
# `tools/`, export-subst rewrites VERSION) or a checkout (eol=crlf rewrites the .bat file).
FIRST = {
    ".gitattributes": b"tools export-ignore\nVERSION export-subst\n*.bat text eol=crlf\n",
    "VERSION": b"$Format:%H$\n",
    "pkg/__init__.py": b"",
    "pkg/core.py": b"def f():\n    return 1\n",
    "tools/build.sh": b"#!/bin/sh\necho build\n",
    "run.bat": b"echo one\necho two\n",
}
SECOND = {**FIRST, "pkg/core.py": b"def f():\n    return 2\n", "pkg/extra.py": b"X = 1\n"}


def make_repo(root: Path) -> tuple[Path, list[str]]:
    """A repository with two commits (and a third on a branch); returns it and the commit ids."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    commits = []
    for files in (FIRST, SECOND):
        write_tree(root, files)
        os.chmod(root / "tools/build.sh", 0o755)
        if not (root / "link.py").is_symlink():
            os.symlink("pkg/core.py", root / "link.py")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "c")
        commits.append(git(root, "rev-parse", "HEAD").strip())
    return root, commits


def tree_contents(root: Path) -> dict[str, bytes]:
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if not path.is_symlink():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return make_repo(tmp_path_factory.mktemp("origin") / "work")


@pytest.fixture(scope="module")
def repos(origin: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repositories directory holding every supported layout."""
    work, _ = origin
    repos = tmp_path_factory.mktemp("repos")
    git(repos, "clone", "-q", str(work), "acme__clone")  # a work tree, DIR/owner__name
    git(repos, "clone", "-q", "--bare", str(work), "acme+bare")  # bare, DIR/owner+name
    git(repos, "clone", "-q", "--bare", str(work), "acme+fetched/repo")  # DIR/owner+name/repo (mirrors)
    git(repos, "clone", "-q", "--bare", str(work), "fork__proj")  # only reachable through an alias
    (repos / "acme__linked").symlink_to(repos / "acme+fetched")  # a dataset name pointing at a mirror
    return repos


def workspace(repos: Path | None, tmp_path: Path, **options) -> Workspace:
    options.setdefault("online", False)
    return Workspace(repos, cache_dir=tmp_path / "snapshots", **options)


@pytest.mark.parametrize("repo", ["acme/clone", "acme/bare", "acme/fetched", "acme/linked"])
def test_checkout_is_the_exact_tree_from_every_layout(repos, origin, tmp_path, repo):
    _, (first, second) = origin
    ws = workspace(repos, tmp_path)
    tree = ws.checkout(repo, first)
    assert tree_contents(tree) == FIRST  # attributes not applied: stored bytes
    assert os.readlink(tree / "link.py") == "pkg/core.py"
    assert stat.S_IMODE((tree / "tools/build.sh").stat().st_mode) == 0o555
    later = ws.checkout(repo, second)
    assert later != tree and tree_contents(later) == SECOND
    assert tree_contents(tree) == FIRST  # one snapshot per commit, untouched by the other


def test_abbreviated_ids_and_refs_resolve_to_one_snapshot(repos, origin, tmp_path):
    _, (first, second) = origin
    ws = workspace(repos, tmp_path)
    assert ws.checkout("acme/bare", first[:8]) == ws.checkout("acme/bare", first.upper())
    assert ws.checkout("acme/bare", "main") == ws.checkout("acme/bare", second)
    assert sorted(entry.commit for entry in ws.cache.entries()) == sorted([first, second])
    assert ws.checkout("acme/bare", first).parent.name == first


def test_cached_snapshot_needs_no_repository(repos, origin, tmp_path):
    _, (first, _) = origin
    tree = workspace(repos, tmp_path).checkout("acme/bare", first)
    assert workspace(None, tmp_path).checkout("acme/bare", first) == tree


def test_snapshot_is_read_only(repos, origin, tmp_path):
    _, (first, _) = origin
    tree = workspace(repos, tmp_path).checkout("acme/clone", first)
    assert stat.S_IMODE((tree / "pkg/core.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((tree / "pkg").stat().st_mode) == 0o555
    assert stat.S_IMODE(tree.stat().st_mode) == 0o555
    if os.geteuid() != 0:  # root ignores permission bits
        with pytest.raises(PermissionError):
            (tree / "pkg/core.py").write_text("changed")
        with pytest.raises(PermissionError):
            (tree / "pkg/new.py").write_text("x")


def test_missing_commit_is_an_error_naming_what_and_where(repos, tmp_path):
    ws = workspace(repos, tmp_path)
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(CommitNotFound) as error:
        ws.checkout("acme/bare", missing)
    assert missing in str(error.value) and "acme/bare" in str(error.value)
    assert str(repos / "acme+bare") in str(error.value)
    with pytest.raises(CommitNotFound):
        ws.checkout("acme/bare", "no-such-branch")
    assert ws.cache.entries() == []


def test_missing_repository_is_an_error_naming_the_places_looked(repos, tmp_path):
    ws = workspace(repos, tmp_path)
    with pytest.raises(RepositoryNotFound) as error:
        ws.checkout("nobody/nothing", "main")
    message = str(error.value)
    assert "nobody/nothing" in message
    assert str(repos / "nobody__nothing") in message and str(repos / "nobody+nothing") in message
    assert "offline" in message
    assert "Put a clone or mirror of it there" in message and "Pass --repos-dir" not in message  # it was
    with pytest.raises(RepositoryNotFound):
        ws.checkout("../escape", "main")


def test_aliases_take_commits_from_another_repository(repos, origin, tmp_path):
    _, (first, _) = origin
    assert parse_aliases(["up/proj=fork/proj"]) == {"up/proj": ["fork/proj"]}
    with pytest.raises(ValueError):
        parse_aliases(["up/proj"])
    ws = workspace(repos, tmp_path, aliases=parse_aliases(["up/proj=fork/proj"]))
    assert tree_contents(ws.checkout("up/proj", first)) == FIRST
    assert ws.locate("up/proj") == repos / "fork__proj"


def _checkout_in_child(args: tuple[str, str, str, Any]) -> str:
    repos, cache_dir, commit, barrier = args
    barrier.wait()
    ws = Workspace(repos, cache_dir=cache_dir, online=False)
    tree = ws.checkout("acme/bare", commit)
    return f"{tree}|{len(tree_contents(tree))}"


def test_two_processes_asking_for_one_snapshot_both_get_it(repos, origin, tmp_path):
    _, (first, _) = origin
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            job = (str(repos), str(tmp_path / "snapshots"), first, barrier)
            results = pool.map(_checkout_in_child, [job, job])
    assert results[0] == results[1] == f"{tmp_path / 'snapshots' / first / 'tree'}|{len(FIRST)}"
    cache = SnapshotCache(tmp_path / "snapshots")
    assert [entry.commit for entry in cache.entries()] == [first]
    assert not list((tmp_path / "snapshots" / ".tmp").iterdir())  # no half-built leftovers


def test_least_recently_used_snapshots_are_evicted_over_the_cap(tmp_path):
    repo, _ = make_repo(tmp_path / "repos" / "acme__lru")
    commits = []
    for number in range(3):
        write_tree(repo, {f"more{number}.py": "x = 1\n"})
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "more")
        commits.append(git(repo, "rev-parse", "HEAD").strip())
    one = Workspace(tmp_path / "repos", cache_dir=tmp_path / "c", online=False, protect_s=0)
    first = one.checkout("acme/lru", commits[0])
    size = one.cache.entries()[0].bytes
    ws = Workspace(tmp_path / "repos", cache_dir=tmp_path / "c", max_bytes=2 * size + size // 2, protect_s=0)
    ws.checkout("acme/lru", commits[1])
    meta = {commit: tmp_path / "c" / commit / "snapshot.json" for commit in commits}
    os.utime(meta[commits[0]], (1000, 1000))
    os.utime(meta[commits[1]], (2000, 2000))
    assert ws.checkout("acme/lru", commits[0]) == first  # a use: now the most recent
    ws.checkout("acme/lru", commits[2])  # over the cap: the least recently used goes
    assert sorted(entry.commit for entry in ws.cache.entries()) == sorted([commits[0], commits[2]])
    assert not (tmp_path / "c" / commits[1]).exists()
    assert ws.cache.total_bytes() <= ws.cache.max_bytes
    # evicted snapshots come back on demand
    assert tree_contents(ws.checkout("acme/lru", commits[1]))["more1.py"] == b"x = 1\n"


def test_held_and_recently_used_snapshots_are_not_evicted(repos, origin, tmp_path):
    _, (first, second) = origin
    ws = workspace(repos, tmp_path, protect_s=0)
    with ws.hold("acme/bare", first) as tree:
        ws.checkout("acme/bare", second)
        ws.cache.max_bytes = 0
        assert ws.cache.evict(keep=second) == []  # first is held, second is kept
        assert tree.is_dir()
    assert ws.cache.evict(keep=second) == [first]
    ws.cache.protect_s = 3600
    ws.checkout("acme/bare", first)
    assert ws.cache.evict() == []  # both used within the protection window


def test_crashed_build_debris_is_cleared(repos, origin, tmp_path):
    _, (first, _) = origin
    ws = workspace(repos, tmp_path)
    stale = tmp_path / "snapshots" / ".tmp" / f"{first}.999.dead"
    (stale / "tree").mkdir(parents=True)
    incomplete = tmp_path / "snapshots" / first / "tree"  # no snapshot.json: never completed
    incomplete.mkdir(parents=True)
    tree = ws.checkout("acme/bare", first)
    assert tree_contents(tree) == FIRST and not stale.exists()


def test_partial_clone_from_a_remote_when_not_found_locally(origin, tmp_path):
    work, (first, _) = origin
    remotes = tmp_path / "remotes"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remotes / "acme" / "remote"))
    server = remotes / "acme" / "remote"
    git(server, "config", "uploadpack.allowFilter", "true")
    git(server, "config", "uploadpack.allowAnySHA1InWant", "true")
    ws = Workspace(None, cache_dir=tmp_path / "snapshots", remote=f"file://{remotes}/{{repo}}")
    clone = ws.locate("acme/remote")
    assert clone == tmp_path / "snapshots" / ".clones" / "acme+remote.git"
    assert len(missing_objects(clone, first)) == len(FIRST) + 1  # blobless (+1: the symlink blob)
    assert tree_contents(ws.checkout("acme/remote", first)) == FIRST
    assert git(clone, "config", "remote.origin.partialclonefilter").strip() == "blob:none"
    assert missing_objects(clone, first) == []  # its blobs were fetched, in one request
    # a commit made after the clone is fetched on demand
    extra = tmp_path / "extra"
    git(tmp_path, "clone", "-q", str(server), str(extra))
    write_tree(extra, {"late.py": "LATE = 1\n"})
    git(extra, "add", "-A")
    git(extra, "commit", "-q", "-m", "late")
    git(extra, "push", "-q", "origin", "HEAD:main")
    late = git(extra, "rev-parse", "HEAD").strip()
    assert tree_contents(ws.checkout("acme/remote", late))["late.py"] == b"LATE = 1\n"
    with pytest.raises(CommitNotFound):
        ws.checkout("acme/remote", "0123456789abcdef0123456789abcdef01234567")


def test_failed_clone_says_what_was_tried(tmp_path):
    ws = Workspace(tmp_path / "none", cache_dir=tmp_path / "s", remote=f"file://{tmp_path}/no/{{repo}}")
    with pytest.raises(RepositoryNotFound) as error:
        ws.checkout("acme/gone", "main")
    assert f"file://{tmp_path}/no/acme/gone" in str(error.value) and "failed" in str(error.value)
    assert "put a clone or mirror of it there" in str(error.value)  # --repos-dir was given: say what's next


def test_blobs_missing_from_a_mirror_fail_unless_allowed(tmp_path):
    work, (first, _) = make_repo(tmp_path / "src")
    mirror = tmp_path / "repos" / "acme+gappy"
    shutil.copytree(work / ".git", mirror)  # loose objects, so one can be taken away
    blob = git(work, "rev-parse", f"{first}:tools/build.sh").strip()
    (mirror / "objects" / blob[:2] / blob[2:]).unlink()
    ws = Workspace(tmp_path / "repos", cache_dir=tmp_path / "s", online=False)
    with pytest.raises(WorkspaceError, match=r"tools/build\.sh.*missing"):
        ws.checkout("acme/gappy", first)
    tree = ws.checkout("acme/gappy", first, allow_missing=True)
    expected = {path: data for path, data in FIRST.items() if path != "tools/build.sh"}
    assert tree_contents(tree) == expected and ws.missing(tree) == ["tools/build.sh"]
    assert ws.checkout("acme/gappy", first, allow_missing=True) == tree  # cached as it is
    with pytest.raises(WorkspaceError):  # a complete snapshot is still refused, not served incomplete
        ws.checkout("acme/gappy", first)


def test_hold_makes_the_snapshot_again_when_evicted_before_it_is_locked(repos, origin, tmp_path):
    _, (first, _) = origin
    ws = workspace(repos, tmp_path, protect_s=0)
    locking = ws.cache.hold
    raced = []

    @contextlib.contextmanager
    def evicted_first(commit: str):
        if not raced:  # another process evicts between checkout and the shared lock
            raced.append(commit)
            ws.cache.max_bytes = 0
            assert ws.cache.evict() == [first]
            ws.cache.max_bytes = 1 << 30
        with locking(commit):
            yield

    ws.cache.hold = evicted_first  # type: ignore[method-assign]
    with ws.hold("acme/bare", first) as tree:
        assert raced == [first] and tree_contents(tree) == FIRST


def test_a_commit_from_a_dataset_never_reaches_git_as_an_option(origin, tmp_path):
    from reposearcher_plugin.workspace.sources import fetch_commit

    origin_root, commits = origin
    clone = tmp_path / "clone.git"
    git(tmp_path, "init", "-q", "--bare", str(clone))
    git(clone, "remote", "add", "origin", f"file://{origin_root}")
    marker = tmp_path / "marker"
    hostile = f"--upload-pack=touch {marker};git-upload-pack"
    assert fetch_commit(clone, hostile) is False
    assert fetch_commit(clone, "-" + commits[0][:10]) is False
    assert not marker.exists()
    assert fetch_commit(clone, commits[0]) is True  # an id still fetches, after --end-of-options
    assert git(clone, "cat-file", "-t", commits[0]).strip() == "commit"
