"""The text a host shows for a localization result: one rendering for SWE-agent's instances file,
mini-swe-agent's prompt, the OpenHands hook's context and the MCP ``localize`` summary.

Hosts put a ranking in two kinds of place, hence two layouts and no more:

- **sections** (a block of its own in a prompt: SWE-agent, mini-swe-agent): a heading and a numbered
  list for the ranked definitions, then a blank line, a heading and a numbered list for the ranked
  files; a list with nothing in it is left out, and with nothing at all the text is empty (an instance
  template can leave its section out with ``{% if localization %}``).
- **compact** (beside something else: the OpenHands hook's context next to the user's message, the MCP
  summary before the JSON): the numbered definitions, then one line of files; an empty list says so.

A host adds only its own first line (who ranked, how long, what the reader should make of it) and what
only it has (the MCP summary's error and trajectory lines). Given the index, each definition shows its
kind and line span as the tools print them (``path::Class.method (method, lines 9-11)``), so a model can
go straight to the code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reposearcher_plugin.index import RepoIndex

DEFINITIONS_HEADING = "Functions and classes most likely to need changes, most likely first:"
FILES_HEADING = "Files, most likely first:"
NO_DEFINITIONS = "(no functions or classes located)"


def _located(location: str, index: RepoIndex | None) -> str:
    entity = index.find(location) if index is not None else None
    if entity is None:
        return location
    return f"{location} ({entity.kind}, lines {entity.start}-{entity.end})"


def _numbered(items: Iterable[str]) -> list[str]:
    return [f"{rank}. {item}" for rank, item in enumerate(items, start=1)]


def render_localization(
    locations: Sequence[str],
    files: Sequence[str],
    *,
    header: str | None = None,
    compact: bool = False,
    max_locations: int = 10,
    max_files: int = 5,
    index: RepoIndex | None = None,
) -> str:
    """The ranked ``locations`` (entity ids) and ``files``, best first, cut to ``max_locations`` and
    ``max_files``, in the sections layout or the ``compact`` one (module docstring), under ``header``.
    With ``index``, each definition it holds shows its kind and line span."""
    numbered = _numbered(_located(location, index) for location in locations[:max_locations])
    files = files[:max_files]
    if compact:
        lines = numbered or [NO_DEFINITIONS]
        lines.append("Files: " + (", ".join(files) if files else "(none)"))
    else:
        sections = [[DEFINITIONS_HEADING, *numbered]] if numbered else []
        sections += [[FILES_HEADING, *_numbered(files)]] if files else []
        if not sections:
            return ""
        lines = ["\n\n".join("\n".join(section) for section in sections)]
    return "\n".join([header, *lines] if header else lines)
