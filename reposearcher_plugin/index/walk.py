"""Find the files of a repository worth indexing, and say why the others are left out.

Nothing here reads file contents: the walk only lists and stats, so a warm index load can decide from
(size, mtime) alone which cached parses are still valid, as git's index does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reposearcher_plugin.index.languages import module_for
from reposearcher_plugin.index.names import repo_path
from reposearcher_plugin.index.reading import special_kind

# Directories that never hold a repository's own source: VCS data, caches, environments, vendored
# packages. Other hidden directories (.github, a test fixture's .hidden/) are indexed like any other.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".tox",
        ".nox",
        ".venv",
        ".eggs",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".idea",
        ".vscode",
        "__pycache__",
        "node_modules",
        "site-packages",
        "venv",
    }
)
DEFAULT_MAX_FILE_BYTES = 1 << 20  # 1 MiB: larger "source" files are generated or vendored bundles


class IndexInputError(ValueError):
    """The path given to the indexer cannot be indexed at all (missing, not a directory)."""


@dataclass
class SourceFile:
    path: str  # relative to the root, "/"-separated, as a repository path (index/names.py)
    module: str  # the language module that parses it
    size: int
    mtime_ns: int


@dataclass
class Scan:
    sources: list[SourceFile] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)  # kept for the structure view, not parsed
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason


def resolve_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise IndexInputError(f"cannot index {str(root)!r}: no such directory")
    if not path.is_dir():
        raise IndexInputError(f"cannot index {str(root)!r}: not a directory")
    return path.resolve()


def scan(root: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Scan:
    """List ``root`` recursively, in path order. Symlinks are never followed."""
    result = Scan()
    pending = [("", str(root))]
    while pending:
        prefix, directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as error:
            result.skipped[prefix.rstrip("/") or "."] = f"unreadable directory: {error.strerror}"
            continue
        subdirectories = []
        for entry in entries:
            # the name as a repository path (index/names.py): never a surrogate, whatever the bytes
            relative = prefix + repo_path(entry.name)
            # The entry type comes from readdir (no system call); only source files are stat'ed.
            try:
                if entry.is_file(follow_symlinks=False):
                    module = module_for(entry.name)
                    if module is None:
                        result.other_files.append(relative)
                        continue
                    info = entry.stat(follow_symlinks=False)
                    if info.st_size > max_file_bytes:
                        result.skipped[relative] = f"too large ({info.st_size} bytes > {max_file_bytes})"
                    else:
                        result.sources.append(SourceFile(relative, module, info.st_size, info.st_mtime_ns))
                elif entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIP_DIRS:
                        subdirectories.append((relative + "/", entry.path))
                elif entry.is_symlink():
                    result.skipped[relative] = "symlink (not followed)"
                else:  # a FIFO, socket or device: listed with its kind, never opened
                    kind = special_kind(entry.stat(follow_symlinks=False).st_mode)
                    result.skipped[relative] = f"not a regular file ({kind})"
            except OSError as error:
                result.skipped[relative] = f"unreadable: {error.strerror}"
        pending.extend(subdirectories)
    # one sort at the end is cheaper than one per directory, and gives the same deterministic order
    result.sources.sort(key=lambda source: source.path)
    result.other_files.sort()
    result.skipped = dict(sorted(result.skipped.items()))
    return result
