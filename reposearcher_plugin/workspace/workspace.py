"""``Workspace``: a repository at a commit -> a read-only directory holding exactly that tree."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from reposearcher_plugin.cache_home import default_cache_dir
from reposearcher_plugin.rank.history import ChangeHistory
from reposearcher_plugin.workspace.cache import DEFAULT_MAX_BYTES, DEFAULT_PROTECT_S, SnapshotCache
from reposearcher_plugin.workspace.change_history import HistoryCache
from reposearcher_plugin.workspace.errors import CommitNotFound, RepositoryNotFound, WorkspaceError
from reposearcher_plugin.workspace.git import (
    FULL_SHA,
    fetch_objects,
    missing_objects,
    promisor_remote,
    resolve_commit,
)
from reposearcher_plugin.workspace.materialize import Materialized, materialize
from reposearcher_plugin.workspace.sources import (
    CLONE_TIMEOUT_S,
    DEFAULT_REMOTE,
    check_repo_name,
    ensure_clone,
    fetch_commit,
    find_local,
    slug,
)

PathLike = str | os.PathLike[str]
_HOLD_ATTEMPTS = 5


def default_snapshot_dir() -> Path:
    return default_cache_dir() / "snapshots"


def parse_aliases(items: Sequence[str]) -> dict[str, list[str]]:
    """``["django/django=apprent1c3/django", ...]`` (the --repo-alias option) -> {repo: [aliases]}."""
    aliases: dict[str, list[str]] = {}
    for item in items:
        repo, equals, alias = item.partition("=")
        if not equals or not repo.strip() or not alias.strip():
            raise ValueError(f"--repo-alias {item!r}: expected owner/name=owner/other-name")
        aliases.setdefault(repo.strip(), []).append(alias.strip())
    return aliases


class Workspace:
    """Snapshots of repositories at commits, cached by commit id.

    ``repos_dir``: one directory (or several) of local clones or mirrors, ``DIR/owner__name`` or
    ``DIR/owner+name``, bare or not. A repository not found there is cloned (blobless) from ``remote``
    into the cache when ``online``. ``aliases`` maps a repository to others holding its commits.
    """

    def __init__(
        self,
        repos_dir: PathLike | Sequence[PathLike] | None = None,
        cache_dir: PathLike | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        aliases: Mapping[str, str | Sequence[str]] | None = None,
        online: bool = True,
        remote: str = DEFAULT_REMOTE,
        protect_s: float = DEFAULT_PROTECT_S,
    ) -> None:
        if repos_dir is None:
            dirs: list[PathLike] = []
        elif isinstance(repos_dir, str | os.PathLike):
            dirs = [repos_dir]
        else:
            dirs = list(repos_dir)
        self.repos_dirs = [Path(directory).expanduser() for directory in dirs]
        self.cache = SnapshotCache(
            Path(cache_dir).expanduser() if cache_dir is not None else default_snapshot_dir(),
            max_bytes=max_bytes,
            protect_s=protect_s,
        )
        self.aliases = dict(aliases or {})
        self.online = online
        self.remote = remote
        self.clones_dir = self.cache.directory / ".clones"

    def checkout(self, repo: str, commit: str, *, allow_missing: bool = False) -> Path:
        """The read-only snapshot of ``repo`` at ``commit`` (a full or abbreviated id, or a ref).

        ``allow_missing``: when the source lacks some blobs, leave those files out (``missing`` lists
        them) instead of failing."""
        commit = commit.strip().lower() if FULL_SHA.fullmatch(commit.strip().lower()) else commit.strip()
        if FULL_SHA.fullmatch(commit):
            cached = self.cache.get(commit, allow_incomplete=allow_missing)  # no git at all when cached
            if cached is not None:
                return cached
        git_dir, full = self._resolve(repo, commit)
        meta = {"repo": repo, "source": str(git_dir)}
        build = lambda target: self._write(git_dir, full, target, allow_missing)  # noqa: E731
        return self.cache.create(full, build, meta, allow_incomplete=allow_missing)

    def missing(self, snapshot: Path) -> list[str]:
        """Files a snapshot made with ``allow_missing`` lacks."""
        return self.cache.missing(snapshot.parent.name)

    @contextlib.contextmanager
    def hold(self, repo: str, commit: str, *, allow_missing: bool = False) -> Iterator[Path]:
        """``checkout`` whose snapshot cannot be evicted until the block ends."""
        for _ in range(_HOLD_ATTEMPTS):
            path = self.checkout(repo, commit, allow_missing=allow_missing)
            stack = contextlib.ExitStack()
            stack.enter_context(self.cache.hold(path.parent.name))
            if path.is_dir():
                with stack:
                    yield path
                return
            # evicted between the two steps: let go (making it again takes the exclusive lock) and retry
            stack.close()
        raise WorkspaceError(f"the snapshot of {repo} at {commit} was evicted {_HOLD_ATTEMPTS} times running")

    def history(self, repo: str, commit: str) -> ChangeHistory:
        """The past changes of ``repo`` at ``commit`` (its ancestors; rank/history.py), cached by commit
        id beside the snapshots, so a warm run reads no git."""
        cache = HistoryCache(self.cache.directory / ".history")
        commit = commit.strip().lower() if FULL_SHA.fullmatch(commit.strip().lower()) else commit.strip()
        if FULL_SHA.fullmatch(commit):
            cached = cache.get(commit, lambda: self.locate(repo))
            if cached is not None:
                return cached
        git_dir, full = self._resolve(repo, commit)
        return cache.history(git_dir, full)

    def locate(self, repo: str) -> Path:
        """The git directory that serves ``repo`` (cloning it when online and not found locally)."""
        check_repo_name(repo)
        found, looked = find_local(repo, self.repos_dirs, self.aliases)
        if found is not None:
            return found
        names = [*self._alias_list(repo), repo]
        clone = self.clones_dir / f"{slug(names[0])}.git"
        if clone.is_dir():
            return clone
        if not self.online:
            where = ", ".join(str(path) for path in looked) or "no repositories directory given"
            what_to_do = (
                "Put a clone or mirror of it there (DIR/owner__name or DIR/owner+name), or map the name "
                "to a fork with --repo-alias."
                if self.repos_dirs
                else "Pass --repos-dir with a clone or mirror of it (DIR/owner__name or DIR/owner+name)."
            )
            raise RepositoryNotFound(
                f"repository {repo} not found: looked in {where}; cloning is off (offline). {what_to_do}"
            )
        with self.cache.lock(f"clone-{slug(names[0])}", shared=False):
            return ensure_clone(self.clones_dir, names[0], self.remote, looked)

    # --- internals -------------------------------------------------------------------------------------

    def _alias_list(self, repo: str) -> list[str]:
        alias = self.aliases.get(repo, ())
        return [alias] if isinstance(alias, str) else list(alias)

    def _resolve(self, repo: str, commit: str) -> tuple[Path, str]:
        git_dir = self.locate(repo)
        full = resolve_commit(git_dir, commit)
        if full is None and self._is_our_clone(git_dir):
            with self.cache.lock(f"clone-{git_dir.name[: -len('.git')]}", shared=False):
                if fetch_commit(git_dir, commit):
                    full = resolve_commit(git_dir, commit)
        if full is None:
            hint = "" if self._is_our_clone(git_dir) else " (is the clone or mirror up to date?)"
            raise CommitNotFound(f"commit {commit} of {repo} not found in {git_dir}{hint}")
        return git_dir, full

    def _is_our_clone(self, git_dir: Path) -> bool:
        return git_dir.parent == self.clones_dir

    def _write(self, git_dir: Path, commit: str, target: Path, allow_missing: bool) -> Materialized:
        remote = promisor_remote(git_dir)
        if remote is not None:
            missing = missing_objects(git_dir, commit)
            if missing:
                fetch_objects(git_dir, remote, missing, CLONE_TIMEOUT_S)
        return materialize(git_dir, commit, target, allow_missing=allow_missing)
