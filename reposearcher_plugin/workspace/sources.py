"""Where the git objects of a repository come from: a directory of local clones or mirrors, or a partial
clone that we make in the cache when online.

A repository ``owner/name`` is looked for in each repositories directory as ``owner__name`` or
``owner+name``, each of which may be a bare repository, a work tree with ``.git``, or a directory holding a
bare repository called ``repo`` (the layout of the mirrors this project's tooling fetches). Aliases map a
repository to others that hold its commits, such as a smaller fork (``django/django`` ->
``apprent1c3/django``); the aliases are tried first, then the name itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from reposearcher_plugin.workspace.errors import RepositoryNotFound, WorkspaceError
from reposearcher_plugin.workspace.git import git, is_git_dir, last_line

_REPO_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
DEFAULT_REMOTE = "https://github.com/{repo}"
CLONE_TIMEOUT_S = 3600.0


def check_repo_name(repo: str) -> None:
    if not _REPO_NAME.fullmatch(repo) or ".." in repo:
        raise RepositoryNotFound(f"{repo!r} is not a repository name of the form owner/name")


def slug(repo: str, separator: str = "+") -> str:
    return repo.replace("/", separator)


def candidates(repo: str, aliases: Mapping[str, str | Sequence[str]]) -> list[str]:
    """Names to look for, in order: the repository's aliases, then itself."""
    alias = aliases.get(repo, ())
    names = [alias] if isinstance(alias, str) else list(alias)
    return list(dict.fromkeys([*names, repo]))


def git_dir_of(path: Path) -> Path | None:
    """The git directory that ``path`` is or holds, if any."""
    if is_git_dir(path):
        return path
    dot_git = path / ".git"
    if dot_git.is_dir() and is_git_dir(dot_git):
        return dot_git
    if dot_git.is_file():  # a linked work tree or a submodule: "gitdir: <path>"
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            target = (path / text[len("gitdir:") :].strip()).resolve()
            if is_git_dir(target):
                return target
    if is_git_dir(path / "repo"):
        return path / "repo"
    return None


def find_local(
    repo: str, repos_dirs: Sequence[Path], aliases: Mapping[str, str | Sequence[str]]
) -> tuple[Path | None, list[Path]]:
    """(git directory, the paths looked at)."""
    looked: list[Path] = []
    for name in candidates(repo, aliases):
        for directory in repos_dirs:
            for separator in ("__", "+"):
                path = directory / slug(name, separator)
                looked.append(path)
                if path.is_dir():
                    found = git_dir_of(path)
                    if found is not None:
                        return found, looked
    return None, looked


def clone_path(clones_dir: Path, repo: str) -> Path:
    return clones_dir / f"{slug(repo)}.git"


def ensure_clone(clones_dir: Path, repo: str, remote_template: str, looked: list[Path]) -> Path:
    """A blobless partial clone of ``repo`` in ``clones_dir``, made on first use: commits and trees only;
    the blobs of a snapshot are fetched in one request when it is written. The caller holds the clone's
    lock."""
    target = clone_path(clones_dir, repo)
    if is_git_dir(target):
        return target
    url = remote_template.format(repo=repo)
    clones_dir.mkdir(parents=True, exist_ok=True)
    temporary = clones_dir / f".{slug(repo)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.git"
    try:
        result = git(
            None,
            "clone",
            "--bare",
            "--filter=blob:none",
            "--no-tags",
            "--",
            url,
            str(temporary),
            check=False,
            timeout=CLONE_TIMEOUT_S,
        )
        if result.returncode != 0:
            where = ", ".join(str(path) for path in looked) or "no repositories directory given"
            what_to_do = (
                "Offline, put a clone or mirror of it there (DIR/owner__name or DIR/owner+name), or map the "
                "name to a fork with --repo-alias."
                if looked
                else "Offline, pass --repos-dir with a clone or mirror of it."
            )
            raise RepositoryNotFound(
                f"repository {repo} not found locally (looked in {where}) and cloning {url} failed: "
                f"{last_line(result.stderr)}. {what_to_do}"
            )
        # a bare clone fetches no branches on later fetches unless told to
        git(temporary, "config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*")
        os.rename(temporary, target)
    finally:
        with contextlib.suppress(OSError):
            if temporary.exists():
                shutil.rmtree(temporary)
    return target


_COMMIT_ID = re.compile(r"[0-9a-fA-F]{4,64}")


def fetch_commit(git_dir: Path, commit: str) -> bool:
    """Ask the clone's remote for one commit (GitHub serves any reachable commit by id). Only an id is
    fetched: the value comes from a dataset, and ``--upload-pack=...`` there would run a command."""
    if not _COMMIT_ID.fullmatch(commit):
        return False
    try:
        git(
            git_dir,
            "fetch",
            "--no-tags",
            "--end-of-options",
            "origin",
            commit,
            check=True,
            timeout=CLONE_TIMEOUT_S,
        )
    except WorkspaceError:
        return False
    return True
