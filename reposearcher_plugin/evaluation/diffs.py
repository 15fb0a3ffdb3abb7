"""Unified diffs, read one way for the whole package: ``unidiff`` parses them, and the file names of a
diff become repository paths (index/names.py). Gold labels (``gold.py``) and the repair patcher's
majority vote (``repair/voting.py``) both read patches through here.

It sits in ``evaluation``, beside ``gold.py``; the ``repair`` package, a layer above, imports it.
"""

from __future__ import annotations

import re

import unidiff

from reposearcher_plugin.index.names import repo_path_from_git

NO_FILE = "/dev/null"  # the missing side of a diff: the base of a new file, the end of a deleted one

_HUNK_HEADER = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)", re.DOTALL)
_HUNK_LINE_MARKS = (" ", "-", "+", "\\")


class DiffError(ValueError):
    """Text that is not a unified diff ``unidiff`` can read."""


def parse_diff(text: str, *, recount: bool = False) -> unidiff.PatchSet:
    """The files and hunks of ``text``. A hunk must hold the lines its header counts, as ``git apply``
    wants; with ``recount``, a diff that fails on that is read again with each header's counts taken
    from the lines under it (``git apply --recount``), for diffs written by hand or by a model."""
    try:
        return unidiff.PatchSet(text)
    except unidiff.UnidiffParseError as error:
        if not recount:
            raise DiffError(str(error)) from None
        strict_error = error
    try:
        return unidiff.PatchSet(_recounted(text))
    except unidiff.UnidiffParseError:
        raise DiffError(str(strict_error)) from None


def diff_paths(patched: unidiff.PatchedFile) -> tuple[str, str]:
    """``(path at the base, path after the patch)`` as repository paths, without git's ``a/`` and ``b/``
    prefixes; ``NO_FILE`` for the side of an added or deleted file that does not exist."""
    return _repository_path(patched.source_file, "a/"), _repository_path(patched.target_file, "b/")


def _repository_path(name: str, prefix: str) -> str:
    path = repo_path_from_git(name)  # git quotes a name holding anything but printable ASCII
    return path.removeprefix(prefix) if path != NO_FILE else path


def _recounted(text: str) -> str:
    """``text`` with each hunk header counting the lines under it: a hunk runs to the next hunk or file
    header, or to the first line that is no hunk line."""
    lines = text.split("\n")  # only "\n" ends a diff line: a line may hold "\r" or a form feed
    for number, line in enumerate(lines):
        header = _HUNK_HEADER.fullmatch(line)
        if header is None:
            continue
        old = new = 0
        for following in range(number + 1, len(lines)):
            body = lines[following]
            if _ends_hunk(lines, following):
                break
            old += not body.startswith(("+", "\\"))  # an empty line is a context line whose space was lost
            new += not body.startswith(("-", "\\"))
        old_start, new_start, rest = header.groups()
        lines[number] = f"@@ -{old_start},{old} +{new_start},{new} @@{rest}"
    return "\n".join(lines)


def _ends_hunk(lines: list[str], number: int) -> bool:
    line = lines[number]
    if number == len(lines) - 1 and not line:  # what follows the diff's last newline
        return True
    if line.startswith(("@@ ", "diff --git ")):
        return True
    if line.startswith("--- ") and number + 1 < len(lines) and lines[number + 1].startswith("+++ "):
        return True  # the next file's header
    return bool(line) and not line.startswith(_HUNK_LINE_MARKS)
