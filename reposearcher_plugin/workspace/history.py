"""A repository's history, read in streams: one ``git log`` pass for every commit's metadata and changed
files, one ``git diff-tree --stdin`` process for the patches of the commits asked for, one
``git cat-file --batch`` process for file contents at any commit.

Each is a single long-running git process whatever the number of commits, so reading a history costs
time linear in its length and no process start per commit (a start costs milliseconds, a history holds
tens of thousands of commits). Every value taken from data (commit ids, paths) goes to git on its
standard input or after ``--end-of-options``, never where git would read it as an option.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from reposearcher_plugin.index.names import path_bytes, repo_path_from_bytes, repo_path_from_git
from reposearcher_plugin.rank.history import EditedNames
from reposearcher_plugin.workspace.errors import WorkspaceError
from reposearcher_plugin.workspace.git import FULL_SHA, git, git_env, last_line
from reposearcher_plugin.workspace.sources import git_dir_of

_CHUNK = 1 << 20
_COMMIT_MARK = "\x01"  # starts each commit's header: no git output line of a diff starts with it
# Porcelain configuration that would change what ``git log`` prints (plumbing ignores it anyway).
_STABLE_OUTPUT = (
    "-c",
    "safe.directory=*",
    "-c",
    "log.showSignature=false",
    "-c",
    "diff.relative=false",
    "-c",
    "diff.noprefix=false",
    "-c",
    "core.quotePath=true",
)


class FileChange(NamedTuple):
    """One file a commit changes, from ``git log --raw``; paths are repository paths (index/names.py)."""

    status: str  # A, M, D, R (renamed), C (copied), T (type changed), U or X
    old_path: str  # "" for an added file
    new_path: str  # "" for a deleted file
    old_mode: str  # git mode at the parent: 100644, 100755, 120000 (symlink), 160000 (submodule)
    new_mode: str


class CommitRecord(NamedTuple):
    sha: str
    parents: tuple[str, ...]
    authored: str  # author date, strict ISO 8601
    message: str  # subject and body
    changes: tuple[FileChange, ...]  # empty for a merge (git log shows merges without a diff)


def check_commit_id(commit: str) -> str:
    """``commit`` when it is a full commit id (hex), else a WorkspaceError: ids reach git from data."""
    if not FULL_SHA.fullmatch(commit):
        raise WorkspaceError(f"{commit!r} is not a full commit id (40 or 64 hex digits)")
    return commit


def read_history(
    git_dir: Path,
    *,
    revision: str = "HEAD",
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
    renames: bool = True,
) -> Iterator[CommitRecord]:
    """Every commit reachable from ``revision``, oldest first, with the files it changes (renames
    detected unless ``renames`` is false: detecting them compares contents, which a clone without some
    blobs cannot). ``since`` / ``until`` are git dates (``2020-01-01``, ``2.weeks.ago``) on the committer
    date, as ``git log`` reads them; ``limit``: only the newest ``limit`` commits."""
    command = ["log", "--no-color", "--no-notes", "--format=%x01%H%x00%P%x00%aI%x00%B%x00"]
    command += ["--raw", "-z", "-M" if renames else "--no-renames", "--no-abbrev", "--reverse"]
    if limit is not None:
        command.append(f"--max-count={int(limit)}")
    if since:
        command.append(f"--since={since}")
    if until:
        command.append(f"--until={until}")
    command += ["--end-of-options", revision, "--"]
    with _Streaming(git_dir, command) as process:
        yield from _parse_log(_tokens(process.stdout))


def _tokens(stream: IO[bytes]) -> Iterator[bytes]:
    """The NUL-separated pieces of ``stream``, read a chunk at a time."""
    rest = b""
    while chunk := stream.read(_CHUNK):
        pieces = (rest + chunk).split(b"\0")
        rest = pieces.pop()
        yield from pieces
    if rest:
        yield rest


def _parse_log(tokens: Iterator[bytes]) -> Iterator[CommitRecord]:
    """Read ``--format=%x01%H%x00%P%x00%aI%x00%B%x00 --raw -z``: a header whose fields sit at fixed
    places (so a message may hold anything but NUL), then raw entries ``:modes oids status`` each
    followed by one path (two for renames and copies)."""
    header: list[bytes] | None = None
    changes: list[FileChange] = []
    for token in tokens:
        if header is not None and len(header) < 4:
            header.append(token)
            continue
        token = token.lstrip(b"\n")
        if token.startswith(_COMMIT_MARK.encode()):
            if header is not None:
                yield _record(header, changes)
            header, changes = [token[1:]], []
        elif token.startswith(b":") and header is not None:
            old_mode, new_mode, _, _, status = token[1:].decode().split(" ")
            first = repo_path_from_bytes(next(tokens))
            if status[0] in "RC":
                second = repo_path_from_bytes(next(tokens))
                changes.append(FileChange(status[0], first, second, old_mode, new_mode))
            elif status[0] == "A":
                changes.append(FileChange("A", "", first, old_mode, new_mode))
            elif status[0] == "D":
                changes.append(FileChange("D", first, "", old_mode, new_mode))
            else:
                changes.append(FileChange(status[0], first, first, old_mode, new_mode))
    if header is not None:
        yield _record(header, changes)


def _record(header: list[bytes], changes: list[FileChange]) -> CommitRecord:
    sha, parents, authored, message = (field.decode("utf-8", "replace") for field in header)
    return CommitRecord(sha, tuple(parents.split()), authored, message, tuple(changes))


def commit_patches(git_dir: Path, commits: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(commit, its diff against its first parent)`` for each of ``commits`` (full ids), in order, from
    one ``git diff-tree --stdin`` process fed while it runs. Diffs detect renames and are text as git
    writes it (undecodable bytes surrogate-escaped, as gold reads files)."""
    yield from _diff_tree(git_dir, commits, ["-p", "-M", "--always"])


def _diff_tree(
    git_dir: Path, commits: Iterable[str], options: list[str], config: tuple[str, ...] = ()
) -> Iterator[tuple[str, str]]:
    """``(commit, diff)`` for each of ``commits`` from one ``git diff-tree --stdin [options]``, fed from a
    thread while its answers are read, each checked to come in the order asked. A diff is given once it
    is known to be whole: when the next one begins, or, for the last, once git exited without an error
    (git that fails on a commit, a clone missing one of its blobs, has written part of that diff)."""
    ids = [check_commit_id(commit) for commit in commits]
    if not ids:
        return
    command = ["diff-tree", "--stdin", *options, "--no-color", "--no-ext-diff", "--no-textconv"]
    command += ["--src-prefix=a/", "--dst-prefix=b/", "--format=%x01%H"]
    held: tuple[str, str] | None = None
    with _Streaming(git_dir, command, stdin=True, config=config) as process:
        assert process.stdin is not None
        feeder = threading.Thread(target=_feed, args=(process.stdin, ids), daemon=True)
        feeder.start()
        expected = iter(ids)
        for commit, patch in _split_patches(process.stdout):
            if commit != next(expected, None):
                raise WorkspaceError(f"git diff-tree answered {commit} out of order")
            if held is not None:
                yield held  # complete: the next commit's output began
            held = (commit, patch)
        feeder.join()
    if held is not None:  # git exited well: the last diff is whole (had it failed, it may be cut short)
        yield held


_HUNK_ATTRIBUTES = Path(__file__).with_name("python_hunk_headers.gitattributes")
_HUNK = re.compile(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@ ?(.*)")
_DEFINITION = re.compile(r"[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_][A-Za-z0-9_]*)")
_PYTHON_SUFFIXES = (".py", ".pyi")


def edited_definitions(git_dir: Path, commits: Iterable[str]) -> Iterator[tuple[str, EditedNames]]:
    """``(commit, {(path, name)})`` for each of ``commits`` (full ids), in order: the Python definitions
    its diff against its first parent edits, by simple name, read from one ``git diff-tree --stdin`` with
    no context lines. A hunk's header names the definition it sits in (git's python diff driver); a
    ``def`` or ``class`` line it adds or removes names one more. A change is read in microseconds; git
    needs its blobs, so in a clone missing some, git fails at the first commit that touches one (the
    commits before it are given). The names are what the ranking matches against the snapshot's
    definitions (``rank/history.py``)."""
    options = ["--root", "--always", "-p", "-U0", "--no-renames"]
    attributes = ("-c", f"core.attributesFile={_HUNK_ATTRIBUTES}")
    for commit, patch in _diff_tree(git_dir_of(git_dir) or git_dir, commits, options, attributes):
        yield commit, _definitions_in(patch)


def _definitions_in(patch: str) -> EditedNames:
    """The ``(path, name)`` pairs of a diff with no context lines. Hunk lines are counted from their
    header, so a removed line that reads ``--- x`` is never taken for the next file's header."""
    found: set[tuple[str, str]] = set()
    path = ""
    old = new = 0  # lines of the current hunk still to come
    for line in patch.split("\n"):
        if old > 0 or new > 0:
            if line.startswith("-"):
                old -= 1
            elif line.startswith("+"):
                new -= 1
            elif not line.startswith("\\"):
                old, new = old - 1, new - 1
            if line[:1] in "+-" and path and (match := _DEFINITION.match(line, 1)):
                found.add((path, match.group(1)))
        elif line.startswith("diff --git "):
            path = ""
        elif line.startswith("--- ") and not path:
            path = _python_path(line[4:], "a/")
        elif line.startswith("+++ "):
            path = _python_path(line[4:], "b/") or path
        elif (hunk := _HUNK.match(line)) is not None:
            old = int(hunk.group(1) or 1)
            new = int(hunk.group(2) or 1)
            if path and (match := _DEFINITION.match(hunk.group(3))):
                found.add((path, match.group(1)))
    return frozenset(found)


def _python_path(name: str, prefix: str) -> str:
    """The repository path of a diff header's name when it is a Python file, else ""."""
    path = repo_path_from_git(name.rstrip("\t"))
    if not path.startswith(prefix):
        return ""  # /dev/null, the missing side of an added or deleted file
    path = path[len(prefix) :]
    return path if path.endswith(_PYTHON_SUFFIXES) else ""


def _feed(sink: IO[bytes], ids: list[str]) -> None:
    try:
        for commit in ids:
            sink.write(f"{commit}\n".encode())
        sink.close()
    except (BrokenPipeError, ValueError):  # the reader stopped early and closed the process
        pass


def _split_patches(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """A ``\\x01<id>`` line starts each commit's output (no diff line starts with that byte); the lines
    up to the next one are its diff, after the blank line git puts under the header. Read in large
    chunks and cut at the marks: a Python loop over every line of a history's diffs costs more than git."""
    mark = b"\n" + _COMMIT_MARK.encode()
    pending = b"\n"  # starts with a mark: the output does, once this newline is put before it
    while chunk := stream.read(_CHUNK):
        pieces = (pending + chunk).split(mark)
        if pieces[0]:
            raise WorkspaceError("git diff-tree wrote a diff before any commit header")
        for piece in pieces[1:-1]:
            yield _patch_of(piece + b"\n")  # the newline before the next mark ends this diff's last line
        pending = mark + pieces[-1]  # the last commit's output may go on in the next chunk
    if pending != b"\n":
        yield _patch_of(pending[len(mark) :])


def _patch_of(piece: bytes) -> tuple[str, str]:
    header, _, body = piece.partition(b"\n")
    return header.decode(), body.lstrip(b"\n").decode("utf-8", "surrogateescape")


class BlobReader:
    """File contents at any commit, from one ``git cat-file --batch`` process (a context manager)."""

    def __init__(self, git_dir: Path) -> None:
        self._stream = _Streaming(git_dir, ["cat-file", "--batch"], stdin=True)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BlobReader:
        self._process = self._stream.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.__exit__(*exc)

    def read(self, commit: str, path: str) -> bytes | None:
        """The blob at repository path ``path`` in ``commit``'s tree; None when there is none (no such
        path, a directory, a submodule, or a name git's batch input cannot carry)."""
        raw = path_bytes(path)
        if b"\n" in raw or not raw:
            return None
        return self._object(check_commit_id(commit).encode() + b":" + raw)

    def _object(self, name: bytes) -> bytes | None:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(name + b"\n")
        process.stdin.flush()
        header = process.stdout.readline()
        if not header:
            raise WorkspaceError(f"git cat-file stopped: {self._stream.error()}")
        fields = header.split()
        if len(fields) != 3:  # "<name> missing" or "<name> ambiguous"
            return None
        size = int(fields[2])
        data = process.stdout.read(size + 1)[:size]
        return data if fields[1] == b"blob" else None


def existing_commits(git_dir: Path, commits: Iterable[str]) -> set[str]:
    """Which of ``commits`` (full ids; anything else is left out) are commits the repository holds."""
    wanted = sorted({commit for commit in commits if FULL_SHA.fullmatch(commit)})
    if not wanted:
        return set()
    with _Streaming(git_dir, ["cat-file", "--batch-check"], stdin=True) as process:
        assert process.stdin is not None and process.stdout is not None
        feeder = threading.Thread(target=_feed, args=(process.stdin, wanted), daemon=True)
        feeder.start()
        answers = process.stdout.read().decode().splitlines()
        feeder.join()
    return {
        commit for commit, answer in zip(wanted, answers, strict=False) if answer.split()[1:2] == ["commit"]
    }


class _Streaming:
    """A git process whose output is read as it comes; stderr goes to a file so that it can never fill
    a pipe and stall the process. Leaving the block early ends the process; a failure raises
    WorkspaceError with git's last message."""

    def __init__(
        self, git_dir: Path, args: list[str], *, stdin: bool = False, config: tuple[str, ...] = ()
    ) -> None:
        self.command = ["git", *_STABLE_OUTPUT, *config, f"--git-dir={git_dir}", *args]
        self.args = args
        self.git_dir = git_dir
        self.stdin = stdin
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def __enter__(self) -> subprocess.Popen[bytes]:
        self._stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=git_env(),
            )
        except FileNotFoundError:
            self._stderr.close()
            raise WorkspaceError("git is not installed (it is needed to read repository history)") from None
        return self.process

    def error(self) -> str:
        assert self._stderr is not None
        self._stderr.seek(0)
        return last_line(self._stderr.read())

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        process = self.process
        assert process is not None and self._stderr is not None
        if process.stdin is not None:
            with contextlib.suppress(OSError):  # git already exited
                process.stdin.close()
        # a reader that left early (an error, a generator closed before its end) ends the process;
        # one that read everything waits for git's own exit status
        if kind is not None:
            process.kill()
        elif process.stdout is not None:
            process.stdout.read()
        if process.stdout is not None:
            process.stdout.close()
        status = process.wait()
        message = self.error()
        self._stderr.close()
        if kind is None and status != 0:
            name = " ".join(self.args[:2])
            raise WorkspaceError(f"git {name} failed in {self.git_dir}: {message}")


# --- which repository a directory holds ------------------------------------------------------------------

_GITHUB_URL = re.compile(r"github\.com[:/]+([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/*$")
_SLUG = re.compile(r"([A-Za-z0-9_.-]+?)(?:\+|__)([A-Za-z0-9_.-]+)")


def repository_name(path: Path, git_dir: Path) -> str | None:
    """The ``owner/name`` a repository at ``path`` stands for: from a directory named ``owner+name`` or
    ``owner__name`` (``path`` itself, or its parent for the ``owner+name/repo`` mirror layout), else
    from a GitHub ``origin`` remote; None when neither says."""
    for directory in (path, path.parent) if path.name in ("repo", ".git") else (path,):
        found = _SLUG.fullmatch(directory.name.removesuffix(".git"))
        if found:
            return f"{found.group(1)}/{found.group(2)}"
    result = git(git_dir, "config", "--get", "remote.origin.url", check=False)
    found = _GITHUB_URL.search(result.stdout.decode(errors="replace").strip())
    return f"{found.group(1)}/{found.group(2)}" if found else None


def local_repositories(directory: Path) -> dict[str, Path]:
    """``{owner/name: git directory}`` of the repositories in ``directory`` laid out as the workspace
    finds them (``owner+name`` or ``owner__name``, bare, a work tree, or holding a bare ``repo``)."""
    found: dict[str, Path] = {}
    for entry in sorted(directory.iterdir()):
        named = _SLUG.fullmatch(entry.name.removesuffix(".git"))
        git_dir = git_dir_of(entry) if named and entry.is_dir() else None
        if named and git_dir is not None:
            found.setdefault(f"{named.group(1)}/{named.group(2)}", git_dir)
    return found
