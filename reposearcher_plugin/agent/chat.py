"""The one chat format: prompts, canonical messages, and what is sent on the wire.

Messages are kept in the canonical OpenAI form — assistant ``content`` plus structured ``tool_calls``,
then one ``role: tool`` message per call — whatever the model speaks. That is the form verl's
``MultiTurnSFTDataset`` and its tool agent loop template with the model's own chat template, so a
trajectory recorded here is training data as is. :func:`to_wire` renders the canonical messages for the
endpoint: unchanged for native function calling, or as the hermes text Qwen's chat template would write
(tools block in the system prompt, ``<tool_call>`` blocks in assistant turns, ``<tool_response>`` blocks in a
user turn) for endpoints that take plain text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from reposearcher_plugin.agent.parse import ParsedCall, render_hermes_call
from reposearcher_plugin.index import CLASS, FUNCTION, METHOD, RepoIndex
from reposearcher_plugin.tools import ToolSpec, hermes_tools_prompt

TOOL_FORMATS = ("native", "hermes")
MAX_ISSUE_CHARS = 20_000  # longer issues are mostly logs; the head carries the report

ANSWER_FORMAT = """Write the final answer as one ``` block: each file on its own line, followed by the
functions, methods or classes in it that must change, most likely first:
```
path/to/file.py
function: ClassName.method_name
function: top_level_function
class: ClassName
```
Entity ids such as path/to/file.py::ClassName.method_name are accepted too."""

DEFAULT_SYSTEM = """You are RepoSearcher, an expert at finding where in a code repository an issue must be
fixed. You will be given an issue and an overview of the repository. Use the tools to look at the code: follow
names, tracebacks and imports from the issue to the definitions that must change. Do not guess names;
look them up. Several tool calls in one reply are fine.

{how_to_answer}
{answer_format}"""

SUBMIT_OR_REPLY = (
    "When you know the answer, either call `submit` with the ranked locations, or stop calling tools and\n"
    "reply with the answer."
)
REPLY_ONLY = "When you know the answer, stop calling tools and reply with the answer."


DEFAULT_USER = """<issue>
{issue}
</issue>

<repository_overview>
{overview}
</repository_overview>

{hints}Find the functions, methods and classes that must change to resolve the issue (up to {top_k}, most
likely first). Start by looking at what the issue names."""

HINTS = """<search_hints>
An index search ranked these definitions highest for the issue. They are leads to check, not answers:
{locations}
</search_hints>

"""

FINAL_TURN = """{reason} Do not call any more tools. Give your final answer now.
{answer_format}"""

# The tooltrain profile: the two stages of the official RepoSearcher flow (files, then functions), with
# its tools, for models trained by the official code. Wording is ours; structure and formats are theirs.
FILES_SYSTEM = """You will be given a bug report and the list of the repository's files, and tools to read
the source code. Find the top-{top_k} files most likely to need changes to fix the bug.
When you have the information you need, call `exit`."""

FILES_USER = """The bug report is as follows:
```
### GitHub Problem Description ###
{issue}

###

### Candidate Files ###
{overview}

###
```
Locate the faulty files step by step, reasoning and calling functions. Avoid identical calls."""

FILES_ANSWER = """Based on the information gathered, give the complete paths of the top-{top_k} most likely
culprit files, one per line, most important first, in one ``` block:
```
path/to/file1.py
path/to/file2.py
```"""

FUNCTIONS_SYSTEM = """You will be given a bug report and tools to read the source code. The fix may add,
delete or update files, classes and functions. Find the top-{top_k} locations most likely to need changes.
When you have the information you need, call `exit`."""

FUNCTIONS_USER = """The bug report is as follows:
```
### GitHub Problem Description ###
{issue}

###
```
These files were pre-selected as the most likely to hold the bug. Their structure:
{skeletons}
The argument 'file_name' takes a value after "file:", 'class_name' one after "class:", and 'func_name'
one after "static functions:" or "class functions:". Use get_code_of_file_function for static functions
and get_code_of_class_function for class functions. Avoid identical calls."""

FUNCTIONS_ANSWER = (
    """Based on the information gathered, give the top-{top_k} most likely culprit locations.
For a static function do not add a class name.
"""
    + ANSWER_FORMAT
)


def clip_issue(issue: str) -> str:
    issue = issue.strip()
    if len(issue) <= MAX_ISSUE_CHARS:
        return issue
    return issue[:MAX_ISSUE_CHARS] + f"\n[... issue cut: {len(issue) - MAX_ISSUE_CHARS} more characters]"


def system_message(text: str, specs: Sequence[ToolSpec], tool_format: str) -> dict[str, Any]:
    """The system turn; in hermes form the tools block goes into it, as the chat template would put it."""
    if tool_format == "hermes":
        text = f"{text}\n\n{hermes_tools_prompt(specs)}"
    return {"role": "system", "content": text}


def default_prompt(
    issue: str,
    overview: str,
    specs: Sequence[ToolSpec],
    tool_format: str,
    top_k: int,
    hints: Sequence[str] = (),
) -> list[dict]:
    # a tool set without `submit` (RL, where the last reply is the answer) must not be told to call it
    offers_submit = any(spec.name == "submit" for spec in specs)
    how_to_answer = SUBMIT_OR_REPLY if offers_submit else REPLY_ONLY
    system = DEFAULT_SYSTEM.format(answer_format=ANSWER_FORMAT, how_to_answer=how_to_answer)
    hint_block = HINTS.format(locations="\n".join(hints)) if hints else ""
    user = DEFAULT_USER.format(issue=clip_issue(issue), overview=overview, top_k=top_k, hints=hint_block)
    return [system_message(system, specs, tool_format), {"role": "user", "content": user}]


def files_prompt(
    issue: str, overview: str, specs: Sequence[ToolSpec], tool_format: str, top_k: int
) -> list[dict]:
    system = FILES_SYSTEM.format(top_k=top_k)
    user = FILES_USER.format(issue=clip_issue(issue), overview=overview)
    return [system_message(system, specs, tool_format), {"role": "user", "content": user}]


def functions_prompt(
    issue: str, skeletons: str, specs: Sequence[ToolSpec], tool_format: str, top_k: int
) -> list[dict]:
    system = FUNCTIONS_SYSTEM.format(top_k=top_k)
    user = FUNCTIONS_USER.format(issue=clip_issue(issue), skeletons=skeletons)
    return [system_message(system, specs, tool_format), {"role": "user", "content": user}]


def final_turn(reason: str, answer_format: str) -> dict[str, Any]:
    return {"role": "user", "content": FINAL_TURN.format(reason=reason, answer_format=answer_format)}


def file_list(index: RepoIndex) -> str:
    """Every indexed source file, one per line: the official flow's "Candidate Files"."""
    return "\n".join(sorted(index.files))


def file_skeleton(index: RepoIndex, path: str) -> str:
    """A file's classes, class functions and static (top-level) functions, in the official layout."""
    if path not in index.files:
        return f"file: {path}\n(not found in the repository)"
    entities = index.files[path].parse.entities
    classes = [entity.qualname for entity in entities if entity.kind == CLASS]
    methods = [entity.qualname for entity in entities if entity.kind == METHOD]
    functions = [
        entity.qualname for entity in entities if entity.kind == FUNCTION and "." not in entity.qualname
    ]
    lines = [f"file: {path}"]
    lines += [f"class: {name}" for name in classes]
    if methods:
        lines.append("class functions: " + ", ".join(methods))
    if functions:
        lines.append("static functions: " + ", ".join(functions))
    return "\n".join(lines)


# --- canonical messages and the wire -------------------------------------------------------------------


def assistant_message(content: str, calls: Sequence[ParsedCall]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.raw_arguments},
            }
            for call in calls
        ]
    return message


def tool_message(call: ParsedCall, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text}


def to_wire(messages: Sequence[dict[str, Any]], tool_format: str) -> list[dict[str, Any]]:
    """Canonical messages -> the request's ``messages`` for a native or a hermes endpoint."""
    if tool_format not in TOOL_FORMATS:
        raise ValueError(f"unknown tool format {tool_format!r}; choose one of: {', '.join(TOOL_FORMATS)}")
    if tool_format == "native":
        return [_native(message) for message in messages]
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "assistant":
            blocks = [
                render_hermes_call(call["function"]["name"], call["function"]["arguments"])
                for call in message.get("tool_calls", ())
            ]
            text = "\n".join(part for part in [message.get("content") or "", *blocks] if part)
            wire.append({"role": "assistant", "content": text})
        elif message["role"] == "tool":
            response = f"<tool_response>\n{message['content']}\n</tool_response>"
            if wire and wire[-1]["role"] == "user" and wire[-1].get("_responses"):
                wire[-1]["content"] += "\n" + response
            else:
                wire.append({"role": "user", "content": response, "_responses": True})
        else:
            wire.append({"role": message["role"], "content": message["content"]})
    for message in wire:
        message.pop("_responses", None)
    return wire


def _native(message: dict[str, Any]) -> dict[str, Any]:
    """Providers reject unreadable JSON in a replayed call; the error observation already told the model."""
    calls = message.get("tool_calls")
    if not calls:
        return dict(message)
    replayed = []
    for call in calls:
        arguments = call["function"]["arguments"]
        try:
            json.loads(arguments or "{}")
        except ValueError:
            arguments = "{}"
        name = call["function"]["name"] or "invalid_tool_call"
        replayed.append({**call, "function": {"name": name, "arguments": arguments or "{}"}})
    return {**message, "tool_calls": replayed}
