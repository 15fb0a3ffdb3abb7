"""What a run's answer becomes: its locations resolved against the index and kept to what the repository
holds, or, when the model gave none, the fallback: the locations its tool calls returned, ranked by the
offline default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Sequence
from typing import TYPE_CHECKING

from reposearcher_plugin.agent.result import Step
from reposearcher_plugin.index import DEFINITION_KINDS, RepoIndex
from reposearcher_plugin.index.locations import SEPARATOR, file_of, split_location
from reposearcher_plugin.tools import FINAL_TOOLS, RepoTools

if TYPE_CHECKING:
    from reposearcher_plugin.rank.scoring import Ranking

FALLBACK_NOTE = (
    "the model gave no readable answer: the result is the {count} locations its tool calls returned, "
    "ranked by the offline default"
)
NOTHING_OBSERVED = "the model gave no readable answer and its tool calls returned nothing"
# an entity as the tools name it in their observations: "path.py::Class.method (method, lines 3-9)"
_OBSERVED_ENTITY = re.compile(r"([^\s:()'\"]+::[\w.$<>-]+) \((?:class|function|method)\b")
_OBSERVED_FILE = re.compile(r"^([^\s:()'\"]+) \(lines \d+-\d+ of \d+\)", re.MULTILINE)


def resolve_locations(index: RepoIndex, locations: list[str]) -> list[str]:
    """Fix the commonest slip of small models: a method written without its class. ``path::m`` becomes
    ``path::C.m`` when ``path`` has no ``m`` of its own and exactly one definition ending in ``.m``."""
    resolved = []
    for location in locations:
        path, name = split_location(location)
        if name and path in index.files and index.find(f"{path}{SEPARATOR}{name}") is None:
            # the definitions of the file whose qualified names end in ".name"
            found = index.lookup(name, DEFINITION_KINDS, path)
            candidates = list(dict.fromkeys(entity.qualname for _, entity in found))
            if len(candidates) == 1:
                location = f"{path}{SEPARATOR}{candidates[0]}"
        resolved.append(location)
    return resolved


def in_repository(
    index: RepoIndex, known_files: Container[str], files: list[str], locations: list[str]
) -> tuple[list[str], list[str], int]:
    """Only what exists, and how many were dropped: small models copy the prompt's example
    (``path/to/file.py``) or invent paths, and an answer made only of those is no answer (the fallback
    then applies). A file counts when it is in ``known_files``; a location when its file is indexed."""
    kept_files = [path for path in files if path in known_files]
    kept = [location for location in locations if file_of(location) in index.files]
    return kept_files, kept, (len(files) - len(kept_files)) + (len(locations) - len(kept))


def fallback(
    steps: Sequence[Step], index: RepoIndex, repo_tools: RepoTools, ranking: Callable[[], Ranking]
) -> tuple[list[str], list[str], str]:
    """The locations the run's successful tool calls returned, ranked by the offline default (computed
    only when there is something to rank), and the trajectory's note on it: (files, locations, note)."""
    observed: dict[str, None] = {}
    files: dict[str, None] = {}
    for step in steps:
        for call in step.calls:
            if not call.ok or call.name in FINAL_TOOLS:
                continue
            for match in _OBSERVED_ENTITY.finditer(call.observation):
                if repo_tools.location_exists(match.group(1)):
                    observed.setdefault(match.group(1))
            for match in _OBSERVED_FILE.finditer(call.observation):
                if match.group(1) in index.files:
                    files.setdefault(match.group(1))
    if not observed and not files:
        return [], [], NOTHING_OBSERVED
    ranked = ranking()
    position = {location: rank for rank, location in enumerate(ranked.locations)}
    file_position = {path: rank for rank, path in enumerate(ranked.files)}
    unranked = len(position)
    locations = sorted(observed, key=lambda loc: position.get(loc, unranked))
    viewed = sorted(files, key=lambda path: file_position.get(path, len(file_position)))
    all_files = [*dict.fromkeys([*(file_of(loc) for loc in locations), *viewed])]
    return all_files, locations, FALLBACK_NOTE.format(count=len(locations) or len(all_files))
