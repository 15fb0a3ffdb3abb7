"""Command-line options shared by several sub-commands: localizer choice and workspace sources."""

from __future__ import annotations

import argparse
import os
from typing import Any

from reposearcher_plugin.agent.localizers import DEFAULT_MODEL, LocalizerOptions
from reposearcher_plugin.tools import PROFILES

GIB = 1 << 30
DEFAULT_CACHE_GB = 20.0


def add_localizer_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("localizer")
    group.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="'retrieval' (default: offline, no LLM), 'bm25' (plain BM25 baseline), or a litellm model "
        "string, e.g. hosted_vllm/Qwen2.5-Coder-7B-Instruct or anthropic/claude-sonnet-4-5",
    )
    group.add_argument("--api-base", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    group.add_argument(
        "--api-key-env", metavar="VAR", help="environment variable holding the API key (default: provider's)"
    )
    group.add_argument("--profile", choices=sorted(PROFILES), default="default", help="tool profile")
    group.add_argument(
        "--tool-format",
        choices=("native", "hermes"),
        default="native",
        help="native function calling, or hermes <tool_call> text (endpoints without a tool parser)",
    )
    group.add_argument("--max-turns", type=int, default=20, help="model turns per stage (default 20)")
    group.add_argument("--max-tokens", type=int, default=400_000, help="tokens per run (default 400000)")
    group.add_argument("--max-wall", type=float, default=900.0, help="seconds per run (default 900)")
    group.add_argument("--max-calls-per-turn", type=int, default=8, help="calls run per reply (default 8)")
    group.add_argument(
        "--hints",
        type=int,
        default=0,
        help="show the agent the offline default's top N definitions (default 0)",
    )
    group.add_argument("--temperature", type=float, default=0.0)
    group.add_argument("--retries", type=int, default=3, help="LLM retries with backoff (default 3)")


def localizer_options(args: argparse.Namespace) -> LocalizerOptions:
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(f"--api-key-env {args.api_key_env}: the variable is not set")
    if args.max_turns < 1:
        raise ValueError("--max-turns must be at least 1")
    return LocalizerOptions(
        model=args.model,
        api_base=args.api_base,
        api_key=api_key,
        profile=args.profile,
        tool_format=args.tool_format,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
        max_wall_s=args.max_wall,
        max_calls_per_turn=args.max_calls_per_turn,
        temperature=args.temperature,
        retries=args.retries,
        hints=args.hints,
    )


def add_workspace_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("repositories")
    group.add_argument(
        "--repos-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of clones or mirrors, DIR/owner__name or DIR/owner+name, bare or not (repeatable)",
    )
    group.add_argument(
        "--repo-alias",
        action="append",
        default=[],
        metavar="REPO=OTHER",
        help="take REPO's commits from OTHER, e.g. django/django=apprent1c3/django (repeatable)",
    )
    group.add_argument("--offline", action="store_true", help="never clone from GitHub")
    group.add_argument("--cache-dir", help="snapshot cache (default: <index cache>/snapshots)")
    group.add_argument(
        "--max-cache-gb",
        type=float,
        default=DEFAULT_CACHE_GB,
        help="snapshot cache cap in GiB (default 20); least recently used snapshots go first",
    )


def workspace_from_args(args: argparse.Namespace) -> Any:
    from reposearcher_plugin.workspace import Workspace, parse_aliases

    return Workspace(
        args.repos_dir or None,
        cache_dir=args.cache_dir,
        max_bytes=int(args.max_cache_gb * GIB),
        aliases=parse_aliases(args.repo_alias),
        online=not args.offline,
    )


def select_instances(instances: list[Any], ids: str | None, limit: int | None = None) -> list[Any]:
    """``--instances a,b`` (or ``--instance-ids``) and ``--limit N`` applied to a dataset's instances."""
    if ids:
        wanted = {item.strip() for item in ids.split(",") if item.strip()}
        unknown = wanted - {instance.instance_id for instance in instances}
        if unknown:
            raise ValueError(f"instance ids not in the dataset: {', '.join(sorted(unknown)[:5])}")
        instances = [instance for instance in instances if instance.instance_id in wanted]
    if limit is not None:
        if limit < 0:
            raise ValueError("--limit must not be negative")
        instances = instances[:limit]
    return instances
