"""The past changes of a repository at a commit (``rank/history.py`` scores them), read with one
``git log`` and kept in a small cache file per commit, so a warm localization runs no git at all.

Only ancestors of the commit are read: what the repository knew when the issue was filed. Merges
(git shows them without changes), commits that change no file and sweeps that change more than
``MAX_FILES_PER_CHANGE`` files are left out.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from reposearcher_plugin.cache_home import default_cache_dir
from reposearcher_plugin.files import write_atomic
from reposearcher_plugin.rank.history import (
    HISTORY_COMMITS,
    MAX_FILES_PER_CHANGE,
    ChangeHistory,
    EditedNames,
    PastChange,
)
from reposearcher_plugin.tools.tokens import query_tokens
from reposearcher_plugin.workspace.errors import WorkspaceError
from reposearcher_plugin.workspace.git import FULL_SHA, read_head, resolve_commit
from reposearcher_plugin.workspace.history import edited_definitions, read_history
from reposearcher_plugin.workspace.sources import git_dir_of

CACHE_FORMAT = 2
EDITS_FORMAT = 1
# what git says when a clone lacks an object a diff needs ("fatal: unable to read 31860af2...")
_MISSING_OBJECT = re.compile(r"unable to read [0-9a-f]{40}")


def read_change_history(
    repository: Path, commit: str, limit: int = HISTORY_COMMITS, edits: EditCache | None = None
) -> ChangeHistory:
    """The newest ``limit`` ancestors of ``commit`` (itself included) that change between 1 and
    ``MAX_FILES_PER_CHANGE`` files, newest first. ``repository``: a git directory or a work tree.
    Renamed files count once, by their new path, where git can detect renames; a clone without some
    blobs (a mirror without large data files) cannot compare their contents, and is read again without
    rename detection (a rename then counts as a deletion and an addition) rather than left without history.
    ``edits``: where the definitions the changes edited are read when a ranking asks (None: files only)."""
    git_dir = git_dir_of(repository) or repository
    try:
        records = list(read_history(git_dir, revision=commit, limit=limit))
    except WorkspaceError:
        records = list(read_history(git_dir, revision=commit, limit=limit, renames=False))
    changes: list[PastChange] = []
    for record in records:
        files = tuple(dict.fromkeys(change.new_path or change.old_path for change in record.changes))
        if 0 < len(files) <= MAX_FILES_PER_CHANGE:
            changes.append(PastChange(tuple(query_tokens(record.message)), files, record.sha))
    changes.reverse()
    return ChangeHistory(changes, edits=edits)


class EditCache:
    """The Python definitions each past change edited (``workspace/history.py: edited_definitions``), one
    small JSON file per commit id under ``directory``: a commit's diff never changes, so every history
    holding the commit shares it. git is asked only for the commits not there yet, in one process, and
    only when a ranking asks (the best-matching changes of one issue: tens of commits, milliseconds).
    ``locate`` gives the git directory; when it or git fails, the ranking goes on with what is cached."""

    def __init__(self, directory: Path, locate: Callable[[], Path]) -> None:
        self.directory = directory
        self.locate = locate

    def path(self, commit: str) -> Path:
        return self.directory / commit[:2] / f"{commit}.json"

    def get(self, commit: str) -> EditedNames | None:
        try:
            stored = json.loads(self.path(commit).read_text(encoding="utf-8"))
            if stored.get("format") != EDITS_FORMAT:
                return None
            return frozenset((str(path), str(name)) for path, name in stored["edited"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def put(self, commit: str, edited: EditedNames) -> None:
        payload = {"format": EDITS_FORMAT, "edited": sorted(map(list, edited))}
        with contextlib.suppress(OSError):
            write_atomic(self.path(commit), json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    def __call__(self, commits: Sequence[str]) -> dict[str, EditedNames]:
        found: dict[str, EditedNames] = {}
        missing: list[str] = []
        for commit in dict.fromkeys(commits):
            if not FULL_SHA.fullmatch(commit):
                continue  # an id from a damaged cache file never becomes a path or reaches git
            cached = self.get(commit)
            if cached is None:
                missing.append(commit)
            else:
                found[commit] = cached
        while missing:
            read = 0
            try:
                for commit, edited in edited_definitions(self.locate(), missing):
                    found[commit] = edited
                    self.put(commit, edited)
                    read += 1
                break
            except WorkspaceError as error:
                if not _MISSING_OBJECT.search(str(error)):
                    break  # a clone gone or damaged: the definitions read so far are kept
                # git stopped at missing[read], whose diff needs a blob the clone lacks: it edits nothing
                # known, now and on every later read (kept, so cold and warm rankings agree), and the
                # commits after it are read again
                found[missing[read]] = frozenset()
                self.put(missing[read], frozenset())
                missing = missing[read + 1 :]
        return found


class HistoryCache:
    """One JSON file per commit id under ``directory``; a damaged or foreign file is read again from git
    and replaced (the cache only ever saves time)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, commit: str) -> Path:
        return self.directory / f"{commit}.json"

    def edits(self, locate: Callable[[], Path]) -> EditCache:
        return EditCache(self.directory / "edits", locate)

    def get(self, commit: str, locate: Callable[[], Path] | None = None) -> ChangeHistory | None:
        """The cached history of ``commit``; ``locate`` gives its git directory should a ranking ask
        for definitions not cached yet (None: it scores files only)."""
        try:
            stored = json.loads(self.path(commit).read_text(encoding="utf-8"))
            if stored.get("format") != CACHE_FORMAT or stored.get("limit") != HISTORY_COMMITS:
                return None
            changes = [
                PastChange(tuple(map(str, tokens)), tuple(map(str, files)), str(commit))
                for tokens, files, commit in stored["changes"]
            ]
            return ChangeHistory(changes, edits=self.edits(locate) if locate is not None else None)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def put(self, commit: str, history: ChangeHistory) -> None:
        payload = {
            "format": CACHE_FORMAT,
            "limit": HISTORY_COMMITS,
            "changes": [[list(c.tokens), list(c.files), c.commit] for c in history.changes],
        }
        with contextlib.suppress(OSError):  # a read-only or full cache: the history was read all the same
            write_atomic(self.path(commit), json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    def history(self, git_dir: Path, commit: str) -> ChangeHistory:
        """The history of ``commit`` (a full id) in ``git_dir``, from the cache when it is there."""
        if not FULL_SHA.fullmatch(commit):
            raise WorkspaceError(f"{commit!r} is not a full commit id (40 or 64 hex digits)")
        cached = self.get(commit, lambda: git_dir)
        if cached is not None:
            return cached
        history = read_change_history(git_dir, commit, edits=self.edits(lambda: git_dir))
        self.put(commit, history)
        return history


def checkout_history(root: Path, cache: HistoryCache) -> ChangeHistory | None:
    """The history of the commit checked out at ``root`` (a work tree or a git directory), or None when
    ``root`` is not in git or has no commit yet."""
    git_dir = git_dir_of(root)
    if git_dir is None:
        return None
    head = read_head(git_dir) or resolve_commit(git_dir, "HEAD")
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
