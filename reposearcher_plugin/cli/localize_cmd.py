"""`reposearcher localize` (one issue, one repository) and `reposearcher run` (a dataset, resumable)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.options import add_localizer_options, localizer_options
from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.cli.options import (
    add_batch_options,
    add_dataset_options,
    add_workspace_options,
    batch_instances,
    workspace_from_args,
)
from reposearcher_plugin.cli.progress import finish_batch


def add_localize_commands(commands: Any) -> None:
    localize = commands.add_parser(
        "localize",
        help="rank the files and functions an issue needs changed (the main job)",
        description="Localize one issue in one repository. Without --model the embedded retrieval "
        "localizer answers offline; with a litellm model string the RepoSearcher agent searches.",
    )
    localize.add_argument(
        "--repo", required=True, help="path of the repository (a checkout at the right commit)"
    )
    localize.add_argument("--issue", required=True, help="file holding the issue text, or - for stdin")
    localize.add_argument("--instance-id", help="id recorded in the result (default: the issue file's stem)")
    localize.add_argument("--json", action="store_true", help="print the result object (docs/formats.md)")
    localize.add_argument("--out", help="also write the result object to this JSON file")
    localize.add_argument("--trajectory", help="write the trajectory here (default: inline in the result)")
    localize.add_argument("--top", type=int, default=10, help="locations shown without --json (default 10)")
    add_history_option(localize)
    add_localizer_options(localize)
    localize.set_defaults(handler=cmd_localize)

    run = commands.add_parser(
        "run",
        help="localize every instance of a dataset into a predictions file (resumable)",
        description="Batch localization. Instances already in --out are skipped, so rerunning the same "
        "command resumes a killed run. The output is readable by `reposearcher eval loc`.",
    )
    add_dataset_options(run)
    run.add_argument(
        "--out", required=True, help="predictions JSONL; trajectories go to OUT_STEM.trajectories/"
    )
    add_batch_options(run, "instances localized in parallel")
    run.add_argument(
        "--allow-missing-blobs",
        action="store_true",
        help="localize even when the clone lacks some files' contents (mirrors without large data files)",
    )
    add_history_option(run)
    add_localizer_options(run)
    add_workspace_options(run)
    run.set_defaults(handler=cmd_run)


# --- localize ------------------------------------------------------------------------------------------


@reports_errors
def cmd_localize(args: argparse.Namespace) -> int:
    try:
        options = localizer_options(args)
        issue = _read_issue(args.issue)
        root = Path(args.repo)
        if not root.is_dir():
            raise ValueError(f"--repo {root}: not a directory")
        instance_id = args.instance_id or (Path(args.issue).stem if args.issue != "-" else "issue")
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from None
    from reposearcher_plugin.agent.localizers import build_localizer
    from reposearcher_plugin.cli.progress import progress_bar
    from reposearcher_plugin.index import build_index

    with progress_bar("indexing") as update:
        index = build_index(root, progress=update)
    if not index.files:
        raise CommandError(
            f"--repo {root}: no source file in a language the index parses; is it the repository?"
        )
    from reposearcher_plugin.workspace.change_history import local_history

    history = None if args.no_history else local_history(root)
    result = build_localizer(options).localize(
        index, issue, instance_id=instance_id, repo=str(root), history=history
    )
    if args.trajectory and result.trajectory is not None and not isinstance(result.trajectory, str):
        result.trajectory = str(result.trajectory.write(args.trajectory))
    row = result.to_dict()
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(row, ensure_ascii=False))
    else:
        _print_result(row, index.stats, args.top)
    return 1 if result.error else 0


def add_history_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="rank from the code alone: leave out what the repository's past changes say (its git history "
        "before the commit; docs/ranker.md)",
    )


def _read_issue(source: str) -> str:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError("the issue text is empty")
    return text


def _print_result(row: dict[str, Any], stats: Any, top: int) -> None:
    from reposearcher_plugin.cli.console import output_console, ranked_table  # rich: not for --json

    console = output_console()
    usage = row.get("usage") or {}
    facts = [f"model {row['model']}", f"{stats.files} files indexed in {stats.seconds:.2f} s"]
    facts.append(f"localized in {usage.get('wall_s', 0):.2f} s")
    if usage.get("turns"):
        facts.append(f"{usage['turns']} turns, {usage.get('tool_calls', 0)} tool calls")
        facts.append(f"{usage.get('prompt_tokens', 0) + usage.get('completion_tokens', 0)} tokens")
    console.print(", ".join(facts), style="dim")
    if row.get("error"):
        console.print(f"error: {row['error']}", style="bold red")
    if row["locations"]:
        console.print(ranked_table(f"{row['instance_id']}: where to change", row["locations"][:top]))
    files = row["found_files"][:5]
    console.print("files: " + (", ".join(files) if files else "(none)"))
    if isinstance(row.get("trajectory"), str):
        console.print(f"trajectory: {row['trajectory']} (reposearcher show {row['trajectory']})", style="dim")


# --- run -----------------------------------------------------------------------------------------------


@reports_errors
def cmd_run(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.index.languages import check_grammars

    check_grammars()  # here, once: in the workers every instance would become the same error row
    try:
        options = localizer_options(args)
        if args.workers < 1:
            raise ValueError("--workers must be at least 1")
        instances = batch_instances(args)
        workspace = workspace_from_args(args)
    except (DatasetError, OSError, ValueError) as error:
        raise CommandError(str(error)) from None
    return _run(args, instances, options, workspace)


def _run(args: argparse.Namespace, instances: list[Any], options: Any, workspace: Any) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from reposearcher_plugin.evaluation.batch import BatchSummary, run_batch

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("localizing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        auto_refresh=False,  # no refresh thread: worker processes are forked while the bar is shown
        disable=not console.is_terminal,
    )

    def counts(summary: BatchSummary) -> str:
        return f"errors {summary.errors}  empty {summary.empty}  {summary.per_minute:.1f}/min"

    try:
        with progress:
            task = progress.add_task("run", total=len(instances), counts="")

            def on_result(row: dict[str, Any], summary: BatchSummary) -> None:
                progress.update(task, completed=summary.skipped + summary.done, counts=counts(summary))
                progress.refresh()
                if row.get("error"):
                    progress.console.print(
                        f"[red]{row['instance_id']}[/red]: {row['error']}", highlight=False
                    )

            summary = run_batch(
                instances,
                args.out,
                options,
                workspace,
                workers=args.workers,
                retry_errors=args.retry_errors,
                index_cache_dir=args.index_cache_dir,
                allow_missing=args.allow_missing_blobs,
                history=not args.no_history,
                on_result=on_result,
            )
    except ValueError as error:  # an output file that cannot be resumed safely
        raise CommandError(str(error)) from None
    return finish_batch(args.out, summary, "localized", "empty")
