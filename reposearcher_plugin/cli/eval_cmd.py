"""`reposearcher eval ...`: evaluation sub-commands.

Heavy imports (numpy, the metrics, matplotlib) happen inside the handlers, so that building the parser
for any other command stays cheap.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.cli.options import add_dataset_options

PROTOCOL_CHOICES = ("strict", "tooltrain", "locagent")


def add_eval_commands(subparsers: Any) -> None:
    """Add ``eval`` and its sub-commands to the top-level ``subparsers``."""
    evaluation = subparsers.add_parser("eval", help="evaluate localization outputs against gold locations")
    commands = evaluation.add_subparsers(dest="eval_command", required=True)
    _add_loc(commands)
    _add_gold(commands)
    from reposearcher_plugin.cli.resolve_cmd import add_resolve_commands

    add_resolve_commands(commands)
    # Further `eval` sub-commands register here, each with its own _add_<name>(commands).


def _add_gold(commands: Any) -> None:
    """`eval gold`: gold locations derived from the dataset's patches (parser and handler live in
    cli/eval_gold.py, which imports nothing heavy at module level)."""
    from reposearcher_plugin.cli.eval_gold import add_gold_command

    add_gold_command(commands)


def _add_loc(commands: Any) -> None:
    loc = commands.add_parser(
        "loc",
        help="score localization outputs (files, modules, functions) with confidence intervals",
        description="Score one or more predictions files against the gold locations of a dataset.",
    )
    add_dataset_options(loc)
    loc.add_argument(
        "--predictions", required=True, nargs="+", help="JSONL outputs; each file is one system (its stem)"
    )
    loc.add_argument(
        "--gold",
        help="gold file {instance_id: [path::Class.method, ...]}; without it, gold is derived from patches",
    )
    loc.add_argument("--repos-dir", help="where repositories are checked out, to derive gold from patches")
    loc.add_argument(
        "--protocol",
        default="strict",
        choices=PROTOCOL_CHOICES,
        help="strict (default), tooltrain (the ToolTrain paper's script), locagent (LocAgent's Acc@k; "
        "give it LocAgent's gold, eval/locagent_gold.py)",
    )
    output = loc.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object keyed by system name")
    output.add_argument("--markdown", action="store_true", help="print markdown tables")
    loc.add_argument("--plot", metavar="FILE.png", help="save a Recall@k plot (k = 1..10) per level")
    loc.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000; 0: none)"
    )
    loc.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    loc.add_argument("--metrics", help="comma-separated table columns, e.g. recall@5,map (tables only)")
    loc.add_argument("--title", help="heading of the markdown report and the plot")
    loc.set_defaults(handler=cmd_eval_loc)


PLOT_FORMATS = (".png", ".svg", ".pdf")


@reports_errors
def cmd_eval_loc(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.gold_source import GoldError
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.evaluation.metrics import MetricError
    from reposearcher_plugin.evaluation.readers import PredictionsError

    try:
        return _eval_loc(args)
    except (DatasetError, GoldError, PredictionsError, MetricError) as error:
        raise CommandError(str(error)) from None


def _eval_loc(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation import gold_source, report
    from reposearcher_plugin.evaluation.instances import load_instances
    from reposearcher_plugin.evaluation.metrics import MetricError, evaluate, get_protocol, parse_metric
    from reposearcher_plugin.evaluation.readers import PredictionsError, read_predictions

    if args.plot:  # found out before minutes of scoring, not after the tables
        if Path(args.plot).suffix.lower() not in PLOT_FORMATS:
            raise MetricError(f"--plot {args.plot}: the plot is an image; name it .png, .svg or .pdf")
        if importlib.util.find_spec("matplotlib") is None:
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
    rules = get_protocol(args.protocol)
    chosen = [metric.strip() for metric in (args.metrics or "").split(",") if metric.strip()] or None
    for metric in chosen or ():
        parse_metric(metric)
    instances = load_instances(args.dataset, args.split)
    gold = _gold(args, instances)
    gold_source.check_gold_matches(instances, gold, args.gold or "derived from patches")
    gold = gold_source.ordered_like(instances, gold)
    systems = []
    for path, name in zip(args.predictions, system_names(args.predictions), strict=True):
        predictions, diagnostics = read_predictions(path, known_ids=gold, clean_paths=rules.clean_paths)
        if not diagnostics.predictions and diagnostics.malformed_lines:
            first = diagnostics.malformed_lines[0]
            raise PredictionsError(
                f"{path}: none of its {len(diagnostics.malformed_lines)} non-empty lines is a prediction "
                f"({first}); docs/formats.md lists the formats read"
            )
        curve = None
        if args.plot:
            curve = evaluate(predictions, gold, rules.name, metrics=report.recall_curve_metrics())
        scores = evaluate(predictions, gold, rules.name)
        systems.append(report.SystemResult(name, scores, diagnostics, curve))
    result = report.build_report(rules.name, systems, args.bootstrap, args.seed)
    if args.json:
        print(json.dumps(report.report_json(result), indent=2))
    elif args.markdown:
        about = f"Dataset `{args.dataset}`" + (f" ({args.split})" if args.split else "")
        about += f", gold `{args.gold}`." if args.gold else ", gold derived from the patches."
        heading = args.title or "Localization"
        print(report.report_markdown(result, chosen, heading=heading, about=about), end="")
    else:
        _print_rich(result, chosen)
    if args.plot:
        title = f"{args.title or 'Recall@k on ' + Path(args.dataset).stem} ({len(gold)} instances), "
        title += f"protocol {rules.name}"
        written = report.plot_recall(result, args.plot, title)
        print(f"wrote {written}", file=sys.stderr)
    return 0


def _gold(args: argparse.Namespace, instances: list[Any]) -> dict[str, list[str]]:
    from reposearcher_plugin.evaluation import gold_source

    if args.gold:
        return gold_source.read_gold_file(args.gold)
    from reposearcher_plugin.cli.progress import progress_bar
    from reposearcher_plugin.evaluation.gold import gold_from_patches  # (only needed without a gold file)

    with progress_bar("deriving gold") as update:
        return gold_from_patches(instances, args.repos_dir, progress=update)


def system_names(paths: list[str]) -> list[str]:
    """Each file's stem; files that share a stem are told apart by their folder (``run1/preds``)."""
    stems = [Path(path).stem for path in paths]
    names = [
        stem if stems.count(stem) == 1 else f"{Path(path).parent.name}/{stem}"
        for path, stem in zip(paths, stems, strict=True)
    ]
    # Still equal (the same file twice, or the same folder name): number them.
    return [
        f"{name}#{names[: number + 1].count(name)}" if names.count(name) > 1 else name
        for number, name in enumerate(names)
    ]


def _print_rich(result: Any, chosen: list[str] | None) -> None:
    from rich import box
    from rich.table import Table

    from reposearcher_plugin.cli.console import column_groups, natural_width, output_console
    from reposearcher_plugin.evaluation import report

    console = output_console()
    columns = report.table_metrics(result, chosen)
    n = result.systems[0].scores.n if result.systems else 0
    note = f"{n} instances, protocol {result.protocol}, percent"
    if result.resamples:
        note += f"; under each score its 95% interval ({result.resamples} paired bootstrap resamples)"
    console.print(note, highlight=False)
    for level in result.levels:
        scored = result.systems[0].scores.levels[level].n
        title = f"{level} level ({scored} instances scored)"
        rows = report.score_cells(result, level, columns, two_lines=True)

        def table_of(group: list[int], heading: str = title, rows: list[list[str]] = rows) -> Table:
            table = Table(title=heading, title_justify="left", box=box.SIMPLE_HEAD, highlight=False)
            table.add_column("system", no_wrap=True)
            for index in group:
                table.add_column(columns[index], justify="right", no_wrap=True)
            for row in rows:
                table.add_row(row[0], *(row[1 + index] for index in group))
            return table

        def fits(group: list[int]) -> bool:
            return natural_width(console, table_of(group)) <= console.width

        for number, group in enumerate(column_groups(len(columns), fits)):
            console.print(table_of(group, title if number == 0 else f"{title}, continued"))
    for system in result.systems:
        for problem in system.diagnostics.problems():
            console.print(f"[yellow]{system.name}[/yellow]: {problem}", highlight=False)
