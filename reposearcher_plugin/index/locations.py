"""The location grammar: entity ids (docs/formats.md) and the Agentless ``function: A.b`` lines.

Shared by the agent's answer parser and the evaluation readers, so both read locations one way.

An entity id is ``path::Qual.name``; a file alone is its path. Published outputs also write
``path:Qual.name`` (LocAgent, Loc-Bench gold), ``./path``, ``/path`` or Windows separators; everything
is brought to the one form here so that comparison is plain string equality.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from reposearcher_plugin.index.names import slashed

SEPARATOR = "::"
_LEADING_DOT_SLASHES = re.compile(r"(?:\./)*")


def normalize_path(path: str) -> str:
    """``./a\\b.py`` and ``/a/b.py`` become ``a/b.py``: outputs are relative to the repository root.
    Backslashes that escape a non-UTF-8 name (``bad_\\xff.py``, index/names.py) are kept."""
    path = slashed(path.strip())
    while "//" in path:
        path = path.replace("//", "/")
    # one match for all leading "./": a slice per "./" was quadratic on "./././..."
    return path[_LEADING_DOT_SLASHES.match(path).end() :].lstrip("/")


def split_location(location: str, clean_paths: bool = True) -> tuple[str, str | None]:
    """``path::A.b`` -> (``path``, ``A.b``); ``path:A.b`` (single colon) likewise; ``path`` -> (path, None).

    Only the first ``::`` separates, so ``a::b::c`` keeps ``b::c`` as its name and stays visibly odd
    (the tooltrain protocol ignores such gold items, as its script does). ``clean_paths=False`` keeps
    the path exactly as written.
    """
    clean = normalize_path if clean_paths else _as_written
    if SEPARATOR in location:
        path, name = location.split(SEPARATOR, 1)
    elif ":" in location and not any(mark in location.rsplit(":", 1)[1] for mark in "/\\"):
        # A qualified name never holds a colon, so the last one separates (a drive letter, ``C:\\x.py``,
        # is followed by a path, not a name).
        path, name = location.rsplit(":", 1)
    else:
        return clean(location), None
    name = name.strip()
    return clean(path), name or None


def _as_written(path: str) -> str:
    return path


def normalize_location(location: str, clean_paths: bool = True) -> str:
    """The entity-id form of any location string."""
    path, name = split_location(location, clean_paths)
    return path if name is None else f"{path}{SEPARATOR}{name}"


def file_of(location: str) -> str:
    return location.split(SEPARATOR, 1)[0]


def name_of(location: str) -> str | None:
    """The qualified name without its file, or None for a file alone."""
    parts = location.split(SEPARATOR, 1)
    return parts[1] if len(parts) == 2 and parts[1] else None


def module_of(location: str) -> str | None:
    """The module of an entity: its class or top-level function, ``path::A`` for ``path::A.b.c``."""
    name = name_of(location)
    if name is None:
        return None
    return f"{file_of(location)}{SEPARATOR}{name.split('.', 1)[0]}"


def unique(items: Iterable[str]) -> list[str]:
    """Drop repeats, keeping the first occurrence: a ranking lists each item once."""
    return list(dict.fromkeys(items))


ENTITY_KEYWORDS = frozenset({"function", "class"})
# Lines that Agentless-style outputs legitimately carry but that name no entity.
SKIPPED_KEYWORDS = frozenset({"method", "variable", "line", "lines"})


def entity_name_of_line(line: str) -> str | None:
    """``function: A.b`` -> ``A.b``; a blank or skipped line -> ``""``; an unreadable one -> None."""
    line = line.strip()
    if not line:
        return ""
    keyword, colon, rest = line.partition(":")
    keyword = keyword.strip().lower()
    if not colon or not keyword.isidentifier():
        return None
    if keyword in SKIPPED_KEYWORDS:
        return ""
    if keyword not in ENTITY_KEYWORDS:
        return None
    # A name never holds ": "; what follows one is commentary (``class: Axes.function: bar``).
    name = rest.split(": ", 1)[0].strip()
    return name or None
