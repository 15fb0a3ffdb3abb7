"""`reposearcher ranker extract | train`: a learned ranker from mined instances (docs/ranker.md).

``extract`` builds the ranker's input (Signals) for a per-repository sample of each split at every
instance's base commit (resumable: a rerun skips what ``--work`` holds); ``train`` chooses LightGBM
LambdaMART's hyper-parameters, rounds and file ranking by cross-validation over train+dev, retrains the
choice on them, and writes the model file and a report of learned vs rules vs plain BM25 on the pooled
folds and on test. Use the model with ``--model ranker:PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.cli.options import add_workspace_options, workspace_from_args

DEFAULT_CAPS = {"train": 70, "dev": 20, "test": 20}


def add_ranker_commands(commands: Any) -> None:
    ranker = commands.add_parser(
        "ranker",
        help="train the learned offline ranker on mined instances (`reposearcher mine` output)",
        description="Train a LightGBM LambdaMART ranker over the offline default's features from "
        "instances mined from repository history; use it with --model ranker:PATH (docs/ranker.md).",
    )
    steps = ranker.add_subparsers(dest="step", required=True)
    extract = steps.add_parser(
        "extract",
        help="the ranker's features for a sample of mined instances, at their base commits (resumable)",
    )
    extract.add_argument("--instances", required=True, help="mined instances (JSONL of `reposearcher mine`)")
    extract.add_argument(
        "--work", required=True, help="directory for the features (extracted.jsonl, signals/)"
    )
    for split, cap in DEFAULT_CAPS.items():
        extract.add_argument(
            f"--{split}",
            type=int,
            default=cap,
            metavar="N",
            help=f"at most N {split} instances per repository (default {cap})",
        )
    extract.add_argument("--seed", type=int, default=0, help="seed of the per-repository draw (default 0)")
    extract.add_argument(
        "--only",
        metavar="FILE",
        help="only the drawn instances whose ids this file lists, one a line (to redo a run stopped early)",
    )
    extract.add_argument(
        "--workers", type=int, default=1, help="instances extracted in parallel processes (default 1)"
    )
    add_workspace_options(extract)
    extract.set_defaults(handler=cmd_ranker_extract)

    train = steps.add_parser(
        "train",
        help="choose by cross-validation over train+dev, retrain on them, report the folds and test",
    )
    train.add_argument("--work", required=True, help="the directory `ranker extract` wrote")
    train.add_argument("--out", required=True, help="the model file to write")
    train.add_argument("--name", default="ranker", help="the model's name, shown in evidence")
    train.add_argument("--version", type=int, default=1, help="the model's version (default 1)")
    train.add_argument("--report", help="also write the selection and the dev/test tables as JSON here")
    train.add_argument(
        "--rounds", type=int, default=400, help="at most this many boosting rounds (compared at 25, 50, ...)"
    )
    train.add_argument("--folds", type=int, default=5, help="cross-validation folds over train+dev")
    train.add_argument(
        "--workers",
        type=int,
        default=min(5, os.cpu_count() or 1),
        help="folds trained at once, one process each (default: the cores, at most the folds)",
    )
    train.set_defaults(handler=cmd_ranker_train)


@reports_errors
def cmd_ranker_extract(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.ltr import extract, read_rows, subsample

    try:
        rows = read_rows(args.instances)
    except (OSError, ValueError) as error:
        raise CommandError(f"--instances {args.instances}: {error}") from None
    if args.workers < 1:
        raise CommandError(f"--workers {args.workers}: at least 1")
    caps = {"train": args.train, "dev": args.dev, "test": args.test}
    chosen = subsample(rows, caps, seed=args.seed)
    if args.only:
        try:
            wanted = set(Path(args.only).read_text(encoding="utf-8").split())
        except OSError as error:
            raise CommandError(f"--only {args.only}: {error.strerror}") from None
        chosen = [row for row in chosen if row["instance_id"] in wanted]
    workspace = workspace_from_args(args)
    started = time.perf_counter()

    def on_done(number: int, total: int, record: dict[str, Any]) -> None:
        error = f" error: {record['error']}" if "error" in record else ""
        elapsed = time.perf_counter() - started
        print(f"{number}/{total} {record['instance_id']} ({elapsed:.0f} s){error}", file=sys.stderr)

    done = extract(chosen, workspace, args.work, on_done, workers=args.workers)
    print(f"{args.work}: {len(chosen)} instances chosen, {done} extracted now", file=sys.stderr)
    return 0


@reports_errors
def cmd_ranker_train(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.ltr import load_examples, train_and_select

    work = Path(args.work)
    if not (work / "extracted.jsonl").exists():
        raise CommandError(f"--work {args.work}: no extracted.jsonl; run `reposearcher ranker extract` first")
    examples = list(load_examples(work))

    if args.folds < 2:
        raise CommandError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    if args.rounds < 1:
        raise CommandError(f"--rounds {args.rounds}: at least 1")
    if args.workers < 1:
        raise CommandError(f"--workers {args.workers}: at least 1")

    def on_trained(point: dict[str, Any]) -> None:
        function = point["cv"]["function"]
        print(
            f"{point['params']} {point['file_aggregation']}: {point['rounds']} rounds, cross-validated "
            f"function R@5 {function['recall@5']:.1f} MRR {function['mrr']:.1f}, file R@5 "
            f"{point['cv']['file']['recall@5']:.1f}",
            file=sys.stderr,
        )

    try:
        selection = train_and_select(
            examples,
            name=args.name,
            version=args.version,
            rounds=args.rounds,
            folds=args.folds,
            workers=args.workers,
            on_trained=on_trained,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(selection.trained.text, encoding="utf-8")
    report = {
        "model": str(out),
        "params": selection.params,
        "rounds": selection.trained.best_iteration,
        "train_queries": selection.trained.train_queries,
        "folds": selection.folds,
        "cross_validated": selection.pooled,
        "learned_wins_cv": selection.learned_wins,
        "tables": selection.tables,
        "tried": selection.tried,
    }
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1), encoding="utf-8")
    for split, systems in selection.tables.items():
        for system, levels in systems.items():
            print(
                f"{split} {system}: function R@5 {levels['function']['recall@5']:.1f} "
                f"MRR {levels['function']['mrr']:.1f}; file R@5 {levels['file']['recall@5']:.1f} "
                f"MRR {levels['file']['mrr']:.1f}",
                file=sys.stderr,
            )
    verdict = "beats" if selection.learned_wins else "does not beat"
    print(f"{out}: the learned ranker {verdict} the rules, cross-validated", file=sys.stderr)
    return 0
