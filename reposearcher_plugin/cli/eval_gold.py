"""`reposearcher eval gold`: gold locations derived from a dataset's patches, written as one JSON file.

Resumable: instances already in ``--out`` are kept and skipped (``--overwrite`` starts afresh), and the
file is rewritten atomically after every instance, so an interrupted run loses at most one instance.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.cli.options import (
    DEFAULT_CACHE_GB,
    add_dataset_options,
    add_workspace_options,
    select_instances,
    workspace_from_args,
)
from reposearcher_plugin.files import write_json


def add_gold_command(commands: Any) -> None:
    """Register ``gold`` under the ``eval`` sub-commands."""
    gold = commands.add_parser(
        "gold",
        help="derive gold locations (path::Class.method) from a dataset's patches",
        description="Derive gold locations from each instance's patch at its base commit "
        "(rules: docs/gold.md).",
    )
    add_dataset_options(gold)
    add_workspace_options(gold)
    gold.add_argument("--out", required=True, help="gold JSON file {instance_id: [locations]}")
    gold.add_argument(
        "--include-non-source",
        action="store_true",
        help="label edited files the index does not parse (docs, data, config) by their path",
    )
    gold.add_argument("--instance-ids", help="comma-separated instance ids to derive (default: all)")
    gold.add_argument("--overwrite", action="store_true", help="recompute instances already in --out")
    gold.add_argument(
        "--compare", metavar="GOLD.json", help="print agreement with another gold file (e.g. a published one)"
    )
    gold.add_argument(
        "--report", metavar="FILE.md", help="with --compare: write the agreement as FILE.md and FILE.json"
    )
    gold.set_defaults(handler=cmd_eval_gold)


@reports_errors
def cmd_eval_gold(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.gold_source import GoldError
    from reposearcher_plugin.evaluation.instances import DatasetError

    try:
        return _eval_gold(args)
    except (DatasetError, GoldError, ValueError) as error:
        raise CommandError(str(error)) from None


def _eval_gold(args: argparse.Namespace) -> int:
    from reposearcher_plugin.cli.progress import progress_bar
    from reposearcher_plugin.evaluation.gold import iter_gold
    from reposearcher_plugin.evaluation.instances import load_instances

    if args.report and not args.compare:
        raise ValueError("--report needs --compare")
    instances = load_instances(args.dataset, args.split)
    instances = select_instances(instances, args.instance_ids)
    out = Path(args.out)
    gold = {} if args.overwrite else _read_existing(out)
    todo = [instance for instance in instances if instance.instance_id not in gold]
    workspace = workspace_from_args(args)
    order = {instance.instance_id: number for number, instance in enumerate(instances)}
    failures: dict[str, str] = {}
    with progress_bar("deriving gold") as update:
        if update:
            update(0, len(todo))
        results = iter_gold(todo, workspace, include_non_source=args.include_non_source)
        for done, result in enumerate(results, start=1):
            if result.labels is None:
                failures[result.instance_id] = result.error
                print(f"{result.instance_id}: {result.error}", file=sys.stderr)
            else:
                gold[result.instance_id] = result.labels
                write_json(out, dict(sorted(gold.items(), key=lambda item: order.get(item[0], len(order)))))
            if update:
                update(done, len(todo))
    if not todo:
        write_json(out, gold)  # nothing new, but an --overwrite of nothing still leaves a file
    kept = len(instances) - len(todo)
    print(
        f"wrote {out}: {len(gold)} instances ({len(todo) - len(failures)} derived, {kept} already there, "
        f"{len(failures)} failed)",
        file=sys.stderr,
    )
    if args.compare:
        _compare(args, {key: gold[key] for key in order if key in gold})
    return 1 if failures else 0


def _compare(args: argparse.Namespace, gold: dict[str, list[str]]) -> None:
    from reposearcher_plugin.evaluation.gold_agreement import agreement, agreement_markdown
    from reposearcher_plugin.evaluation.gold_source import read_gold_file

    theirs = read_gold_file(args.compare)
    report = agreement(gold, theirs)
    report["command"] = _command_line(args)
    report["ours"], report["theirs"] = args.out, args.compare
    markdown = agreement_markdown(report)
    print(markdown, end="")
    if args.report:
        target = Path(args.report)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(markdown, encoding="utf-8")
        write_json(target.with_suffix(".json"), report)
        print(f"wrote {target} and {target.with_suffix('.json')}", file=sys.stderr)


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, rebuilt from its options (sys.argv is not ours when called
    as a function)."""
    words = ["reposearcher", "eval", "gold", "--dataset", args.dataset]
    words += ["--split", args.split] if args.split else []
    for directory in args.repos_dir:
        words += ["--repos-dir", directory]
    for alias in args.repo_alias:
        words += ["--repo-alias", alias]
    words += ["--out", args.out]
    words += ["--offline"] if args.offline else []
    words += ["--cache-dir", args.cache_dir] if args.cache_dir else []
    words += ["--max-cache-gb", f"{args.max_cache_gb:g}"] if args.max_cache_gb != DEFAULT_CACHE_GB else []
    words += ["--include-non-source"] if args.include_non_source else []
    words += ["--instance-ids", args.instance_ids] if args.instance_ids else []
    words += ["--compare", args.compare]
    words += ["--report", args.report] if args.report else []
    return shlex.join(words)


def _read_existing(path: Path) -> dict[str, list[str]]:
    if not path.exists():
        return {}
    from reposearcher_plugin.evaluation.gold_source import read_gold_file

    return read_gold_file(path)
