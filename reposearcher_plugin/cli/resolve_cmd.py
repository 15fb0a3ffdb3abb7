"""`reposearcher eval resolve` (run SWE-bench's harness) and `reposearcher eval report` (localization and
%Resolved in one table). Heavy imports happen inside the handlers, as in cli/eval_cmd.py."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.cli.options import add_dataset_options

# not locagent: the joint report puts function Recall@5 beside %Resolved, and that protocol has only Acc@k
PROTOCOL_CHOICES = ("strict", "tooltrain")
NO_DOCKER_STATUS = 3


def add_resolve_commands(eval_subcommands: Any) -> None:
    """Add ``resolve`` and ``report`` to the sub-commands of ``eval``."""
    _add_resolve(eval_subcommands)
    _add_report(eval_subcommands)


def _add_resolve(commands: Any) -> None:
    from reposearcher_plugin.evaluation.resolve import DEFAULT_MAX_WORKERS, DEFAULT_TIMEOUT

    resolve = commands.add_parser(
        "resolve",
        help="%%Resolved: run SWE-bench's official harness on patches (needs Docker)",
        description="Run `python -m swebench.harness.run_evaluation` on a predictions file and summarize "
        "its report. Needs a running Docker engine.",
    )
    resolve.add_argument(
        "--predictions",
        required=True,
        help=".jsonl/.json rows {instance_id, model_name_or_path, model_patch}",
    )
    resolve.add_argument("--dataset", required=True, help="hub name or local .json/.jsonl/.parquet file")
    resolve.add_argument("--split", default="test", help="default: test")
    resolve.add_argument("--max-workers", type=int, default=DEFAULT_MAX_WORKERS, help="default: %(default)s")
    resolve.add_argument("--run-id", help="harness run id (default: the predictions file's stem)")
    resolve.add_argument(
        "--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per instance (default: %(default)s)"
    )
    resolve.add_argument("--report-dir", default=".", help="where the harness writes its final report")
    resolve.add_argument(
        "--print-command", action="store_true", help="print the harness command and exit (no Docker needed)"
    )
    resolve.set_defaults(handler=cmd_eval_resolve)


def _add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="localization metrics next to %%Resolved, with paired intervals and a scatter plot",
        description="One table per the ToolTrain paper's Table 3: each system's localization scores and "
        "%Resolved (from a SWE-bench harness report; denominator = dataset size).",
    )
    add_dataset_options(report, "a local .jsonl/.json/.parquet/.csv file or a hub name")
    report.add_argument("--gold", help="gold file {instance_id: [path::Class.method, ...]}")
    report.add_argument("--repos-dir", help="where repositories are checked out, to derive gold from patches")
    report.add_argument(
        "--systems",
        required=True,
        nargs="+",
        metavar="NAME=LOC_PREDS:RESOLVE_REPORT",
        help="one per system; either side may be empty (NAME=preds.jsonl: or NAME=:gold.run1.json); "
        "RESOLVE_REPORT is the harness's final report or a logs/run_evaluation/<run_id>/<model> folder",
    )
    report.add_argument("--protocol", default="strict", choices=PROTOCOL_CHOICES, help="default: strict")
    output = report.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object")
    output.add_argument("--markdown", action="store_true", help="print markdown (the default)")
    report.add_argument(
        "--plot",
        metavar="FILE.png",
        help="save a function Recall@5 vs %%Resolved scatter plot",
    )
    report.add_argument(
        "--by-repo",
        action="store_true",
        help="add a per-repository breakdown (and plot points)",
    )
    report.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000; 0: none)"
    )
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    report.add_argument("--title", help="heading of the markdown report and the plot")
    report.set_defaults(handler=cmd_eval_report)


@reports_errors
def cmd_eval_resolve(args: argparse.Namespace, check_docker: Any = None, run: Any = None) -> int:
    """``check_docker`` / ``run`` stand in for the engine probe and the process in tests."""
    from reposearcher_plugin.evaluation import resolve

    options = resolve.HarnessOptions(
        predictions=args.predictions,
        dataset=args.dataset,
        split=args.split,
        max_workers=args.max_workers,
        run_id=args.run_id or "",
        timeout=args.timeout,
        report_dir=args.report_dir,
    )
    try:
        if args.print_command:
            resolve.check_inputs(options)
            print(" ".join(resolve.harness_command(options)))
            return 0
        result = resolve.run_harness(options, check_docker=check_docker or resolve.docker_problem, run=run)
    except resolve.DockerUnavailable as error:
        raise CommandError(
            "SWE-bench's harness needs a running Docker engine; "
            f"none was found ({error}). "
            "Run this on a machine with Docker (`reposearcher eval resolve --print-command ...` shows the "
            "harness command), then `reposearcher eval report --systems NAME=LOC_PREDS:RESOLVE_REPORT ...`.",
            status=NO_DOCKER_STATUS,
        ) from None
    except resolve.ResolveError as error:
        raise CommandError(str(error)) from None
    summary = result.to_dict()
    print(json.dumps(summary, indent=2))
    return 0


def parse_system(spec: str) -> tuple[str, str | None, str | None]:
    """``NAME=LOC_PREDS:RESOLVE_REPORT`` -> (name, predictions or None, harness report or None)."""
    name, equals, rest = spec.partition("=")
    if not equals or not name:
        raise ValueError(f"system {spec!r} must read NAME=LOC_PREDS:RESOLVE_REPORT")
    if ":" in rest:
        predictions, _, resolve_report = rest.rpartition(":")
    else:
        predictions, resolve_report = rest, ""
    predictions, resolve_report = predictions.strip(), resolve_report.strip()
    if not predictions and not resolve_report:
        raise ValueError(f"system {name!r} names neither localization predictions nor a harness report")
    return name, predictions or None, resolve_report or None


@reports_errors
def cmd_eval_report(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.gold_source import GoldError
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.evaluation.metrics import MetricError
    from reposearcher_plugin.evaluation.readers import PredictionsError
    from reposearcher_plugin.evaluation.resolve import ResolveError

    try:
        return _eval_report(args)
    except (DatasetError, GoldError, PredictionsError, MetricError, ResolveError, ValueError) as error:
        raise CommandError(str(error)) from None


def _eval_report(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation import gold_source
    from reposearcher_plugin.evaluation.instances import load_instances
    from reposearcher_plugin.evaluation.joint_report import (
        JointSystem,
        build_joint_report,
        joint_json,
        joint_markdown,
        plot_joint,
    )
    from reposearcher_plugin.evaluation.metrics import evaluate, get_protocol
    from reposearcher_plugin.evaluation.readers import read_predictions
    from reposearcher_plugin.evaluation.resolve import read_harness_report

    specs = [parse_system(spec) for spec in args.systems]
    rules = get_protocol(args.protocol)
    instances = load_instances(args.dataset, args.split)
    gold: dict[str, list[str]] | None = None
    if any(predictions for _, predictions, _ in specs):
        if args.gold:
            gold = gold_source.read_gold_file(args.gold)
        else:
            from reposearcher_plugin.evaluation.gold import gold_from_patches

            gold = gold_from_patches(instances, args.repos_dir)
        gold_source.check_gold_matches(instances, gold, args.gold or "derived from patches")
        gold = gold_source.ordered_like(instances, gold)
    systems = []
    for name, predictions_path, resolve_path in specs:
        scores = diagnostics = resolve = None
        if predictions_path:
            assert gold is not None
            predictions, diagnostics = read_predictions(
                predictions_path, known_ids=gold, clean_paths=rules.clean_paths
            )
            scores = evaluate(predictions, gold, rules.name)
        if resolve_path:
            resolve = read_harness_report(resolve_path)
        systems.append(JointSystem(name, scores, diagnostics, resolve))
    repos = {instance.instance_id: instance.repo for instance in instances} if args.by_repo else None
    result = build_joint_report(
        rules.name, [i.instance_id for i in instances], systems, args.bootstrap, args.seed, repos
    )
    if args.json:
        print(json.dumps(joint_json(result), indent=2))
    else:
        about = f"Dataset `{args.dataset}`" + (f" ({args.split})" if args.split else "")
        about += f", gold `{args.gold}`." if args.gold else "."
        print(joint_markdown(result, args.title or "Localization and %Resolved", about), end="")
    if args.plot:
        written = plot_joint(result, args.plot, args.title or "")
        print(f"wrote {written}", file=sys.stderr)
    return 0
