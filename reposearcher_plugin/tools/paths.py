"""Path arguments from a model are untrusted: normalise them and keep them inside the repository root."""

from __future__ import annotations

import os
from pathlib import Path

from reposearcher_plugin.index.names import is_escaped_form, os_path, repo_path

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
    """Return ``path`` as a clean "/"-separated repository path (index/names.py) relative to ``root``
    ("" for the root itself).

    Accepts what models write (``./a/b.py``, ``a\\b.py``, a trailing slash, a name escaped as the index
    writes it, ``bad_\\xff.py``) and refuses anything that would leave the root, including symlinks that
    resolve outside it.
    """
    text = _filesystem_form(root, path.strip())
    if not text or text in (".", "./", "/"):
        return ""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        raise PathRefused(f"refused: {quoted(path)} is no file name (it holds a lone surrogate)") from None
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
    return repo_path(relative)


def _filesystem_form(root: Path, text: str) -> str:
    """``text`` in the form ``os`` functions take. A backslash either belongs to an escape of a repository
    path (``\\xff``, ``\\\\``) or, as in the Windows paths models write, separates directories. A text whose
    every backslash is such an escape is read as one, unless only the other reading names something
    that exists (``arch\\x86``: a directory ``x86`` rather than a file whose name ends in byte 0x86)."""
    if "\\" not in text:
        return text
    windows = text.replace("\\", "/")
    if not is_escaped_form(text):
        return windows
    escaped = os_path(text)
    if os.path.lexists(os.path.join(root, escaped)) or not os.path.lexists(os.path.join(root, windows)):
        return escaped
    return windows
