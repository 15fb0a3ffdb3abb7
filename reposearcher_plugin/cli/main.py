"""`reposearcher`: one command, with a sub-command per job."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.index import DEFINITION_KINDS, ParseCache, build_index, entity_id
from reposearcher_plugin.tools import PROFILES, ToolBox, hermes_tools_prompt, openai_tools, profile_specs

# The sub-commands defined in other modules: name -> (module under cli/, the function adding its parser),
# in --help order. A command line naming one builds only that one's parser, so `reposearcher localize`
# imports neither the other commands' modules nor what they import (hosts, evaluation, rich, ...).
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "localize": ("localize_cmd", "add_localize_commands"),
    "run": ("localize_cmd", "add_localize_commands"),
    "show": ("show", "add_show_command"),
    "mini-swe-agent": ("mini_cmd", "add_mini_command"),
    "swe-agent": ("swe_agent_cmd", "add_swe_agent_command"),
    "mcp": ("mcp_cmd", "add_mcp_command"),
    "openhands": ("openhands_cmd", "add_openhands_command"),
    "rl": ("rl_cmd", "add_rl_commands"),
    "sft": ("rl_cmd", "add_rl_commands"),
    "mine": ("mine_cmd", "add_mine_command"),
    "ranker": ("ranker_cmd", "add_ranker_commands"),
    "patch": ("patch_cmd", "add_patch_command"),
    "eval": ("eval_cmd", "add_eval_commands"),
    "models": ("models_cmd", "add_models_commands"),
}


def _add_index_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", help="where parses are cached (default: ~/.cache/reposearcher)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the parse cache")
    parser.add_argument("--workers", type=int, help="parser processes (default: one per core)")


def _index(args: argparse.Namespace, quiet: bool = False) -> Any:
    from reposearcher_plugin.cli.progress import progress_bar

    cache = ParseCache(args.cache_dir) if args.cache_dir else None
    with progress_bar("indexing") as update:
        return build_index(
            args.path,
            cache=cache,
            use_cache=not args.no_cache,
            workers=args.workers,
            progress=None if quiet else update,
        )


def cmd_index(args: argparse.Namespace) -> int:
    index = _index(args)
    if args.entities:
        out = sys.stdout
        for path, entity in index.entities():
            if entity.kind in DEFINITION_KINDS:
                record = {"id": entity_id(path, entity.qualname), "kind": entity.kind}
                record |= {"start": entity.start, "end": entity.end}
                out.write(json.dumps(record) + "\n")
        return 0
    stats = index.stats
    languages: dict[str, int] = {}
    for indexed in index.files.values():
        languages[indexed.language] = languages.get(indexed.language, 0) + 1
    summary = {
        "root": str(index.root),
        "files": stats.files,
        "entities": stats.entities,
        "languages": dict(sorted(languages.items())),
        "parsed": stats.parsed,
        "from_cache": stats.from_cache,
        "unchanged": stats.unchanged,
        "skipped": stats.skipped,
        "other_files": len(index.other_files),
        "seconds": round(stats.seconds, 4),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"Indexed {index.root}")
    print(
        f"  {stats.files} source files, {stats.entities} classes/functions/methods in {stats.seconds:.2f} s"
    )
    print(f"  parsed {stats.parsed}, from cache {stats.from_cache}, unchanged {stats.unchanged}")
    print(f"  languages: {', '.join(f'{k} {v}' for k, v in summary['languages'].items()) or 'none'}")
    if index.skipped:
        print(f"  skipped {len(index.skipped)}: " + ", ".join(f"{k} {v}" for k, v in stats.skipped.items()))
        for path, reason in list(index.skipped.items())[:10]:
            print(f"    {path}: {reason}")
    return 0


def cmd_tool(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.args) if args.args else {}
    except json.JSONDecodeError as error:
        raise CommandError(f"--args is not valid JSON: {error}") from None
    if not isinstance(arguments, dict):
        raise CommandError('--args must be a JSON object, e.g. \'{"class_name": "QuerySet"}\'')
    index = _index(args, quiet=True)
    observation = ToolBox(index, args.profile).call(args.name, arguments)
    print(observation.text)
    return 0 if observation.ok else 1


def cmd_tools(args: argparse.Namespace) -> int:
    specs = profile_specs(args.profile)
    if args.format == "hermes":
        print(hermes_tools_prompt(specs))
    else:
        print(json.dumps(openai_tools(specs), indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from reposearcher_plugin.cli.bench import bench

    summary = bench(args.path, runs=args.runs, workers=args.workers)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"reposearcher bench {summary['repository']} (median of {summary['runs']} runs)")
    print(f"  files {summary['files']}, entities {summary['entities']}")
    for key in ("index_cold_s", "parse_floor_s", "cold_over_floor", "index_warm_s", "reindex_s"):
        print(f"  {key:<16} {summary[key]:.3f}")
    for key in ("tool_p50_ms", "tool_p99_ms", "tool_max_ms"):
        print(f"  {key:<16} {summary[key]:.2f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from reposearcher_plugin.cli.demo import run_demo

    try:
        return run_demo(args.path)
    except RuntimeError as error:
        raise CommandError(str(error)) from None


def _version() -> str:
    import importlib.metadata  # only for --version: it costs more than the rest of a command line's parse

    try:
        return importlib.metadata.version("reposearcher-plugin")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


class _VersionAction(argparse.Action):
    """``--version``, with the installed version looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"{parser.prog} {_version()}")  # on stdout, as argparse's own version action prints it
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every sub-command, or with ``command`` (one of ``COMMAND_MODULES``) the
    built-in ones and that one alone."""
    parser = argparse.ArgumentParser(
        prog="reposearcher", description="Issue localization: index a repository and search it with tools."
    )
    parser.add_argument("--version", action=_VersionAction, help="show program's version number and exit")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="build (or load) the index of a repository")
    index.add_argument("path", help="the repository (any directory) to index")
    output = index.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print counts and seconds as one JSON object")
    output.add_argument("--entities", action="store_true", help="print every class/function/method as JSONL")
    _add_index_options(index)
    index.set_defaults(handler=cmd_index)

    tool = commands.add_parser("tool", help="run one tool call and print the observation an agent sees")
    tool.add_argument("path", help="the repository to search")
    tool.add_argument("name", help="the tool to call (`reposearcher tools` lists them)")
    tool.add_argument("--args", help="the call's arguments as a JSON object")
    tool.add_argument("--profile", default="default", choices=sorted(PROFILES))
    _add_index_options(tool)
    tool.set_defaults(handler=cmd_tool)

    tools = commands.add_parser("tools", help="print the tool schemas")
    tools.add_argument("--profile", default="default", choices=sorted(PROFILES))
    tools.add_argument("--format", default="openai", choices=("openai", "hermes"))
    tools.set_defaults(handler=cmd_tools)

    bench = commands.add_parser("bench", help="measure indexing and tool speed on a repository")
    bench.add_argument("path", help="the repository to benchmark on (e.g. an unpacked release source)")
    bench.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    bench.add_argument("--runs", type=int, default=3, help="runs to take the median of (default 3)")
    bench.add_argument("--workers", type=int, help="parser processes (default: one per core)")
    bench.set_defaults(handler=cmd_bench)
    demo = commands.add_parser(
        "demo",
        help="offline main job: index requests 2.2.1 (PyPI release source, before the fix) and search it",
    )
    demo.add_argument("path", nargs="?", help="use this repository instead of requests' release source")
    demo.set_defaults(handler=cmd_demo)
    wanted = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for module, adder in dict.fromkeys(wanted):
        getattr(importlib.import_module(f"reposearcher_plugin.cli.{module}"), adder)(commands)
    return parser


def named_command(argv: Sequence[str]) -> str | None:
    """The sub-command a command line names when it starts with one of ``COMMAND_MODULES``, else None
    (``--help``, ``--version``, a built-in command or a mistake: those get every sub-command's parser)."""
    return argv[0] if argv and argv[0] in COMMAND_MODULES else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(named_command(argv)).parse_args(argv)
    try:
        return reports_errors(args.handler)(args)
    except BrokenPipeError:  # `reposearcher index --entities | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
