"""Reading the final answer of a model reply: the ranked files and locations it names.

One parser for inference, SFT filtering and the RL reward, so it reads any text in linear time: a regular
expression here never has two ways to match the same characters, and never rescans the rest of the text
from each of many starting points (``<think>.*?</think>`` did, from every unclosed ``<think>``). Tool
calls are read by ``tool_calls.py``.

The answer grammar is the ToolTrain / Agentless one — a fenced block of file path lines, each followed
by ``function: Class.method``, ``function: func`` or ``class: C`` lines — and entity ids
(``path.py::Class.method``, optionally written ``Top_1 : path.py::Class.method``). Bad model output
never raises: an answer that cannot be read is empty and says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from reposearcher_plugin.agent.tool_calls import load_json
from reposearcher_plugin.index.locations import (
    SEPARATOR,
    entity_name_of_line,
    split_location,
)

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_RANK_PREFIX = re.compile(r"^\s*(?:[-*]\s+|\d+[.)]\s+|top[_ ]?\d+\s*[:.)-]\s*)", re.IGNORECASE)
_PATH = re.compile(r"^[\w.\-/\\]+\.[A-Za-z0-9_]+$")


@dataclass
class Answer:
    """Ranked files and entity ids read from a final answer; ``problem`` says what was off, if anything."""

    files: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.files or self.locations)


def drop_thinking(text: str) -> str:
    """The text without its ``<think>...</think>`` sections; an unclosed ``<think>`` and what follows it
    stay. Found with ``str.find``: when one ``<think>`` has no close after it, no later one has either,
    so the scan stops there instead of looking for a close from every later ``<think>``."""
    kept: list[str] = []
    position = 0
    while (start := text.find(THINK_OPEN, position)) >= 0:
        end = text.find(THINK_CLOSE, start + len(THINK_OPEN))
        if end < 0:
            break
        kept.append(text[position:start])
        position = end + len(THINK_CLOSE)
    kept.append(text[position:])
    return "".join(kept)


def answer_blocks(text: str) -> tuple[list[str], bool]:
    """The places an answer may be written, last first, and whether any was fenced.

    ``<think>`` sections are dropped (reasoning quotes candidates it then rejects); an ``<answer>`` tag
    narrows the search; fenced blocks are preferred, and only without one is the bare text read.
    """
    text = drop_thinking(text)
    tagged = _ANSWER_TAG.findall(text)
    if tagged:
        text = tagged[-1]
    fenced = _FENCE.findall(text)
    if fenced:
        return list(reversed(fenced)), True
    return [text], False


def parse_answer(text: str) -> Answer:
    """Read the locations of a final answer (the text of the last reply that calls no tool)."""
    if not text or not text.strip():
        return Answer(problem="the answer is empty")
    blocks, fenced = answer_blocks(text)
    for block in blocks:
        listed = _json_locations(block) if fenced else None
        lines = listed if listed is not None else block.splitlines()
        answer = parse_location_lines(lines, strict=not fenced)
        if not answer.empty:
            if not fenced:
                answer.problem = "the answer has no ``` block; locations were read from its text"
            return answer
    problem = "no location found in the answer's ``` block" if fenced else "the answer has no ``` block"
    return Answer(problem=problem)


# Every ``function:`` line repeats its file's path, so without bounds a long "path" and many such lines
# made the answer quadratically larger than the reply (a 100 KB reply could yield 200 MB of locations).
MAX_PATH_CHARS = 1024  # no repository path comes near; Windows' MAX_PATH is 260
MAX_ANSWER_ITEMS = 1000  # files, and locations: an answer ranks a handful; the rest is not read
# lines of one block: even MAX_ANSWER_ITEMS locations in the Agentless form take 2,000; more is a model
# writing in a loop, and reading each of its lines would cost more than the rest of the parse
MAX_ANSWER_LINES = 10_000


def parse_location_lines(lines: Iterable[str], strict: bool = False) -> Answer:
    """Agentless lines (path, then ``function:`` / ``class:`` lines) and entity ids, in written order.

    ``strict`` (used for unfenced prose) accepts only lines that are nothing but a location, so that
    sentences which merely mention a file are not taken for an answer. At most MAX_ANSWER_ITEMS files
    and as many locations, from at most MAX_ANSWER_LINES lines (``problem`` says when there were more).
    """
    files: dict[str, None] = {}  # in order, each once
    locations: dict[str, None] = {}
    current: str | None = None
    # A line reads the same wherever it stands, so each distinct line is read once: a long answer that
    # repeats itself (small models loop) costs a dictionary lookup per line, not a parse.
    readings: dict[str, _LineReading] = {}
    for number, raw in enumerate(lines):
        if len(files) >= MAX_ANSWER_ITEMS or len(locations) >= MAX_ANSWER_ITEMS:
            return Answer(
                files=list(files),
                locations=list(locations),
                problem=f"the answer reached {MAX_ANSWER_ITEMS:,} files or locations; no more were read",
            )
        if number >= MAX_ANSWER_LINES:
            return Answer(
                files=list(files),
                locations=list(locations),
                problem=f"the answer is over {MAX_ANSWER_LINES:,} lines; the rest was not read",
            )
        reading = readings.get(raw)
        if reading is None:
            reading = readings[raw] = _read_location_line(raw, strict)
        kind, path, name = reading
        if kind == "name":
            if current is not None:
                locations[f"{current}{SEPARATOR}{name}"] = None
        elif kind == "path":
            files[path] = None
            current = path
            if name:
                locations[f"{path}{SEPARATOR}{name}"] = None
    return Answer(files=list(files), locations=list(locations))


# ("name", "", name) for a keyword line, ("path", path, name or "") for a location, ("", "", "") otherwise
_LineReading = tuple[str, str, str]
_NOTHING: _LineReading = ("", "", "")


def _read_location_line(raw: str, strict: bool) -> _LineReading:
    # quoted and comma-separated (a JSON list written line by line) reads the same
    line = raw.strip().strip("`").rstrip(",").strip().strip("\"'")
    if rank := _RANK_PREFIX.match(line):  # a match at the start, not a search through the line
        line = line[rank.end() :]
    line = line.strip()
    if not line:
        return _NOTHING
    if ":" in line and (name := entity_name_of_line(line)) is not None:
        # a keyword line: function: / class: / method: / variable: ...
        return ("name", "", name) if name else _NOTHING
    candidate = line if strict else line.split(None, 1)[0]
    if "." not in candidate:  # a path has a suffix: the cheap test first (a reply can be many lines)
        return _NOTHING
    path, qualname = split_location(candidate)
    if not _looks_like_path(path):
        return _NOTHING
    return ("path", path, qualname or "")


_MAX_JSON_ANSWER = 200_000  # characters; a longer block is read line by line


def _json_locations(block: str) -> list[str] | None:
    """A fenced block that is JSON: ``{"locations": [...]}`` (the submit tool's arguments, written as the
    answer; small models do), ``{"arguments": {"locations": [...]}}`` or a plain list of strings."""
    text = block.strip()
    if not text.startswith(("{", "[")) or len(text) > _MAX_JSON_ANSWER:
        return None
    value, problem = load_json(text)
    if problem:
        return None
    if isinstance(value, dict):
        inner = value.get("arguments")
        value = (inner if isinstance(inner, dict) else value).get("locations")
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _looks_like_path(text: str) -> bool:
    return len(text) <= MAX_PATH_CHARS and bool(_PATH.match(text)) and not text.startswith(".")
