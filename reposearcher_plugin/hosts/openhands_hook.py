"""OpenHands ``UserPromptSubmit`` hook: localize the user's request and hand the ranking to the agent.

Contract (openhands-sdk ``openhands/sdk/hooks/executor.py`` and ``types.py``, checked on 1.55.0): the hook
is a shell command (``shell=True``, ``cwd`` = the conversation's workspace, ``OPENHANDS_PROJECT_DIR`` and
``OPENHANDS_EVENT_TYPE`` in the environment). stdin is ``HookEvent.model_dump_json()``::

    {"event_type": "UserPromptSubmit", "tool_name": null, "tool_input": null, "tool_response": null,
     "message": "<the user's text>", "session_id": "...", "working_dir": "...", "metadata": {}}

A JSON object on stdout is read for ``decision``, ``reason``, ``additionalContext`` and ``continue``
whatever the exit status; ``additionalContext`` is appended to the user message's ``extended_content``,
which is sent to the model with the message and shown with it ("Prompt Extension based on Agent
Context"). Exit 2 BLOCKS the user's message; any other non-zero status marks the hook failed (its
``HookExecutionEvent`` says FAILED, with our stderr) and the message goes on. So this hook fails open:
nothing to add (another event, a short prompt) is exit 0 with no output; a failure is exit 1, the reason
on stderr, and a one-line note as the context, so the user sees that the message went without a ranking.

Usage (in ``.openhands/hooks.json`` or ``HookConfig(user_prompt_submit=[...])``)::

    /abs/venv/bin/python -m reposearcher_plugin.hosts.openhands_hook [--repo PATH] [--top 10] [--model M ...]

Name the interpreter that has the package by its absolute path (``reposearcher openhands hooks`` writes
the file that way): a bare ``python`` is whatever comes first on OpenHands' PATH.

Without ``--repo`` the event's ``working_dir`` (then ``$OPENHANDS_PROJECT_DIR``, then the current
directory) is localized. The offline retrieval localizer is the default: no LLM, no key, about a second.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from reposearcher_plugin.hosts.localization_text import render_localization

EVENT_TYPE = "UserPromptSubmit"
DEFAULT_TOP = 10
DEFAULT_MIN_CHARS = 20
DEFAULT_TIMEOUT_S = 120
HOOK_MODULE = "reposearcher_plugin.hosts.openhands_hook"
FAILED_STATUS = 1  # OpenHands: a failed hook, logged; 2 would block the user's message
_NOTE_REASON_CHARS = 300


class _HookSkipped(Exception):
    """Nothing to add for this event (not an error)."""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a bad flag, and exit 2 would block the user's message: raise instead."""

    def error(self, message: str) -> Any:
        raise ValueError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from reposearcher_plugin.agent.options import add_localizer_options

    parser = _Parser(
        prog="python -m reposearcher_plugin.hosts.openhands_hook",
        description="OpenHands UserPromptSubmit hook: reads the hook event JSON on stdin and prints "
        '{"additionalContext": ...} with the locations RepoSearcher ranks for the prompt. Never blocks.',
    )
    parser.add_argument("--repo", help="repository to search (default: the event's working_dir)")
    parser.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help=f"locations listed (default {DEFAULT_TOP})"
    )
    parser.add_argument(
        "--min-chars",
        type=int,
        default=DEFAULT_MIN_CHARS,
        help="prompts shorter than this get no context, e.g. 'go on' (default %(default)s)",
    )
    parser.add_argument("--cache-dir", help="where parses are cached (default: ~/.cache/reposearcher)")
    add_localizer_options(parser)
    return parser


def read_event(stream: TextIO) -> dict[str, Any]:
    text = stream.read()
    if not text.strip():
        raise ValueError("no hook event on stdin")
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError(f"the hook event is not a JSON object: {text[:80]!r}")
    return event


def repository_of(args: argparse.Namespace, event: dict[str, Any]) -> Path:
    candidate = (
        args.repo or event.get("working_dir") or os.environ.get("OPENHANDS_PROJECT_DIR") or os.getcwd()
    )
    root = Path(candidate)
    if not root.is_dir():
        raise ValueError(f"repository {root}: not a directory")
    return root


def localization_context(args: argparse.Namespace, event: dict[str, Any]) -> str:
    """The additional context for one event; raises _HookSkipped when there is nothing to say."""
    from reposearcher_plugin.agent.localizers import build_localizer
    from reposearcher_plugin.agent.options import localizer_options
    from reposearcher_plugin.index import ParseCache, build_index
    from reposearcher_plugin.index.languages import check_grammars

    kind = event.get("event_type")
    if kind != EVENT_TYPE:
        raise _HookSkipped(f"event {kind!r} is not {EVENT_TYPE}")
    prompt = (event.get("message") or "").strip()
    if len(prompt) < args.min_chars:
        raise _HookSkipped(f"prompt shorter than {args.min_chars} characters")
    options = localizer_options(args)
    root = repository_of(args, event)
    check_grammars()  # a tree-sitter that cannot parse would make "no locations found" of every prompt
    started = time.perf_counter()
    index = build_index(root, cache=ParseCache(args.cache_dir) if args.cache_dir else None)
    from reposearcher_plugin.workspace.change_history import local_history

    result = build_localizer(options).localize(
        index,
        prompt,
        instance_id=str(event.get("session_id") or "prompt"),
        repo=str(root),
        history=local_history(root),
    )
    if result.error and not result.locations:
        raise RuntimeError(f"localization failed: {result.error}")
    return render_context(index, result.to_dict(), args.top, time.perf_counter() - started)


def render_context(index: Any, row: dict[str, Any], top: int, seconds: float) -> str:
    """Compact enough to sit beside the user's message: ranked entity ids with line spans, then files."""
    locations = row.get("locations") or []
    files = row.get("found_files") or []
    if not locations and not files:
        raise _HookSkipped("no locations found")
    header = (
        f"RepoSearcher localization ({row.get('model')}, {seconds:.1f} s): the code most likely involved in "
        "this request, best first. Ranked guesses from a search of the repository; read the code before "
        "relying on them."
    )
    return render_localization(locations, files, header=header, compact=True, max_locations=top, index=index)


def failure_note(error: BaseException, root: str | None = None) -> str:
    """The context sent in place of a ranking when the hook failed: the user sees it with the message
    (and the model can say so), where a message on stderr alone reaches only a log."""
    reason = str(error) or type(error).__name__
    if root and os.path.isabs(root) and len(root) > 1:  # the model needs no absolute paths
        for spelling in sorted({str(Path(root).resolve()), root.rstrip("/")}, key=len, reverse=True):
            reason = reason.replace(spelling, "<repository>")
    if len(reason) > _NOTE_REASON_CHARS:
        reason = reason[: _NOTE_REASON_CHARS - 3] + "..."
    return f"RepoSearcher localization failed; this message went on without it. Reason: {reason}"


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None) -> int:
    # stdout carries the one JSON answer: anything else printed by accident would make it unreadable
    out = sys.stdout
    sys.stdout = sys.stderr
    root: str | None = None
    try:
        args = build_parser().parse_args(argv)
        event = read_event(stdin or sys.stdin)
        root = args.repo or event.get("working_dir")
        context = localization_context(args, event)
        status = 0
    except _HookSkipped as skipped:
        print(f"reposearcher hook: no context: {skipped}", file=sys.stderr)
        return 0
    except SystemExit as exiting:  # --help
        if not exiting.code:
            return 0
        context, status = failure_note(exiting, None), FAILED_STATUS
    except BaseException as error:  # fail open: a broken hook must never block the user's prompt
        if isinstance(error, KeyboardInterrupt):
            return 0
        print(f"reposearcher hook: error (prompt passed on without localization): {error}", file=sys.stderr)
        context, status = failure_note(error, root if isinstance(root, str) else None), FAILED_STATUS
    finally:
        sys.stdout = out
    out.write(json.dumps({"additionalContext": context}, ensure_ascii=False) + "\n")
    out.flush()
    return status


def hook_command(python: str | None = None, *, top: int = DEFAULT_TOP, repo: str | None = None) -> str:
    """The hook's shell command, with the interpreter by its absolute path: OpenHands runs it with
    ``shell=True``, and a bare ``python`` is whatever its PATH finds first, often one without us."""
    interpreter = os.path.abspath(python or sys.executable)  # a venv's python is a symlink: keep its path
    command = [interpreter, "-m", HOOK_MODULE, "--top", str(top)]
    if repo:
        command += ["--repo", os.path.abspath(repo)]
    return shlex.join(command)


# HookConfig's fields (openhands/sdk/hooks/config.py); a file in another layout is not merged into
_HOOK_EVENTS = frozenset(
    {"pre_tool_use", "post_tool_use", "user_prompt_submit", "session_start", "session_end", "stop"}
)


def hook_config(
    python: str | None = None,
    *,
    top: int = DEFAULT_TOP,
    repo: str | None = None,
    timeout: int = DEFAULT_TIMEOUT_S,
    existing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``.openhands/hooks.json`` with this hook on every ``UserPromptSubmit``. Given an ``existing``
    config, its other hooks are kept and an earlier RepoSearcher hook is replaced; raises ValueError for
    a file in another layout (PascalCase keys, Claude Code's ``{"hooks": ...}``)."""
    command = hook_command(python, top=top, repo=repo)
    existing = existing or {}
    unknown = sorted(set(existing) - _HOOK_EVENTS)
    if unknown:
        raise ValueError(
            f"keys {unknown} are not HookConfig's snake_case events; add the hook by hand: {command}"
        )
    config = dict(existing)
    kept = [
        matcher
        for matcher in config.get("user_prompt_submit") or []
        if not any(HOOK_MODULE in str(hook.get("command", "")) for hook in matcher.get("hooks") or [])
    ]
    ours = {"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": timeout}]}
    config["user_prompt_submit"] = [*kept, ours]
    return config


if __name__ == "__main__":
    sys.exit(main())
