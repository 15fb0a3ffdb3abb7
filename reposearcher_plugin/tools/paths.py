"""Path arguments from a model are untrusted: normalise them and keep them inside the repository root."""

from __future__ import annotations

import os
from pathlib import Path

MAX_NAME_BYTES = 255  # one path component, as file systems allow
MAX_PATH_CHARS = 4096


class PathRefused(ValueError):
    """A path argument points outside the repository (absolute, ``..``, or through a symlink), or is no
    path a file system could hold (a NUL byte, an over-long name)."""


ECHO_CHARS = 200


def quoted(text: str, limit: int = ECHO_CHARS) -> str:
    """A model-written argument as an observation quotes it: cut, so a megabyte argument stays out."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f" (cut; {len(text)} characters)"


def _drive_letter_outside(root: Path, text: str) -> bool:
    """``C:/x`` or ``C:`` names a Windows drive unless the repository holds a ``C:`` of its own. Only the
    message depends on it: on POSIX such a path stays under the root, and the checks below still hold.
    ``c:colon.py`` (no separator after the colon) is a plain file name."""
    if not (len(text) > 1 and text[1] == ":" and text[0].isascii() and text[0].isalpha()):
        return False
    if len(text) > 2 and text[2] != "/":
        return False
    return not os.path.lexists(root / text[:2])


def confine(root: Path, path: str) -> str:
    """Return ``path`` as a clean "/"-separated path relative to ``root`` ("" for the root itself).

    Accepts what models write (``./a/b.py``, ``a\\b.py``, a trailing slash) and refuses anything that would
    leave the root, including symlinks that resolve outside it.
    """
    text = path.strip().replace("\\", "/")
    if not text or text in (".", "./", "/"):
        return ""
    if "\0" in text:
        raise PathRefused(f"refused: {quoted(path)} contains a NUL character")
    if len(text) > MAX_PATH_CHARS:
        raise PathRefused(f"refused: {quoted(path)} is longer than {MAX_PATH_CHARS} characters")
    if text.startswith("/") or _drive_letter_outside(root, text):
        raise PathRefused(
            f"refused: {quoted(path)} is an absolute path; give a path relative to the repository root"
        )
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathRefused(f"refused: {quoted(path)} leaves the repository root")
            parts.pop()
            continue
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            raise PathRefused(f"refused: {quoted(path)} has a name longer than {MAX_NAME_BYTES} bytes")
        parts.append(part)
    relative = "/".join(parts)
    try:
        resolved = Path(os.path.realpath(root / relative))
    # a loop of symlinks, a name the file system refuses, or a chain of symlinks longer than the recursion
    # limit (os.path.realpath recurses once per link; the kernel itself gives up after 40)
    except (OSError, ValueError, RecursionError) as error:
        raise PathRefused(f"refused: {quoted(path)} cannot be resolved ({type(error).__name__})") from None
    if resolved != root and root not in resolved.parents:
        raise PathRefused(f"refused: {quoted(path)} resolves outside the repository (through a symlink)")
    return relative
