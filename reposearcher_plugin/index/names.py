"""How a file name becomes the text of a repository path (entity ids, observations, result rows) and back.

A Linux file name is bytes, and ``os.listdir`` hands the bytes that are not UTF-8 over as lone surrogates
(``b"bad_\\xff.py"`` -> ``"bad_\\udcff.py"``), which no UTF-8 writer, JSON serializer or MCP transport
accepts. A repository path is therefore written as follows, and only this form ever leaves the index:

- UTF-8 text stays as it is;
- a byte that is not part of valid UTF-8 is written ``\\xhh`` (two lowercase hex digits): ``bad_\\xff.py``;
- a control character (below 0x20, and 0x7f) is written ``\\xhh`` too, so a newline in a name cannot
  forge a line of an observation;
- a backslash is written ``\\\\``, so a real ``bad_\\xff.py`` (with a backslash) is ``bad_\\\\xff.py`` and
  no two names share a text.

The text is valid UTF-8, names distinct files distinctly, and maps back to the exact bytes
(``path_bytes``, ``os_path``), so a tool argument copied from an observation finds the file again.
"""

from __future__ import annotations

import os
import re
from typing import Any

_NEEDS_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})?")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_GIT_ESCAPE = re.compile(r'\\([abtnvfr"\\]|[0-3][0-7]{2})?')
_GIT_CHARACTERS = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    # surrogateescape decoding put each undecodable byte at U+DC80..U+DCFF
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def repo_path_from_bytes(raw: bytes) -> str:
    """The repository-path text of a name (or a "/"-separated path) given as bytes."""
    return _NEEDS_ESCAPE.sub(_escaped, raw.decode("utf-8", "surrogateescape"))


def repo_path(name: str) -> str:
    """The repository-path text of a name as ``os`` functions return it (surrogate-escaped)."""
    if not _NEEDS_ESCAPE.search(name):  # nearly every name: plain UTF-8 text
        return name
    return repo_path_from_bytes(os.fsencode(name))


def path_bytes(path: str) -> bytes:
    """The bytes a repository-path text stands for: the inverse of ``repo_path_from_bytes``.

    Lenient where nothing is ambiguous: upper-case hex digits, and surrogate-escaped characters as
    ``os.listdir`` gives them, are read too. A backslash that starts no escape is a ``ValueError``."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(path):
        out += path[position : match.start()].encode("utf-8", "surrogateescape")
        escape = match.group(1)
        if escape is None:
            raise ValueError(f"a backslash at {match.start()} starts no escape (\\\\ or \\xhh)")
        out += b"\\" if escape == "\\" else bytes((int(escape[1:], 16),))
        position = match.end()
    out += path[position:].encode("utf-8", "surrogateescape")
    return bytes(out)


def repo_path_from_git(name: str) -> str:
    """A path as git writes it in a diff header as a repository path. git puts a name holding anything
    but printable ASCII in double quotes, with C escapes and octal bytes (core.quotePath, the default):
    ``"pkg/caf\\303\\251.py"``. Anything else is taken as written."""
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return name
    out = bytearray()
    position = 0
    body = name[1:-1]
    for match in _GIT_ESCAPE.finditer(body):
        out += body[position : match.start()].encode("utf-8", "surrogateescape")
        escape = match.group(1)
        if escape is None:  # not git's quoting after all
            return name
        out += bytes((int(escape, 8) if escape[0].isdigit() else _GIT_CHARACTERS[escape],))
        position = match.end()
    out += body[position:].encode("utf-8", "surrogateescape")
    return repo_path_from_bytes(bytes(out))


def os_path(path: str) -> str:
    """The form ``open`` and ``os.stat`` take of a repository-path text (relative, "/"-separated)."""
    if "\\" not in path:  # nothing escaped; any surrogates are already the os form
        return path
    return os.fsdecode(path_bytes(path))


def is_escaped_form(text: str) -> bool:
    """Whether every backslash of ``text`` is an escape this module writes (``\\\\``, ``\\xhh`` of a
    byte that needs one); a path with any other backslash is a Windows path instead."""
    if "\\" not in text:
        return True
    try:
        raw = path_bytes(text)
    except ValueError:
        return False
    return repo_path_from_bytes(raw) == _ESCAPE.sub(lambda escape: escape.group().lower(), text)


def slashed(text: str) -> str:
    """``text`` with its backslashes read as the directory separators of a Windows path, unless every
    one of them is an escape of a repository path (``is_escaped_form``), which it then stays."""
    return text if is_escaped_form(text) else text.replace("\\", "/")


def utf8_text(text: str) -> str:
    """``text`` with every lone surrogate (only text a model wrote can still hold one) written as its
    ``\\uXXXX`` escape: always encodable to UTF-8, and inside a JSON string that escape is still valid."""
    if not _LONE_SURROGATE.search(text):
        return text
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def utf8_value(value: Any) -> Any:
    """``utf8_text`` over a JSON-like value: dict keys and values, list and tuple items, strings."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, dict):
        return {utf8_value(key): utf8_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [utf8_value(item) for item in value]
    return value
