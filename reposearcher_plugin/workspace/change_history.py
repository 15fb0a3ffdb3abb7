"""The past changes of a repository at a commit (``rank/history.py`` scores them), read with one
``git log`` and kept in a small cache file per commit, so a warm localization runs no git at all.

Only ancestors of the commit are read: what the repository knew when the issue was filed. Merges
(git shows them without changes), commits that change no file and sweeps that change more than
``MAX_FILES_PER_CHANGE`` files are left out.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from reposearcher_plugin.cache_home import default_cache_dir
from reposearcher_plugin.files import write_atomic
from reposearcher_plugin.rank.history import HISTORY_COMMITS, MAX_FILES_PER_CHANGE, ChangeHistory, PastChange
from reposearcher_plugin.tools.tokens import query_tokens
from reposearcher_plugin.workspace.errors import WorkspaceError
from reposearcher_plugin.workspace.git import FULL_SHA, resolve_commit
from reposearcher_plugin.workspace.history import read_history
from reposearcher_plugin.workspace.sources import git_dir_of

CACHE_FORMAT = 1


def read_change_history(repository: Path, commit: str, limit: int = HISTORY_COMMITS) -> ChangeHistory:
    """The newest ``limit`` ancestors of ``commit`` (itself included) that change between 1 and
    ``MAX_FILES_PER_CHANGE`` files, newest first. ``repository``: a git directory or a work tree.
    Renamed files count once, by their new path, where git can detect renames; a clone without some
    blobs (a mirror without large data files) cannot compare their contents, and is read again without
    rename detection (a rename then counts as a deletion and an addition) rather than left without history."""
    git_dir = git_dir_of(repository) or repository
    try:
        records = list(read_history(git_dir, revision=commit, limit=limit))
    except WorkspaceError:
        records = list(read_history(git_dir, revision=commit, limit=limit, renames=False))
    changes: list[PastChange] = []
    for record in records:
        files = tuple(dict.fromkeys(change.new_path or change.old_path for change in record.changes))
        if 0 < len(files) <= MAX_FILES_PER_CHANGE:
            changes.append(PastChange(tuple(query_tokens(record.message)), files))
    changes.reverse()
    return ChangeHistory(changes)


class HistoryCache:
    """One JSON file per commit id under ``directory``; a damaged or foreign file is read again from git
    and replaced (the cache only ever saves time)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, commit: str) -> Path:
        return self.directory / f"{commit}.json"

    def get(self, commit: str) -> ChangeHistory | None:
        try:
            stored = json.loads(self.path(commit).read_text(encoding="utf-8"))
            if stored.get("format") != CACHE_FORMAT or stored.get("limit") != HISTORY_COMMITS:
                return None
            changes = stored["changes"]
            return ChangeHistory([PastChange(tuple(map(str, t)), tuple(map(str, f))) for t, f in changes])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def put(self, commit: str, history: ChangeHistory) -> None:
        payload = {
            "format": CACHE_FORMAT,
            "limit": HISTORY_COMMITS,
            "changes": [[list(change.tokens), list(change.files)] for change in history.changes],
        }
        with contextlib.suppress(OSError):  # a read-only or full cache: the history was read all the same
            write_atomic(self.path(commit), json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    def history(self, git_dir: Path, commit: str) -> ChangeHistory:
        """The history of ``commit`` (a full id) in ``git_dir``, from the cache when it is there."""
        if not FULL_SHA.fullmatch(commit):
            raise WorkspaceError(f"{commit!r} is not a full commit id (40 or 64 hex digits)")
        cached = self.get(commit)
        if cached is not None:
            return cached
        history = read_change_history(git_dir, commit)
        self.put(commit, history)
        return history


def checkout_history(root: Path, cache: HistoryCache) -> ChangeHistory | None:
    """The history of the commit checked out at ``root`` (a work tree or a git directory), or None when
    ``root`` is not in git or has no commit yet."""
    git_dir = git_dir_of(root)
    if git_dir is None:
        return None
    head = resolve_commit(git_dir, "HEAD")
    if head is None:
        return None
    return cache.history(git_dir, head)


def local_history(root: Path) -> ChangeHistory | None:
    """What ``localize --repo`` and the hosts rank with: the history of the commit checked out at
    ``root``, cached in the user's snapshot cache, or None when ``root`` is not in git or git cannot read
    it (the ranking then goes without its history evidence rather than failing)."""
    try:
        return checkout_history(root, HistoryCache(default_cache_dir() / "snapshots" / ".history"))
    except WorkspaceError:
        return None
