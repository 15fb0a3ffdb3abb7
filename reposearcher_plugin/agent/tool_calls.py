"""Reading tool calls from model replies: native function calling, hermes ``<tool_call>`` text, and the
forms small models write instead (fenced or bare JSON, Python-style calls).

One reader for inference, SFT filtering and the RL adapter, and like the answer parser (``parse.py``)
linear in the text: no regular expression here has two ways to match the same characters. Bad model
output never raises: a call that cannot be read becomes a :class:`ParsedCall` with an ``error`` the model
is shown.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reposearcher_plugin.tools.session import call_key
from reposearcher_plugin.tools.spec import short_repr

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)


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
    """Arguments as sent (a JSON string, a dict, an already decoded JSON value, or nothing) -> (dict or
    None, raw text, error). Never raises, whatever ``raw`` holds."""
    if raw is None or raw == "":
        return {}, "", None
    if isinstance(raw, Mapping):
        return dict(raw), _arguments_text(raw), None
    what = f"the arguments of {name or 'the call'}"
    if not isinstance(raw, str):  # decoded already (verl json-decodes the arguments), and not an object
        return None, _arguments_text(raw), f"{what} must be a JSON object, got {type(raw).__name__}"
    text = raw
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


def _arguments_text(value: Any) -> str:
    """Decoded arguments written back as text for the record: JSON, or a cut repr where JSON has no form
    for them (str() and json.dumps() raise on an integer of over 4,300 digits, anywhere in the value)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return short_repr(value)


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
