"""The SWE-bench image source without Docker: image naming, archive extraction, HEAD reading and commit
verification, and ``DockerSource`` end to end with a tar archive of ``/testbed/.git`` built here in place of
``container.get_archive``. The Docker SDK call itself (``fetch_git_archive``) needs an engine: untested."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reposearcher_plugin.workspace import SnapshotCache, Workspace
from reposearcher_plugin.workspace.docker_source import (
    ChunkReader,
    DockerSource,
    ImageError,
    extract_archive,
    image_name,
    snapshot_from_git_archive,
    verify_commit,
)
from reposearcher_plugin.workspace.git import read_head, resolve_commit
from reposearcher_plugin.workspace.sources import git_dir_of
from tests.conftest import git, write_tree


def make_testbed(root: Path) -> tuple[Path, list[str]]:
    """A repository laid out like an evaluation image's /testbed: two commits, HEAD detached at the first
    (the base commit), and the environment set-up's debris in the work tree."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    commits = []
    for version in (1, 2):
        write_tree(root, {"pkg/__init__.py": "", "pkg/core.py": f"def run():\n    return {version}\n"})
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"v{version}")
        commits.append(git(root, "rev-parse", "HEAD").strip())
    git(root, "checkout", "-q", "--detach", commits[0])
    # what `pip install -e .` and the harness's sed edits leave behind: must not reach the snapshot
    write_tree(
        root, {"pkg.egg-info/PKG-INFO": "Name: pkg\n", "build/lib/pkg/core.py": "def run():\n    pass\n"}
    )
    (root / "pkg" / "core.py").write_text("def run():\n    return 'edited by the image'\n")
    return root, commits


def git_archive_bytes(testbed: Path, *, arcname: str = ".git") -> bytes:
    """What ``container.get_archive('/testbed/.git')`` streams: members named ``.git/...``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(testbed / ".git", arcname=arcname)
    return buffer.getvalue()


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], bytes]:
    root, commits = make_testbed(tmp_path_factory.mktemp("image") / "testbed")
    return root, commits, git_archive_bytes(root)


def test_image_name_follows_the_harness() -> None:
    assert image_name("django__django-11099") == "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    assert (
        image_name("scikit-learn__scikit-learn-13142", namespace="", arch="arm64", tag="v1")
        == "sweb.eval.arm64.scikit-learn_1776_scikit-learn-13142:v1"
    )
    assert image_name("SymPy__SymPy-1") == "swebench/sweb.eval.x86_64.sympy_1776_sympy-1:latest"  # lower case
    with pytest.raises(ValueError, match="not a SWE-bench instance id"):
        image_name("django/django:latest; rm -rf /")


def test_chunk_reader_reassembles_any_chunking() -> None:
    data = bytes(range(256)) * 50
    for size in (1, 7, 4096, 10**6):
        reader = io.BufferedReader(ChunkReader(chunks(data, size)), buffer_size=333)
        assert reader.read() == data
    assert io.BufferedReader(ChunkReader([b"", b"ab", b"", b"c"])).read() == b"abc"


def test_extract_strips_the_prefix_and_streams(testbed, tmp_path) -> None:
    root, _, archive = testbed
    target = tmp_path / "out"
    files = extract_archive(io.BufferedReader(ChunkReader(chunks(archive))), target, strip=".git")
    assert (target / "HEAD").read_text() == (root / ".git" / "HEAD").read_text()
    assert files == sum(1 for path in (root / ".git").rglob("*") if path.is_file() and not path.is_symlink())


def _tar(members: list[tarfile.TarInfo], payload: bytes = b"x") -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            archive.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    buffer.seek(0)
    return buffer


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.size = kind, linkname, 1 if kind == tarfile.REGTYPE else 0
    return member


@pytest.mark.parametrize(
    "member",
    [
        _member("other/HEAD"),  # outside the directory asked for
        _member(".git/../../escape"),  # climbs out
        _member(".git/link", tarfile.SYMTYPE, "/etc/passwd"),  # absolute link
        _member(".git/link", tarfile.SYMTYPE, "../../outside"),  # link leaving the tree
        _member(".git/hard", tarfile.LNKTYPE, "elsewhere/file"),  # hard link to outside the prefix
        _member(".git/dev", tarfile.CHRTYPE),  # a device
    ],
    ids=["outside", "dotdot", "abs-symlink", "escaping-symlink", "hardlink", "device"],
)
def test_extract_refuses_unsafe_members(member: tarfile.TarInfo, tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        extract_archive(_tar([member]), tmp_path / "out", strip=".git")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "outside").exists()


def test_read_head_detached_loose_and_packed(tmp_path: Path) -> None:
    sha = "a" * 40
    git_dir = tmp_path / "g"
    (git_dir / "refs" / "heads").mkdir(parents=True)
    (git_dir / "HEAD").write_text(sha.upper() + "\n")
    assert read_head(git_dir) == sha
    (git_dir / "HEAD").write_text("ref: refs/heads/main\n")
    assert read_head(git_dir) is None  # the branch is nowhere yet
    (git_dir / "packed-refs").write_text(
        f"# pack-refs with: peeled\n{'b' * 40} refs/heads/main\n^{'c' * 40}\n"
    )
    assert read_head(git_dir) == "b" * 40
    (git_dir / "refs" / "heads" / "main").write_text(sha + "\n")  # a loose ref wins over packed-refs
    assert read_head(git_dir) == sha
    (git_dir / "HEAD").write_text("ref: ../../etc/passwd\n")
    assert read_head(git_dir) is None
    assert read_head(tmp_path / "missing") is None


def test_read_head_answers_as_git_in_real_checkouts_and_linked_work_trees(tmp_path) -> None:
    root, commits = make_testbed(tmp_path / "testbed")
    git_dir = git_dir_of(root)
    assert git_dir is not None and read_head(git_dir) == resolve_commit(git_dir, "HEAD")
    git(root, "pack-refs", "--all")  # the branch now only in packed-refs
    assert read_head(git_dir) == resolve_commit(git_dir, "HEAD")
    linked = tmp_path / "linked"
    git(root, "worktree", "add", "-q", "--detach", str(linked), commits[0])
    assert read_head(git_dir_of(linked)) == commits[0] == resolve_commit(git_dir_of(linked), "HEAD")
    git(linked, "checkout", "-q", "-b", "topic")  # a branch of the common directory, as a loose ref
    assert (git_dir_of(linked) / "commondir").is_file()
    assert read_head(git_dir_of(linked)) == commits[0]


def test_verify_commit(testbed) -> None:
    root, commits, _ = testbed
    git_dir = root / ".git"
    assert verify_commit(git_dir, commits[0].upper()) == commits[0]
    assert verify_commit(git_dir, commits[0][:10]) == commits[0]  # abbreviated ids resolve in the image
    with pytest.raises(ImageError, match=f"at {commits[0]}, not at the base commit {commits[1]}"):
        verify_commit(git_dir, commits[1], image="img")


def test_snapshot_is_the_commit_tree_not_the_image_work_tree(testbed, tmp_path) -> None:
    _, commits, archive = testbed
    target, scratch = tmp_path / "tree", tmp_path / "scratch"
    target.mkdir()
    made = snapshot_from_git_archive(io.BytesIO(archive), commits[0], target, scratch=scratch)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        "pkg/__init__.py",
        "pkg/core.py",
    ]
    assert (target / "pkg" / "core.py").read_text() == "def run():\n    return 1\n"  # not the image's edit
    assert made.files == 2 and not made.missing
    assert not os.access(target / "pkg", os.W_OK) or os.geteuid() == 0  # read-only (root ignores modes)
    assert not scratch.exists()  # no .git left behind


def test_snapshot_refuses_an_image_at_another_commit(testbed, tmp_path) -> None:
    _, commits, archive = testbed
    (tmp_path / "tree").mkdir()
    with pytest.raises(ImageError, match="not at the base commit"):
        snapshot_from_git_archive(io.BytesIO(archive), commits[1], tmp_path / "tree", scratch=tmp_path / "s")
    assert not (tmp_path / "s").exists()


class FakeImages:
    """Stands in for the Docker call: counts fetches and serves the archive in chunks."""

    def __init__(self, archives: dict[str, bytes]) -> None:
        self.archives = archives
        self.fetched: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def fetch(self, image: str, path: str) -> Iterator[io.BufferedReader]:
        self.fetched.append((image, path))
        if image not in self.archives:
            raise ImageError(f"image {image} not found")
        yield io.BufferedReader(ChunkReader(chunks(self.archives[image], 777)))


def test_docker_source_builds_once_and_shares_the_workspace_cache(testbed, tmp_path) -> None:
    _root, commits, archive = testbed
    image = image_name("acme__proj-1")
    fake = FakeImages({image: archive})
    cache = SnapshotCache(tmp_path / "snapshots")
    source = DockerSource(cache, fetch=fake.fetch)
    path = source.checkout("acme__proj-1", commits[0], repo="acme/proj")
    assert fake.fetched == [(image, "/testbed/.git")]
    assert (path / "pkg" / "core.py").read_text() == "def run():\n    return 1\n"
    assert source.checkout("acme__proj-1", commits[0].upper()) == path  # cached: no second fetch
    assert len(fake.fetched) == 1
    with source.hold("acme__proj-1", commits[0]) as held:
        assert held == path
    meta = (path.parent / "snapshot.json").read_text()
    assert f"docker:{image}" in meta and "acme/proj" in meta
    assert not list((cache.directory / ".tmp").iterdir())  # scratch removed

    # the same cache through a Workspace: a mirror-made snapshot of that commit is byte-identical, so
    # the Workspace serves the image-made one without any repository at all
    workspace = Workspace(None, cache.directory, online=False)
    assert workspace.checkout("acme/proj", commits[0]) == path


def test_docker_source_errors(testbed, tmp_path) -> None:
    _, commits, archive = testbed
    source = DockerSource(SnapshotCache(tmp_path / "c"), fetch=FakeImages({}).fetch)
    with pytest.raises(ValueError, match="full commit id"):
        source.checkout("acme__proj-1", commits[0][:8])
    with pytest.raises(ImageError, match="not found"):
        source.checkout("acme__proj-1", commits[0])
    wrong = DockerSource(
        SnapshotCache(tmp_path / "d"), fetch=FakeImages({image_name("a__b-2"): archive}).fetch
    )
    with pytest.raises(ImageError, match="not at the base commit"):
        wrong.checkout("a__b-2", commits[1])
    assert wrong.cache.get(commits[1]) is None and wrong.cache.entries() == []  # nothing half-made
