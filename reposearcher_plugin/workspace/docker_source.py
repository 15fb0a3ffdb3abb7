"""Snapshots from SWE-bench evaluation images: the repository at ``/testbed`` of
``swebench/sweb.eval.x86_64.<instance id, "__" -> "_1776_">:latest``.

Many training sets ship only those images, no clone. What we copy out of an image is its git directory
(``/testbed/.git``), not its work tree: the work tree of an evaluation image is the base commit PLUS the
environment set-up (``*.egg-info``, compiled extensions, ``build/`` copies of the package, and the
harness's ``sed`` edits of ``tox.ini`` / ``setup.cfg``), which would add duplicate entities to the index
and shift the lines the gold patches refer to. The git directory holds the commit itself, so the snapshot
is written by the same ``materialize`` a local mirror uses, byte for byte as git stores the tree, and it is
identical to what ``Workspace.checkout`` makes for that commit: the two share one ``SnapshotCache`` keyed by
commit id. The commit is verified first: the image's ``HEAD`` must be the instance's base commit.

The Docker call is kept thin (``fetch_git_archive``: create a container, stream ``get_archive``, remove
the container); naming, archive extraction, ``HEAD`` reading and the snapshot build are plain functions
tested with archives built in the tests. No Docker engine runs on the development machines, so the call
itself is untested here (docs/workspace.md).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from reposearcher_plugin.extras import install_hint
from reposearcher_plugin.workspace.cache import SnapshotCache
from reposearcher_plugin.workspace.errors import CommitNotFound, WorkspaceError
from reposearcher_plugin.workspace.git import FULL_SHA, read_head, resolve_commit
from reposearcher_plugin.workspace.materialize import Materialized, materialize

DEFAULT_NAMESPACE = "swebench"
DEFAULT_ARCH = "x86_64"
DEFAULT_TAG = "latest"
REPO_ROOT_IN_IMAGE = "/testbed"
_INSTANCE_ID = re.compile(r"[A-Za-z0-9_.-]+__[A-Za-z0-9_.-]+-\d+")


class ImageError(WorkspaceError):
    """The image could not be read, or does not hold the repository at the expected commit."""


def image_name(
    instance_id: str, *, namespace: str = DEFAULT_NAMESPACE, arch: str = DEFAULT_ARCH, tag: str = DEFAULT_TAG
) -> str:
    """The SWE-bench evaluation image of an instance. Docker repository names must be lower case and may
    not contain ``__`` runs as SWE-bench ids do, hence the harness's ``_1776_`` stand-in."""
    instance_id = instance_id.strip()
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise ValueError(f"{instance_id!r} is not a SWE-bench instance id (owner__repo-number)")
    name = f"sweb.eval.{arch}.{instance_id.replace('__', '_1776_')}".lower()
    return f"{namespace}/{name}:{tag}" if namespace else f"{name}:{tag}"


# --- the archive ---------------------------------------------------------------------------------------


class ChunkReader(io.RawIOBase):
    """A file object over an iterable of byte chunks (what docker-py's ``get_archive`` yields), so
    ``tarfile`` can read the archive as it streams instead of holding a repository's history in memory."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def extract_archive(stream: BinaryIO, target: Path, *, strip: str) -> int:
    """Extract a tar stream whose members all sit under the directory ``strip`` (``get_archive`` names
    them after the path's last component: ``.git/...``) into ``target``, without that prefix. Returns the
    number of regular files written.

    Members are checked before anything is written: absolute paths, ``..``, links leaving the tree and
    device files are refused (tarfile's ``data`` filter), and so is any member outside ``strip``."""
    target.mkdir(parents=True, exist_ok=True)
    prefix = strip.strip("/") + "/"
    files = 0
    with tarfile.open(fileobj=stream, mode="r|*") as archive:  # streaming: one pass, members in order
        for member in archive:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name == prefix.rstrip("/"):
                continue  # the directory itself
            if not name.startswith(prefix):
                raise ImageError(f"archive member {member.name!r} is outside {strip!r}")
            member.name = name[len(prefix) :]
            if member.islnk():  # hard links name their target by its path in the archive
                if not member.linkname.startswith(prefix):
                    raise ImageError(f"archive hard link {member.name!r} points outside {strip!r}")
                member.linkname = member.linkname[len(prefix) :]
            try:
                archive.extract(member, target, filter="data", set_attrs=True)
            except tarfile.FilterError as error:
                raise ImageError(f"refusing archive member {name!r}: {error}") from None
            files += member.isfile()
    return files


def verify_commit(git_dir: Path, base_commit: str, *, image: str = "the image") -> str:
    """The full id of ``base_commit`` after checking that ``HEAD`` of ``git_dir`` is that commit.

    ``HEAD`` is read from the files first; git resolves it when that fails (a ref in an unusual place).
    ``base_commit`` may be abbreviated; it must then resolve in ``git_dir`` to ``HEAD``."""
    head = read_head(git_dir) or resolve_commit(git_dir, "HEAD")
    if head is None:
        raise ImageError(f"{image}: cannot read HEAD of {REPO_ROOT_IN_IMAGE}/.git")
    wanted = base_commit.strip().lower()
    if FULL_SHA.fullmatch(wanted):
        full = wanted
    else:
        resolved = resolve_commit(git_dir, wanted)
        if resolved is None:
            raise CommitNotFound(f"{image}: commit {base_commit} is not in {REPO_ROOT_IN_IMAGE}/.git")
        full = resolved
    if head != full:
        raise ImageError(
            f"{image}: {REPO_ROOT_IN_IMAGE} is at {head}, not at the base commit {full} "
            "(a different instance's image, or an image built from another commit)"
        )
    return full


def snapshot_from_git_archive(
    stream: BinaryIO, base_commit: str, target: Path, *, scratch: Path, image: str = "the image"
) -> Materialized:
    """Extract an archive of ``/testbed/.git`` into ``scratch``, verify its ``HEAD`` is ``base_commit``
    and write that commit's tree into ``target`` (read-only). ``scratch`` is removed afterwards: no
    ``.git`` stays in the cache."""
    git_dir = scratch / ".git"
    try:
        extract_archive(stream, git_dir, strip=".git")
        full = verify_commit(git_dir, base_commit, image=image)
        return materialize(git_dir, full, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- the Docker call -----------------------------------------------------------------------------------

ArchiveFetcher = Callable[[str, str], contextlib.AbstractContextManager[BinaryIO]]


@contextlib.contextmanager
def fetch_git_archive(image: str, path: str, *, client: Any = None, pull: bool = False) -> Iterator[BinaryIO]:
    """A tar stream of ``path`` inside ``image``: a container is created (never started: reading files
    needs no process) and removed afterwards. Untested here: no Docker engine on the development
    machines."""
    if client is None:
        try:
            import docker  # the Docker SDK is optional: only this source needs it
        except ImportError as error:
            hint = install_hint("docker")
            raise ImageError(f"reading SWE-bench images needs the Docker SDK: {hint}") from error
        client = docker.from_env()
    import docker.errors

    try:
        if pull:
            client.images.pull(image)
        container = client.containers.create(image, command="true")
    except docker.errors.ImageNotFound:
        raise ImageError(f"image {image} not found (docker pull {image})") from None
    except docker.errors.DockerException as error:
        raise ImageError(f"cannot create a container of {image}: {error}") from None
    try:
        try:
            chunks, _ = container.get_archive(path)
        except docker.errors.NotFound:
            raise ImageError(f"{image} has no {path}") from None
        yield io.BufferedReader(ChunkReader(chunks), buffer_size=1 << 20)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


class DockerSource:
    """Snapshots of SWE-bench instances from their evaluation images, in a ``SnapshotCache``.

    ``cache``: share the ``Workspace``'s (``workspace.cache``) so an instance already checked out from a
    mirror needs no image, and the other way round: both write the commit's exact tree. ``fetch``
    replaces the Docker call (tests; another container runtime)."""

    def __init__(
        self,
        cache: SnapshotCache,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        arch: str = DEFAULT_ARCH,
        tag: str = DEFAULT_TAG,
        pull: bool = False,
        client: Any = None,
        fetch: ArchiveFetcher | None = None,
    ) -> None:
        self.cache = cache
        self.namespace, self.arch, self.tag = namespace, arch, tag
        self.pull = pull
        self.client = client
        self._fetch = fetch

    def image(self, instance_id: str) -> str:
        return image_name(instance_id, namespace=self.namespace, arch=self.arch, tag=self.tag)

    def checkout(self, instance_id: str, base_commit: str, *, repo: str | None = None) -> Path:
        """The read-only snapshot of the instance's repository at ``base_commit`` (a full commit id: the
        cache is keyed by it, and SWE-bench rows always carry one)."""
        commit = base_commit.strip().lower()
        if not FULL_SHA.fullmatch(commit):
            raise ValueError(f"base_commit must be a full commit id, got {base_commit!r}")
        cached = self.cache.get(commit)
        if cached is not None:  # no Docker at all when any source made it before
            return cached
        image = self.image(instance_id)
        meta = {"repo": repo or "", "source": f"docker:{image}", "instance_id": instance_id}
        return self.cache.create(commit, lambda target: self._build(image, commit, target), meta)

    @contextlib.contextmanager
    def hold(self, instance_id: str, base_commit: str, *, repo: str | None = None) -> Iterator[Path]:
        """``checkout`` whose snapshot cannot be evicted until the block ends."""
        path = self.checkout(instance_id, base_commit, repo=repo)
        with self.cache.hold(path.parent.name):
            if not path.is_dir():  # evicted in between: make it again under the hold's shared lock
                raise WorkspaceError(f"the snapshot of {instance_id} was evicted while being handed out")
            yield path

    def _build(self, image: str, commit: str, target: Path) -> Materialized:
        # scratch beside the cache's own temporary directories: same file system, cleaned up by us
        scratch_root = self.cache.directory / ".tmp"
        scratch_root.mkdir(parents=True, exist_ok=True)
        # named "<commit>.*" so that SnapshotCache.create removes it if this process dies mid-build
        scratch = Path(
            tempfile.mkdtemp(
                prefix=f"{commit}.docker.{os.getpid()}.{uuid.uuid4().hex[:6]}.", dir=scratch_root
            )
        )
        fetch = self._fetch or (
            lambda name, path: fetch_git_archive(name, path, client=self.client, pull=self.pull)
        )
        with fetch(image, f"{REPO_ROOT_IN_IMAGE}/.git") as stream:
            return snapshot_from_git_archive(stream, commit, target, scratch=scratch, image=image)
