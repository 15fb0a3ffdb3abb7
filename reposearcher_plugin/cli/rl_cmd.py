"""`reposearcher rl prepare` (verl RL parquet), `reposearcher sft sample|prepare` (rejection-sampled SFT)."""

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
    select_instances,
    workspace_from_args,
)
from reposearcher_plugin.tools import PROFILES


def add_rl_commands(commands: Any) -> None:
    rl = commands.add_parser("rl", help="build verl RL data (GRPO with the tool agent loop)")
    rl_commands = rl.add_subparsers(dest="rl_command", required=True)
    prepare = rl_commands.add_parser(
        "prepare",
        help="write DIR/train.parquet and DIR/test.parquet in verl's RL schema",
        description="One row per instance with non-empty gold: the agent's first two turns (rendered by the "
        "one chat format, the overview taken at the instance's base commit), the gold entity ids, and "
        "tools_kwargs for every tool of the profile.",
    )
    add_dataset_options(prepare, "training issues: a local file or a hub name")
    prepare.add_argument("--out", required=True, help="output directory")
    prepare.add_argument(
        "--gold", help="gold JSON {instance_id: [entity ids]} (default: derive from patches)"
    )
    prepare.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="IDS",
        help="keep these instances out of training: a dataset (e.g. swe-bench-verified), a JSON list, or a "
        "file of ids, one per line (repeatable)",
    )
    held = prepare.add_mutually_exclusive_group()
    held.add_argument("--test-size", type=int, help="rows held out for test.parquet (default: 10%%, <= 100)")
    held.add_argument("--test-dataset", help="build test.parquet from this dataset instead")
    prepare.add_argument("--test-split", help="split of --test-dataset on the hub")
    prepare.add_argument("--profile", default="default", choices=sorted(PROFILES), help="tool set")
    prepare.add_argument(
        "--prompts",
        metavar="DIR",
        help="prompt templates, as `run --prompts` (serve the model with the same)",
    )
    prepare.add_argument(
        "--tool-format",
        default="hermes",
        choices=("hermes",),
        help="how the model writes calls in the rollout (verl's rollout.multi_turn.format); the prompt never "
        "holds the tools block itself: verl's chat template adds it",
    )
    prepare.add_argument("--limit", type=int, help="only the first N instances")
    prepare.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default 0)")
    add_workspace_options(prepare)
    prepare.set_defaults(handler=cmd_rl_prepare)

    sft = commands.add_parser("sft", help="rejection-sampled SFT data from agent trajectories")
    sft_commands = sft.add_subparsers(dest="sft_command", required=True)
    sample = sft_commands.add_parser(
        "sample",
        help="run the agent K times per instance into OUT/sample_<k>.jsonl (resumable)",
        description="Each sample index is a resumable batch run; use a temperature above 0.",
    )
    add_dataset_options(sample)
    sample.add_argument("--out", required=True, help="output directory of sample_<k>.jsonl files")
    sample.add_argument("--n", type=int, default=4, help="samples per instance (default 4)")
    sample.add_argument("--exclude", action="append", default=[], metavar="IDS", help="as for rl prepare")
    add_batch_options(sample, "runs in parallel")
    add_localizer_options(sample)
    add_workspace_options(sample)
    sample.set_defaults(handler=cmd_sft_sample)

    prepare_sft = sft_commands.add_parser(
        "prepare",
        help="score trajectories with the RL reward, keep the good ones, write verl's multi-turn SFT parquet",
    )
    prepare_sft.add_argument(
        "--trajectories", required=True, action="append", help="directory of sample_<k>.jsonl (or a file)"
    )
    source = prepare_sft.add_mutually_exclusive_group(required=True)
    source.add_argument("--gold", help="gold JSON {instance_id: [entity ids]}")
    source.add_argument("--dataset", help="derive gold from this dataset's patches (needs --repos-dir)")
    prepare_sft.add_argument("--split")
    prepare_sft.add_argument("--out", required=True, help="output directory: train.parquet (+ test.parquet)")
    prepare_sft.add_argument("--min-reward", type=float, default=0.5, help="keep scores >= X (default 0.5)")
    prepare_sft.add_argument("--best-per-instance", action="store_true", help="keep one trajectory each")
    prepare_sft.add_argument("--metric", default="ndcg@5", help="reward metric (default ndcg@5)")
    prepare_sft.add_argument("--file-weight", type=float, default=0.0, help="weight of the file-level score")
    prepare_sft.add_argument(
        "--join-tool-results",
        default="hermes",
        choices=("hermes", "none"),
        help="hermes (default): consecutive tool results become one tool message that Qwen-style templates "
        "render exactly as their merged user turn; none: one message per result",
    )
    prepare_sft.add_argument(
        "--max-length",
        type=int,
        metavar="TOKENS",
        help="drop rows longer than this in the chat template's tokens (set it to the trainer's "
        "data.max_length; needs --tokenizer)",
    )
    prepare_sft.add_argument(
        "--tokenizer", metavar="MODEL", help="the model to train (folder or hub name): its tokenizer counts"
    )
    prepare_sft.add_argument("--test-size", type=int, default=0, help="instances held out as test.parquet")
    prepare_sft.add_argument("--seed", type=int, default=0)
    add_workspace_options(prepare_sft)
    prepare_sft.set_defaults(handler=cmd_sft_prepare)


def _excluding(instances: list[Any], sources: list[str]) -> tuple[list[Any], list[str]]:
    from reposearcher_plugin.evaluation.mining_leakage import read_excluded

    if not sources:
        return instances, []
    excluded = {item.instance_id for item in read_excluded(sources)}
    dropped = [instance.instance_id for instance in instances if instance.instance_id in excluded]
    return [instance for instance in instances if instance.instance_id not in excluded], dropped


def _gold_file(path: str | None) -> dict[str, list[str]] | None:
    from reposearcher_plugin.evaluation.gold_source import read_gold_file

    return read_gold_file(path) if path else None


# --- rl prepare ------------------------------------------------------------------------------------------


@reports_errors
def cmd_rl_prepare(args: argparse.Namespace) -> int:
    from reposearcher_plugin.agent.chat import Prompts
    from reposearcher_plugin.cli.progress import progress_bar
    from reposearcher_plugin.evaluation.gold_source import GoldError
    from reposearcher_plugin.evaluation.instances import DatasetError, load_instances
    from reposearcher_plugin.index import ParseCache
    from reposearcher_plugin.rl import datasets

    try:
        instances = select_instances(load_instances(args.dataset, args.split), None, args.limit)
        tests = load_instances(args.test_dataset, args.test_split) if args.test_dataset else []
        instances, excluded = _excluding(instances, args.exclude)
        test_ids = {instance.instance_id for instance in tests}
        overlap = [instance.instance_id for instance in instances if instance.instance_id in test_ids]
        instances = [instance for instance in instances if instance.instance_id not in test_ids]
        gold = _gold_file(args.gold)
        workspace = workspace_from_args(args)
        prompts = Prompts(args.prompts) if args.prompts else None
    except (DatasetError, GoldError, OSError, ValueError) as error:
        raise CommandError(str(error)) from None
    if not instances:
        raise CommandError("no training instances left after --exclude / --test-dataset")
    report = datasets.BuildReport(excluded=excluded + overlap)
    cache = ParseCache()

    def build(selected: list, what: str) -> list[dict[str, Any]]:
        with progress_bar(f"building {what} rows") as update:
            return datasets.build_rows(
                selected,
                workspace,
                gold=gold,
                profile=args.profile,
                cache=cache,
                report=report,
                progress=update,
                prompts=prompts,
            )

    rows = build(instances, "train")
    try:
        if tests:
            test_rows = build(tests, "test")
            train, test = datasets.renumber(rows, "train"), datasets.renumber(test_rows, "test")
        else:
            size = args.test_size if args.test_size is not None else datasets.default_test_size(len(rows))
            train, test = datasets.split_rows(rows, size, seed=args.seed)
        out = Path(args.out)
        datasets.write_parquet(train, out / "train.parquet")
        if test:
            datasets.write_parquet(test, out / "test.parquet")
    except ValueError as error:
        _print_failures(report)
        raise CommandError(str(error)) from None
    manifest = {**report.to_dict(), "train": len(train), "test": len(test), "profile": args.profile}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(
        f"{out}: train {len(train)}, test {len(test)} rows; {len(report.no_gold)} without gold, "
        f"{len(report.excluded)} excluded, {len(report.failed)} failed; longest prompt "
        f"{report.longest_prompt_chars} characters",
        file=sys.stderr,
    )
    _print_failures(report)
    return 0 if not report.failed else 1


def _print_failures(report: Any) -> None:
    for instance_id, error in list(report.failed.items())[:5]:
        print(f"  {instance_id}: {error}", file=sys.stderr)


# --- sft sample / prepare --------------------------------------------------------------------------------


@reports_errors
def cmd_sft_sample(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.rl import sft

    try:
        options = localizer_options(args)
        if not options.uses_llm:
            raise ValueError("--model must be an LLM (a litellm model string): sampling needs an agent")
        instances = batch_instances(args)
        instances, _ = _excluding(instances, args.exclude)
        workspace = workspace_from_args(args)
    except (DatasetError, OSError, ValueError) as error:
        raise CommandError(str(error)) from None
    if options.policy.temperature <= 0:
        print(
            "warning: temperature 0 gives K copies of one trajectory; use e.g. --temperature 0.7",
            file=sys.stderr,
        )

    def on_result(k: int, row: dict[str, Any], summary: Any) -> None:
        done = summary.skipped + summary.done
        print(f"sample {k}: {done}/{summary.total} {row['instance_id']}", file=sys.stderr)

    try:
        summaries = sft.sample(
            instances,
            args.out,
            options,
            workspace,
            args.n,
            workers=args.workers,
            index_cache_dir=args.index_cache_dir,
            on_result=on_result,
            retry_errors=args.retry_errors,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    errors = sum(summary.errors for summary in summaries)
    done = sum(summary.done for summary in summaries)
    print(f"{args.out}: {args.n} samples, {done} runs this time, {errors} errors", file=sys.stderr)
    return 130 if any(summary.interrupted for summary in summaries) else 0


@reports_errors
def cmd_sft_prepare(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.gold_source import GoldError
    from reposearcher_plugin.evaluation.instances import DatasetError, load_instances
    from reposearcher_plugin.rl import datasets, sft
    from reposearcher_plugin.rl.reward import RewardConfig

    try:
        config = RewardConfig.from_options({"metric": args.metric, "file_weight": args.file_weight})
        if (args.max_length is None) != (args.tokenizer is None):
            raise ValueError("--max-length and --tokenizer go together")
        if args.max_length is not None and args.max_length < 1:
            raise ValueError("--max-length must be positive")
        tokenizer = _load_tokenizer(args.tokenizer) if args.tokenizer else None
        if args.gold:
            gold = _gold_file(args.gold)
        else:
            if not args.repos_dir:
                raise ValueError("deriving gold from --dataset needs --repos-dir")
            from reposearcher_plugin.evaluation.gold import derive_gold_for_dataset

            instances = load_instances(args.dataset, args.split)
            gold = derive_gold_for_dataset(instances, None, workspace=workspace_from_args(args))
        assert gold is not None
        rows, report = sft.prepare(
            args.trajectories,
            gold,
            min_reward=args.min_reward,
            best_per_instance=args.best_per_instance,
            config=config,
            join_tool_results=args.join_tool_results,
            tokenizer=tokenizer,
            max_length=args.max_length,
        )
        if not rows:
            raise ValueError(f"no trajectory was kept (--min-reward {args.min_reward}): {report.to_dict()}")
        train, test = _split_by_instance(rows, args.test_size, args.seed)
        out = Path(args.out)
        datasets.write_parquet(train, out / "train.parquet")
        if test:
            datasets.write_parquet(test, out / "test.parquet")
    except (DatasetError, GoldError, OSError, ValueError) as error:
        raise CommandError(str(error)) from None
    summary = {**report.to_dict(), "train_rows": len(train), "test_rows": len(test)}
    (out / "manifest.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(
        f"{out}: kept {report.kept} of {report.trajectories} trajectories ({report.instances} instances), "
        f"{len(train)} train / {len(test)} test rows; rejected: {json.dumps(report.rejected)}",
        file=sys.stderr,
    )
    return 0


def _load_tokenizer(name: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as error:
        raise ValueError("--tokenizer needs transformers (the rl or models extra)") from error
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load a tokenizer from {name!r}: {error}") from error


def _split_by_instance(rows: list[dict], test_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out whole instances, so no issue is in both files."""
    import random

    if test_size <= 0:
        return rows, []
    ids = sorted({row["instance_id"] for row in rows})
    if test_size >= len(ids):
        raise ValueError(f"--test-size {test_size} leaves no training instances (there are {len(ids)})")
    random.Random(seed).shuffle(ids)
    held = set(ids[:test_size])
    return [row for row in rows if row["instance_id"] not in held], [
        row for row in rows if row["instance_id"] in held
    ]
