"""`reposearcher openhands ...`: the OpenHands hook file and MCP entry, naming this Python by its path."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.files import write_atomic
from reposearcher_plugin.hosts.openhands_hook import DEFAULT_TIMEOUT_S, DEFAULT_TOP


def add_openhands_command(commands: Any) -> None:
    openhands = commands.add_parser(
        "openhands",
        help="write OpenHands' hooks.json (localization in every prompt) or its MCP server entry",
        description="Generate the OpenHands configuration for RepoSearcher with the interpreter that runs "
        "this command written as an absolute path. A bare `python` in a hook is whatever OpenHands' PATH "
        "finds first; one without reposearcher_plugin fails and the prompt goes out with no localization. "
        "See docs/hosts-mcp-openhands.md.",
    )
    actions = openhands.add_subparsers(dest="openhands_action", metavar="ACTION", required=True)

    hooks = actions.add_parser(
        "hooks",
        help="the UserPromptSubmit hook config (.openhands/hooks.json)",
        description="Print the hooks.json that runs the RepoSearcher UserPromptSubmit hook, or write it "
        "with --out (an existing file keeps its other hooks; an earlier RepoSearcher hook is replaced).",
    )
    hooks.add_argument("--out", help="write here, e.g. .openhands/hooks.json (default: print)")
    hooks.add_argument("--python", help="the interpreter to run the hook (default: this one)")
    hooks.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help=f"locations listed (default {DEFAULT_TOP})"
    )
    hooks.add_argument("--repo", help="always localize in this repository (default: the workspace)")
    hooks.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds OpenHands waits for the hook (default {DEFAULT_TIMEOUT_S})",
    )
    hooks.set_defaults(handler=cmd_hooks)

    mcp = actions.add_parser(
        "mcp",
        help="the MCP server entry (~/.openhands/mcp.json, Agent(mcp_config=...))",
        description='Print the MCP server entry that serves REPO: in the {"mcpServers": {...}} form of '
        "~/.openhands/mcp.json (and Claude Code, Cursor), or with --flat the form the SDK's "
        "Agent(mcp_config=...) takes.",
    )
    mcp.add_argument("--repo", required=True, help="the repository to serve")
    mcp.add_argument("--python", help="the interpreter to run the server (default: this one)")
    mcp.add_argument("--flat", action="store_true", help='without the {"mcpServers": ...} wrapper')
    mcp.set_defaults(handler=cmd_mcp_entry)


def _checked_python(python: str | None) -> str | None:
    """None when fine; else why ``python`` cannot be the interpreter written into the config."""
    if python is None:
        return None
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return f"--python {python}: not an executable file"
    return None


@reports_errors
def cmd_hooks(args: argparse.Namespace) -> int:
    from reposearcher_plugin.hosts.openhands_hook import hook_config

    problem = _checked_python(args.python)
    if problem:
        raise CommandError(problem)
    if args.top < 1 or args.timeout < 1:
        raise CommandError("--top and --timeout must be at least 1")
    if args.repo and not Path(args.repo).is_dir():
        raise CommandError(f"--repo {args.repo}: not a directory")
    out = Path(args.out) if args.out else None
    existing: dict[str, Any] = {}
    if out is not None and out.exists():
        try:
            existing = json.loads(out.read_text(encoding="utf-8") or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CommandError(f"{out}: cannot read it as JSON ({error}); fix or move it first") from None
        if not isinstance(existing, dict):
            raise CommandError(f"{out}: not a JSON object; fix or move it first")
    try:
        config = hook_config(
            args.python, top=args.top, repo=args.repo, timeout=args.timeout, existing=existing
        )
    except ValueError as error:
        raise CommandError(f"{out}: {error}") from None
    text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return 0
    write_atomic(out, text)
    command = config["user_prompt_submit"][-1]["hooks"][0]["command"]
    print(f"wrote {out}: UserPromptSubmit runs {command}", file=sys.stderr)
    return 0


@reports_errors
def cmd_mcp_entry(args: argparse.Namespace) -> int:
    from reposearcher_plugin.hosts.mcp_server import client_config

    problem = _checked_python(args.python)
    if problem:
        raise CommandError(problem)
    if not Path(args.repo).is_dir():
        raise CommandError(f"--repo {args.repo}: not a directory")
    entry = client_config(args.repo, args.python)
    sys.stdout.write(json.dumps(entry if args.flat else {"mcpServers": entry}, indent=2) + "\n")
    return 0
