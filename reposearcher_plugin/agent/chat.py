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
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.tool_calls import ParsedCall, render_hermes_call
from reposearcher_plugin.index import CLASS, FUNCTION, METHOD, RepoIndex
from reposearcher_plugin.tools import TWO_STAGE_PROFILES, RepoTools, ToolSpec, hermes_tools_prompt

TOOL_FORMATS = ("native", "hermes")
MAX_ISSUE_CHARS = 20_000  # longer issues are mostly logs; the head carries the report
OVERVIEW_DEPTH = 2  # directory levels of the repository overview in the default prompt

# template name -> the variables it is rendered with (an override may use any of them, and no others)
PROMPT_VARIABLES: dict[str, tuple[str, ...]] = {
    "answer_format": (),
    "default_system": ("how_to_answer", "answer_format"),
    "submit_or_reply": (),
    "reply_only": (),
    "default_user": ("issue", "overview", "hints", "top_k"),
    "hints": ("locations",),
    "final_turn": ("reason", "answer_format"),
    # the tooltrain profile: the two stages of the official RepoSearcher flow (files, then functions),
    # with its tools, for models trained by the official code; wording ours, structure and formats theirs
    "files_system": ("top_k",),
    "files_user": ("issue", "overview"),
    "files_answer": ("top_k",),
    "functions_system": ("top_k",),
    "functions_user": ("issue", "skeletons"),
    "functions_answer": ("top_k",),
}
PROMPT_NAMES = tuple(PROMPT_VARIABLES)


class Prompts:
    """The prompt templates: Jinja files named ``<name>.jinja``, the packaged ones in ``agent/prompts/``
    unless ``directory`` holds a file of the same name (so a user changes a prompt without code).

    Templates are rendered as written: no HTML escaping, one trailing newline of a file dropped, and an
    unknown variable is an error, not an empty string."""

    def __init__(self, directory: str | Path | None = None) -> None:
        import jinja2

        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(PACKAGED_PROMPTS))]
        if directory is not None:
            folder = Path(directory)
            if not folder.is_dir():
                raise ValueError(f"prompts directory {folder} does not exist")
            unknown = sorted(p.stem for p in folder.glob("*.jinja") if p.stem not in PROMPT_NAMES)
            if unknown:
                raise ValueError(
                    f"unknown prompt template(s) in {folder}: {', '.join(unknown)}; "
                    f"the templates are: {', '.join(PROMPT_NAMES)}"
                )
            loaders.insert(0, jinja2.FileSystemLoader(str(folder)))
        self.directory = directory
        self._environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )
        if directory is not None:  # a broken override fails here, not in the middle of a batch
            for name, variables in PROMPT_VARIABLES.items():
                try:
                    self.render(name, **{variable: f"<{variable}>" for variable in variables})
                except jinja2.TemplateError as error:
                    where = f"{Path(directory) / name}.jinja"
                    raise ValueError(
                        f"prompt template {where}: {error} (its variables: {', '.join(variables) or 'none'})"
                    ) from None

    def render(self, name: str, **values: Any) -> str:
        if name not in PROMPT_NAMES:
            raise ValueError(f"unknown prompt {name!r}; the prompts are: {', '.join(PROMPT_NAMES)}")
        return self._environment.get_template(f"{name}.jinja").render(**values)


PACKAGED_PROMPTS = Path(__file__).parent / "prompts"
_DEFAULT_PROMPTS: list[Prompts] = []


def default_prompts() -> Prompts:
    """The packaged templates, loaded once."""
    if not _DEFAULT_PROMPTS:
        _DEFAULT_PROMPTS.append(Prompts())
    return _DEFAULT_PROMPTS[0]


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
    prompts: Prompts | None = None,
) -> list[dict]:
    prompts = prompts or default_prompts()
    # a tool set without `submit` (RL, where the last reply is the answer) must not be told to call it
    offers_submit = any(spec.name == "submit" for spec in specs)
    how_to_answer = prompts.render("submit_or_reply" if offers_submit else "reply_only")
    system = prompts.render(
        "default_system", answer_format=prompts.render("answer_format"), how_to_answer=how_to_answer
    )
    hint_block = prompts.render("hints", locations="\n".join(hints)) if hints else ""
    user = prompts.render(
        "default_user", issue=clip_issue(issue), overview=overview, top_k=top_k, hints=hint_block
    )
    return [system_message(system, specs, tool_format), {"role": "user", "content": user}]


# the official flow's stages -> the name of what their user turn shows beside the issue
_STAGE_CONTEXT = {"files": "overview", "functions": "skeletons"}


def two_stage_prompt(
    stage: str,
    issue: str,
    context: str,
    specs: Sequence[ToolSpec],
    tool_format: str,
    top_k: int,
    prompts: Prompts | None = None,
) -> list[dict]:
    """The opening turns of a stage of the official flow: ``files`` shows the candidate files as its
    ``context``, ``functions`` the skeletons of the files the first stage found."""
    prompts = prompts or default_prompts()
    system = prompts.render(f"{stage}_system", top_k=top_k)
    user = prompts.render(f"{stage}_user", issue=clip_issue(issue), **{_STAGE_CONTEXT[stage]: context})
    return [system_message(system, specs, tool_format), {"role": "user", "content": user}]


def stages(profile: str) -> tuple[str, ...]:
    """The stages of a profile's flow, each one conversation: the official two (files, then functions)
    or the one search of every other profile."""
    return ("files", "functions") if profile in TWO_STAGE_PROFILES else ("search",)


def answer_format(stage: str, top_k: int, prompts: Prompts | None = None) -> str:
    """What a stage's answer looks like, as its prompts and its final turns ask for it."""
    prompts = prompts or default_prompts()
    if stage == "files":
        return prompts.render("files_answer", top_k=top_k)
    if stage == "functions":
        return prompts.render("functions_answer", top_k=top_k)
    return prompts.render("answer_format")


def repository_overview(tools: RepoTools) -> str:
    return tools.get_repo_structure(".", OVERVIEW_DEPTH)


def first_turns(
    stage: str,
    issue: str,
    tools: RepoTools,
    specs: Sequence[ToolSpec],
    tool_format: str,
    top_k: int,
    hints: Sequence[str] = (),
    files: Sequence[str] = (),
    prompts: Prompts | None = None,
) -> list[dict[str, Any]]:
    """The system and user turns that open a stage: the one place every consumer (the agent loop, the
    RL dataset) gets them from, so a model is served the conversation it was trained on. ``hints``:
    the default prompt's search leads; ``files``: for ``functions``, the files the files stage found;
    for ``files``, the candidate files to list when not all of them fit the model's window."""
    if stage == "files":
        candidates = file_list(tools.index, files or None)
        return two_stage_prompt(stage, issue, candidates, specs, tool_format, top_k, prompts)
    if stage == "functions":
        skeletons = "\n\n".join(file_skeleton(tools.index, path) for path in files)
        return two_stage_prompt(stage, issue, skeletons, specs, tool_format, top_k, prompts)
    if stage != "search":
        raise ValueError(f"unknown stage {stage!r}; choose one of: search, files, functions")
    overview = repository_overview(tools)
    return default_prompt(issue, overview, specs, tool_format, top_k, hints, prompts)


def final_turn(reason: str, answer_format: str, prompts: Prompts | None = None) -> dict[str, Any]:
    text = (prompts or default_prompts()).render("final_turn", reason=reason, answer_format=answer_format)
    return {"role": "user", "content": text}


def file_list(index: RepoIndex, only: Sequence[str] | None = None) -> str:
    """Every indexed source file, one per line: the official flow's "Candidate Files". ``only``: the
    files that fit the model's window, listed the same way, and a line saying how many were left out."""
    if only is None:
        return "\n".join(sorted(index.files))
    left_out = len(index.files) - len(set(only))
    listed = "\n".join(sorted(set(only)))
    note = f"... and {left_out} more files, not listed to fit the context window (find them with the tools)"
    return f"{listed}\n{note}" if left_out > 0 else listed


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
