"""Write the tree of one commit into a directory, byte for byte as git stores it.

Blobs are streamed out of ``git cat-file --batch`` and written as they are. ``git archive`` and
``git checkout-index`` would apply the repository's own ``.gitattributes``: scikit-learn marks
``build_tools``, ``benchmarks`` and every dot file ``export-ignore`` (``git archive`` drops them),
xarray has ``export-subst`` files (rewritten by ``git archive``), pytest has ``*.bat eol=crlf``
(rewritten by a checkout). The gold patches and the SWE-bench line numbers refer to the stored bytes.
On a Django base commit (6,603 files, 40 MB) all three methods cost the same, at the floor of creating
that many files: the file system sets the cost, not git (``eval/bench_snapshot.py``, docs/workspace.md).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import NamedTuple

from reposearcher_plugin.index.names import repo_path
from reposearcher_plugin.workspace.errors import WorkspaceError
from reposearcher_plugin.workspace.git import git, git_env

_BLOCK = 4096
_WRITERS = 4
_BATCH_FILES = 64
_BATCH_BYTES = 4 << 20
READ_ONLY_FILE = 0o444
READ_ONLY_EXECUTABLE = 0o555
READ_ONLY_DIR = 0o555


class TreeEntry(NamedTuple):
    mode: str  # git mode: 100644, 100755, 120000 (symlink), 160000 (submodule)
    kind: str  # blob or commit
    oid: str
    path: str


class Materialized(NamedTuple):
    files: int
    bytes: int  # approximate disk use: every file and directory rounded up to 4 KiB blocks
    # repository paths (index/names.py) whose blobs the repository lacks (only with allow_missing)
    missing: tuple[str, ...] = ()


def list_tree(git_dir: Path, commit: str) -> list[TreeEntry]:
    listing = git(git_dir, "ls-tree", "-r", "-z", "--full-tree", commit).stdout
    entries = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        path = os.fsdecode(raw_path)
        _check_path(path)
        entries.append(TreeEntry(mode, kind, oid, path))
    return entries


def _check_path(path: str) -> None:
    """git never stores these, but a crafted tree could: refuse rather than write outside the target."""
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..", ".git") for part in parts):
        raise WorkspaceError(f"refusing to write unsafe path {path!r} from the repository tree")


def materialize(git_dir: Path, commit: str, target: Path, *, allow_missing: bool = False) -> Materialized:
    """Write ``commit``'s tree under ``target`` (an existing empty directory) and make it read-only.

    A blob the repository lacks is an error, unless ``allow_missing``: then the file is left out and
    reported. Mirrors that leave out their largest blobs exist (astropy's IERS tables are absent from
    the mirrors this project fetches); deriving gold needs only the files a patch edits."""
    entries = list_tree(git_dir, commit)
    blobs = [entry for entry in entries if entry.kind == "blob"]
    missing: list[str] = []
    # every directory first, parents before children ("a" sorts before "a/b"): writers only create files
    parents = {entry.path.rpartition("/")[0] for entry in blobs}
    submodules = {entry.path for entry in entries if entry.kind == "commit"}  # stay empty directories
    directories = _with_ancestors((parents | submodules) - {""})
    for directory in sorted(directories):
        os.mkdir(target / directory)

    process = subprocess.Popen(
        ["git", "-c", "safe.directory=*", f"--git-dir={git_dir}", "cat-file", "--batch", "--buffer"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=git_env(),
    )
    assert process.stdin is not None and process.stdout is not None

    def feed() -> None:
        # from a thread: git writes objects while we are still sending ids, and both pipes are bounded
        try:
            process.stdin.write(b"".join(f"{entry.oid}\n".encode() for entry in blobs))  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    finished = False
    total = 0
    # File creation is system time, not CPU in Python (os.open / os.write release the GIL): a few writer
    # threads overlap it, as `git checkout-index` does with checkout.workers.
    # imported here: `localize --repo` reads history through this package and never materializes
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(_WRITERS) as writers:
        pending: list[Future[None]] = []
        batch: list[tuple[Path, str, bytes]] = []
        batch_bytes = 0
        try:
            out = process.stdout
            for entry in blobs:
                header = out.readline().split()
                if header[-1:] == [b"missing"] and allow_missing:
                    missing.append(repo_path(entry.path))  # written to a UTF-8 marker file
                    continue
                if len(header) != 3 or header[1] != b"blob":
                    raise WorkspaceError(
                        f"object {entry.oid} ({repo_path(entry.path)}) of commit {commit} is missing from "
                        f"{git_dir} (a mirror without its largest blobs?)"
                    )
                size = int(header[2])
                data = out.read(size)
                out.read(1)  # the newline after each object
                batch.append((target / entry.path, entry.mode, data))
                batch_bytes += size
                total += -(-size // _BLOCK) * _BLOCK
                if len(batch) >= _BATCH_FILES or batch_bytes >= _BATCH_BYTES:
                    pending.append(writers.submit(_write_files, batch))
                    batch, batch_bytes = [], 0
                    while len(pending) > 2 * _WRITERS:  # bounded memory: wait for the oldest batch
                        pending.pop(0).result()
            pending.append(writers.submit(_write_files, batch))
            for done in pending:
                done.result()
            finished = True
        finally:
            if not finished:  # git may be blocked writing objects nobody will read: stop it
                process.kill()
            feeder.join()
            process.stdout.close()
            stderr = process.stderr.read() if process.stderr else b""
            process.wait()
    if process.returncode != 0:
        raise WorkspaceError(f"git cat-file failed in {git_dir}: {stderr.decode(errors='replace').strip()}")
    make_read_only_dirs(target, directories)
    written = len(blobs) - len(missing)
    return Materialized(written, total + _BLOCK * (len(directories) + 1), tuple(missing))


def _with_ancestors(directories: set[str]) -> set[str]:
    found: set[str] = set()
    for directory in directories:
        while directory and directory not in found:
            found.add(directory)
            directory = directory.rpartition("/")[0]
    return found


def _write_files(batch: list[tuple[Path, str, bytes]]) -> None:
    for destination, mode, data in batch:
        if mode == "120000":
            os.symlink(data, destination)
            continue
        # created read-only; the descriptor we hold may still write
        permissions = READ_ONLY_EXECUTABLE if mode == "100755" else READ_ONLY_FILE
        handle = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
        finally:
            os.close(handle)


def make_read_only_dirs(target: Path, directories: set[str]) -> None:
    for directory in sorted(directories, key=len, reverse=True):
        os.chmod(target / directory, READ_ONLY_DIR)
    os.chmod(target, READ_ONLY_DIR)


def make_writable(root: Path) -> None:
    """Give the owner write access to every directory under ``root`` again, so it can be removed."""
    if root.is_symlink() or not root.is_dir():
        return
    os.chmod(root, 0o755)
    for directory, subdirectories, _ in os.walk(root):
        for name in subdirectories:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)
