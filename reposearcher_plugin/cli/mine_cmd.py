"""`reposearcher mine`: localization instances from a repository's history (docs/mining.md).

Resumable: the same command again skips every commit an earlier run examined (`<out>.commits.jsonl`
holds each verdict) and ends with the output and `<out>.summary.json` an uninterrupted run writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors

# The defaults of evaluation/mining_rules.py, written out so that building the parser imports nothing heavy;
# tests/test_mining.py checks that they agree.
DEFAULT_MAX_DEFINITIONS = 10
DEFAULT_MAX_FILES = 20


def add_mine_command(commands: Any) -> None:
    mine = commands.add_parser(
        "mine",
        help="mine localization instances (query = a commit message, gold = the definitions it edits)",
        description="Walk a repository's history and write SWE-bench-style instances from the commits that "
        "change source definitions: problem_statement = the message, base_commit = the parent, patch / "
        "test_patch = the diff, gold = the definitions it edits. Filters, leakage rules: docs/mining.md.",
    )
    where = mine.add_mutually_exclusive_group(required=True)
    where.add_argument("--repo", metavar="PATH", help="a git repository (a checkout or a bare mirror)")
    where.add_argument(
        "--repos-dir",
        metavar="DIR",
        help="a directory of repositories named owner+name or owner__name (each mined in turn)",
    )
    mine.add_argument(
        "--repo-name",
        nargs="+",
        action="extend",
        default=[],
        metavar="OWNER/NAME",
        help="with --repo: the repository's name (default: from its directory name or GitHub remote); "
        "with --repos-dir: mine only these",
    )
    mine.add_argument("--out", required=True, help="output JSONL (one instance per line)")
    mine.add_argument("--since", metavar="DATE", help="only commits after DATE (git's --since: 2020-01-01)")
    mine.add_argument("--until", metavar="DATE", help="only commits before DATE (git's --until)")
    mine.add_argument(
        "--exclude",
        nargs="+",
        action="extend",
        default=[],
        metavar="DATASET",
        help="evaluation sets to keep out (leakage rules): dataset files or hub names, gold files "
        "{id: [locations]}, lists of ids (repeatable)",
    )
    mine.add_argument(
        "--max-definitions",
        type=int,
        default=DEFAULT_MAX_DEFINITIONS,
        metavar="N",
        help=f"drop commits whose gold holds more than N definitions (default {DEFAULT_MAX_DEFINITIONS})",
    )
    mine.add_argument(
        "--max-files",
        type=int,
        default=DEFAULT_MAX_FILES,
        metavar="N",
        help=f"drop commits editing more than N library source files (default {DEFAULT_MAX_FILES})",
    )
    mine.add_argument("--limit", type=int, metavar="N", help="only the newest N commits of each repository")
    mine.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming --out")
    mine.add_argument("--cache-dir", help="parse cache (default: ~/.cache/reposearcher, shared with index)")
    mine.add_argument("--no-cache", action="store_true", help="neither read nor write the parse cache")
    mine.set_defaults(handler=cmd_mine)


@reports_errors
def cmd_mine(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.evaluation.mining_state import MiningError
    from reposearcher_plugin.workspace import WorkspaceError

    try:
        return _mine(args)
    except (MiningError, DatasetError, WorkspaceError, OSError) as error:
        raise CommandError(str(error)) from None


def _repositories(args: argparse.Namespace) -> list[tuple[str, Path]]:
    from reposearcher_plugin.workspace.history import local_repositories, repository_name
    from reposearcher_plugin.workspace.sources import check_repo_name, git_dir_of

    for name in args.repo_name:
        check_repo_name(name)
    if args.repo:
        path = Path(args.repo).expanduser().resolve()
        git_dir = git_dir_of(path) if path.is_dir() else None
        if git_dir is None:
            raise CommandError(f"--repo {args.repo}: not a git repository")
        if len(args.repo_name) > 1:
            raise CommandError("--repo takes one --repo-name")
        name = args.repo_name[0] if args.repo_name else repository_name(path, git_dir)
        if name is None:
            raise CommandError(f"--repo {args.repo}: cannot tell its owner/name; pass --repo-name owner/name")
        return [(name, git_dir)]
    directory = Path(args.repos_dir).expanduser()
    if not directory.is_dir():
        raise CommandError(f"--repos-dir {args.repos_dir}: not a directory")
    found = local_repositories(directory)
    if args.repo_name:
        unknown = [name for name in args.repo_name if name not in found]
        if unknown:
            raise CommandError(f"--repos-dir {args.repos_dir} holds no {', '.join(unknown)}")
        return [(name, found[name]) for name in args.repo_name]
    if not found:
        raise CommandError(f"--repos-dir {args.repos_dir} holds no owner+name or owner__name repositories")
    return sorted(found.items())


def _mine(args: argparse.Namespace) -> int:
    from reposearcher_plugin.cli.progress import progress_bar
    from reposearcher_plugin.evaluation.mining import mine_repository, verdict_counts, write_summary
    from reposearcher_plugin.evaluation.mining_leakage import read_excluded
    from reposearcher_plugin.evaluation.mining_rules import MineOptions
    from reposearcher_plugin.evaluation.mining_state import MiningState, summary_path
    from reposearcher_plugin.index import ParseCache

    for option in ("max_definitions", "max_files", "limit"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise CommandError(f"--{option.replace('_', '-')} must be at least 1")
    repositories = _repositories(args)
    options = MineOptions(
        since=args.since,
        until=args.until,
        limit=args.limit,
        max_definitions=args.max_definitions,
        max_files=args.max_files,
        exclude=tuple(args.exclude),
    )
    excluded = read_excluded(args.exclude)
    cache = None if args.no_cache else ParseCache(args.cache_dir)
    out = Path(args.out)
    state = MiningState(out, options, overwrite=args.overwrite)
    summaries = []
    try:
        for name, git_dir in repositories:
            with progress_bar(f"mining {name}") as update:
                summary = mine_repository(
                    git_dir, name, options, state, excluded=excluded, cache=cache, progress=update
                )
            summaries.append(summary)
            report = summary.to_dict()
            print(
                f"{name}: {summary.commits} commits, kept {report['kept']} in {summary.seconds:.0f} s "
                f"({summary.cpu_seconds:.0f} s of CPU; {summary.resumed} decided by an earlier run); "
                f"{verdict_counts(report['filtered'])}",
                file=sys.stderr,
            )
            if summary.interrupted:
                break
    finally:
        state.close()
    payload = write_summary(out, options, summaries)
    print(
        f"{out}: {payload['total']['kept']} instances from {payload['total']['commits']} commits; "
        f"summary in {summary_path(out)}",
        file=sys.stderr,
    )
    if any(summary.interrupted for summary in summaries):
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0
