"""Reading model replies: tool calls (native function calling or hermes ``<tool_call>`` text) and answers.

One parser for inference, SFT filtering and the RL reward, so it reads any text in linear time: a regular
expression here never has two ways to match the same characters, and never rescans the rest of the text
from each of many starting points (``<think>.*?</think>`` did, from every unclosed ``<think>``).

The answer grammar is the ToolTrain / Agentless one — a fenced block of file path lines, each followed
by ``function: Class.method``, ``function: func`` or ``class: C`` lines — and entity ids
(``path.py::Class.method``, optionally written ``Top_1 : path.py::Class.method``). Bad model output
never raises: a call that cannot be read becomes a :class:`ParsedCall` with an ``error`` the model is
shown, an answer that cannot be read is empty and says why.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reposearcher_plugin.index.locations import (
    SEPARATOR,
    entity_name_of_line,
    split_location,
)
from reposearcher_plugin.tools.session import call_key

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_RANK_PREFIX = re.compile(r"^\s*(?:[-*]\s+|\d+[.)]\s+|top[_ ]?\d+\s*[:.)-]\s*)", re.IGNORECASE)
_PATH = re.compile(r"^[\w.\-/\\]+\.[A-Za-z0-9_]+$")


@dataclass
class ParsedCall:
    """One tool call found in a reply. ``arguments`` is None when they could not be read (see ``error``)."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    error: str | None = None

    def key(self) -> str:
        """Identity of a call for spotting repeats: name plus canonical arguments."""
        return call_key(self.name, self.arguments, self.raw_arguments)


def load_json(text: str) -> tuple[Any, str | None]:
    """``json.loads`` that never raises on model output: (value, None) or (None, what was wrong). Besides
    malformed text, the decoder raises RecursionError on deep nesting (``[`` x 3,000) and ValueError on
    integers over Python's 4,300-digit limit."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, f"{error.msg} at {error.pos}"
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as error:  # int digits limit
        return None, " ".join(str(error).split())[:200]


def read_arguments(name: str, raw: Any) -> tuple[dict[str, Any] | None, str, str | None]:
    """Arguments as sent (a JSON string, a dict, or nothing) -> (dict or None, raw text, error)."""
    if raw is None or raw == "":
        return {}, "", None
    if isinstance(raw, Mapping):
        return dict(raw), json.dumps(raw, ensure_ascii=False), None
    text = str(raw)
    what = f"the arguments of {name or 'the call'}"
    value: Any = text
    for _ in range(3):  # some models JSON-encode the arguments twice; never recurse on model output
        if not text:
            return {}, "", None
        value, problem = load_json(text)
        if problem:
            return None, text, f"{what} are not valid JSON ({problem})"
        if not isinstance(value, str):
            break
        text = value
    if not isinstance(value, dict):
        return None, text, f"{what} must be a JSON object, got {type(value).__name__}"
    return value, text, None


def native_tool_calls(tool_calls: Iterable[Any] | None) -> list[ParsedCall]:
    """OpenAI-style ``message.tool_calls`` (dicts or litellm objects) -> parsed calls."""
    parsed = []
    for number, call in enumerate(tool_calls or ()):
        function = _get(call, "function") or {}
        name = str(_get(function, "name") or "")
        arguments, raw, error = read_arguments(name, _get(function, "arguments"))
        call_id = str(_get(call, "id") or f"call_{number}")
        if not name:
            error = error or "the tool call has no function name"
        parsed.append(ParsedCall(call_id, name, arguments, raw, error))
    return parsed


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def hermes_tool_calls(text: str, first_id: int = 0) -> tuple[str, list[ParsedCall]]:
    """Split hermes text into (the text without its tool calls, the calls in order).

    A block cut off by the end of generation (no ``</tool_call>``) still counts: vLLM stops at the
    close tag when it is a stop string, and the call is what the model meant.
    """
    calls: list[ParsedCall] = []
    for match in _TOOL_CALL.finditer(text):
        body = match.group(1).strip()
        call_id = f"call_{first_id + len(calls)}"
        payload, problem = load_json(body)
        if problem:
            guessed = _guess_name(body)
            which = f"the <tool_call> block for {guessed!r}" if guessed else "a <tool_call> block"
            problem = f"{which} is not valid JSON ({problem})"
            # the name stays empty: the block is kept verbatim so the conversation replays exactly
            calls.append(ParsedCall(call_id, "", None, body, problem))
            continue
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            problem = 'a <tool_call> block must be {"name": <tool>, "arguments": {...}}'
            calls.append(ParsedCall(call_id, "", None, body, problem))
            continue
        name = payload["name"]
        arguments, raw, error = read_arguments(name, payload.get("arguments", payload.get("parameters")))
        calls.append(ParsedCall(call_id, name, arguments, raw, error))
    content = _TOOL_CALL.sub("", text).strip() if calls else text.strip()
    return content, calls


# --- tool calls written in other forms ----------------------------------------------------------------

_LOOSE_JSON_START = re.compile(r'\{\s*"(?:name|function|tool|tool_name)"\s*:')
_MAX_LOOSE_ATTEMPTS = 32  # a reply is at most a few thousand tokens; this bounds the work on any text


def loose_tool_calls(
    text: str, params_of: Mapping[str, Sequence[str]], first_id: int = 0
) -> tuple[str, list[ParsedCall]]:
    """Tool calls that small models write outside ``<tool_call>`` tags: fenced or bare JSON objects
    (``{"name": "search_class", "arguments": {...}}``, also with ``parameters`` or an OpenAI-style
    ``function`` object, or a list of them) and Python-style calls (``search_class("Session")``, in a
    fenced block or alone on a line). ``params_of`` maps each offered tool to its parameter names, in
    order: only calls to those tools count, so an answer block or an example in prose is never taken
    for a call. Returns (the text without the calls, the calls in written order)."""
    found: list[tuple[int, int, str, Any]] = []  # (start, end, name, raw arguments)
    found += _json_calls(text, params_of)
    found += _python_calls(text, params_of, taken=[(start, end) for start, end, *_ in found])
    found.sort(key=lambda item: item[0])
    calls = []
    for _start, _end, name, raw in found:
        arguments, raw_text, error = read_arguments(name, raw)
        calls.append(ParsedCall(f"call_{first_id + len(calls)}", name, arguments, raw_text, error))
    if not calls:
        return text.strip(), []
    return _cut_spans(text, [(start, end) for start, end, *_ in found]), calls


def _json_calls(text: str, params_of: Mapping[str, Sequence[str]]) -> list[tuple[int, int, str, Any]]:
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, str, Any]] = []
    position = 0
    for _ in range(_MAX_LOOSE_ATTEMPTS):
        match = _LOOSE_JSON_START.search(text, position)
        if match is None:
            break
        start = _list_start(text, match.start())
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = match.end()
            continue
        items = value if isinstance(value, list) else [value]
        named = [_name_and_arguments(item, params_of) for item in items]
        if named and all(named):
            found += [(start, end, name, raw) for name, raw in named]  # type: ignore[misc]
            position = end
        else:
            position = match.end()
    return found


def _list_start(text: str, brace: int) -> int:
    """Where a JSON list holding the object at ``brace`` begins (``[{"name": ...}, ...]``), else ``brace``."""
    before = brace
    while before > 0 and text[before - 1].isspace():  # no copy of the text before: it may be megabytes
        before -= 1
    return before - 1 if before > 0 and text[before - 1] == "[" else brace


def _name_and_arguments(item: Any, params_of: Mapping[str, Sequence[str]]) -> tuple[str, Any] | None:
    if not isinstance(item, dict):
        return None
    function = item.get("function")
    if isinstance(function, dict):  # {"function": {"name": ..., "arguments": ...}}
        item = function
    name = next((item[key] for key in ("name", "tool", "tool_name", "function") if key in item), None)
    if not isinstance(name, str) or name not in params_of:
        return None
    raw = next((item[key] for key in ("arguments", "parameters", "args", "input") if key in item), None)
    return name, raw


# the trailing blanks are possessive: ``[ \t]*;?[ \t]*`` could split a run of them in every way (quadratic)
_PY_CALL_LINE = re.compile(
    r"^[ \t]*`{0,3}(?:[A-Za-z_]\w*\.)?([A-Za-z_]\w*)\(.*\)`{0,3}[ \t]*+;?[ \t]*+$", re.MULTILINE
)


def _python_calls(
    text: str, params_of: Mapping[str, Sequence[str]], taken: list[tuple[int, int]]
) -> list[tuple[int, int, str, Any]]:
    found = []
    for match in _PY_CALL_LINE.finditer(text):
        if match.group(1) not in params_of or any(a <= match.start() < b for a, b in taken):
            continue
        call = _python_call(match.group(0).strip().strip("`").rstrip(";"), params_of)
        if call is not None:
            found.append((match.start(), match.end(), *call))
        if len(found) >= _MAX_LOOSE_ATTEMPTS:
            break
    return found


def _python_call(line: str, params_of: Mapping[str, Sequence[str]]) -> tuple[str, dict[str, Any]] | None:
    """``tool("a", k=2)`` with literal arguments -> (tool, arguments by name); anything else -> None."""
    try:
        node = ast.parse(line, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in params_of:
        return None
    params = list(params_of[name])
    if len(node.args) > len(params):
        return None
    try:
        arguments = {params[i]: ast.literal_eval(arg) for i, arg in enumerate(node.args)}
        for keyword in node.keywords:
            if keyword.arg is None:
                return None
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    return name, arguments


# possessive: a fence's info string and the blanks after it cannot trade characters (quadratic on blanks)
_EMPTY_FENCE = re.compile(r"```[^\n`]*+\s*+```")


def _cut_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """The text without the given spans, and without fences left empty by the cut."""
    parts, position = [], 0
    for start, end in sorted(spans):
        if start >= position:
            parts.append(text[position:start])
            position = end
    parts.append(text[position:])
    return _EMPTY_FENCE.sub("", "".join(parts)).strip()


def _guess_name(body: str) -> str:
    found = re.search(r'"name"\s*:\s*"([^"]+)"', body)
    return found.group(1) if found else ""


def render_hermes_call(name: str, raw_arguments: str) -> str:
    """A tool call as hermes text, the way Qwen's chat template writes it."""
    if not name:  # unreadable block: keep it exactly as the model wrote it
        return f"{TOOL_CALL_OPEN}\n{raw_arguments}\n{TOOL_CALL_CLOSE}"
    arguments = raw_arguments if raw_arguments.strip() else "{}"
    return f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(name)}, "arguments": {arguments}}}\n{TOOL_CALL_CLOSE}'


# --- answers -------------------------------------------------------------------------------------------


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
