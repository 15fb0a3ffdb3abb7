"""`reposearcher patch`: localizations -> SWE-bench predictions (the patch step of %Resolved).

Nothing heavy is imported at module level: litellm and mini-swe-agent are paid for only by this command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.cli.mini_cmd import run_swebench_batch
from reposearcher_plugin.cli.options import (
    add_batch_options,
    add_dataset_options,
    add_workspace_options,
    batch_instances,
    workspace_from_args,
)
from reposearcher_plugin.cli.progress import finish_batch, report_row


def add_patch_command(commands: Any) -> None:
    """Add ``patch`` to the top-level ``commands``."""
    patch = commands.add_parser(
        "patch",
        help="turn localizations into SWE-bench predictions with a patcher (resumable)",
        description="Per instance: the localized code and the issue go to a model that answers with "
        "SEARCH/REPLACE edits (Agentless-style); the applied edits become a git diff, written as a "
        "SWE-bench prediction row {instance_id, model_name_or_path, model_patch}. Instances already in "
        "--out are skipped, so rerunning the same command resumes.",
    )
    add_dataset_options(patch)
    patch.add_argument(
        "--localizations",
        help="localization output, one JSON line per instance, in any published format (ours, Agentless, "
        "CoSIL, LocAgent); required by the repair patcher",
    )
    patch.add_argument(
        "--out", required=True, help="predictions, .jsonl (swebench's run_evaluation reads it)"
    )
    patch.add_argument(
        "--patcher",
        choices=("repair", "gold", "mini-swe-agent"),
        default="repair",
        help="repair: SEARCH/REPLACE edits from one model call per attempt (default); gold: the "
        "dataset's own patch (harness sanity check); mini-swe-agent: LocalizeFirstAgent over the dataset, "
        "which runs its own localizer (its runner takes no precomputed localization, so --localizations is "
        "ignored) - see `reposearcher mini-swe-agent swebench` for its full options",
    )
    patch.add_argument("--model", help="litellm model, e.g. hosted_vllm/Qwen2.5-Coder-32B-Instruct")
    patch.add_argument("--api-base", help="OpenAI-compatible endpoint of the model")
    patch.add_argument("--api-key-env", help="environment variable holding the API key")
    patch.add_argument("--model-name", help="model_name_or_path written in the rows (default: --model)")
    patch.add_argument(
        "--samples", type=int, default=1, help="patches per instance, majority vote (default 1)"
    )
    patch.add_argument(
        "--temperature",
        type=float,
        help="sampling temperature (default 0, or 0.8 with --samples > 1)",
    )
    patch.add_argument("--top-functions", type=int, default=5, help="localized entities shown (default 5)")
    patch.add_argument(
        "--top-files", type=int, default=3, help="files shown when no entity resolves (default 3)"
    )
    patch.add_argument("--context-lines", type=int, default=10, help="lines around each entity (default 10)")
    patch.add_argument(
        "--retries-on-fail",
        type=int,
        default=2,
        help="new tries, errors fed back, when no edit parses or applies (default 2)",
    )
    add_batch_options(patch, "instances in parallel, threads")
    add_workspace_options(patch)
    patch.set_defaults(handler=cmd_patch)


@reports_errors
def cmd_patch(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.evaluation.readers import PredictionsError, read_predictions

    if args.patcher == "mini-swe-agent":
        return _mini_swe_agent(args)
    try:
        if args.workers < 1 or args.samples < 1:
            raise ValueError("--workers and --samples must be at least 1")
        if args.patcher == "repair" and not (args.model and args.localizations):
            raise ValueError("the repair patcher needs --model and --localizations")
        instances = batch_instances(args)
        localizations: dict[str, Any] = {}
        if args.localizations and args.patcher == "repair":
            localizations, diagnostics = read_predictions(
                args.localizations, [instance.instance_id for instance in instances]
            )
            for problem in diagnostics.problems()[:10]:
                print(f"{args.localizations}: {problem}", file=sys.stderr)
        workspace = workspace_from_args(args) if args.patcher == "repair" else None
    except (DatasetError, PredictionsError, OSError, ValueError) as error:
        raise CommandError(str(error)) from None
    from reposearcher_plugin.repair.options import PatchOptions
    from reposearcher_plugin.repair.runner import run_patches

    options = PatchOptions(
        model=args.model,
        api_base=args.api_base,
        api_key=os.environ.get(args.api_key_env) if args.api_key_env else None,
        model_name=args.model_name,
        temperature=args.temperature if args.temperature is not None else 0.0,
        samples=args.samples,
        top_functions=args.top_functions,
        top_files=args.top_files,
        context_lines=args.context_lines,
        retries_on_fail=args.retries_on_fail,
        index_cache_dir=args.index_cache_dir,
    )

    def on_result(row: dict[str, Any], summary: Any) -> None:
        status = row.get("error") or row.get("outcome") or "done"
        report_row(summary, row["instance_id"], f"{status}, patch {row['model_patch'].count(chr(10))} lines")

    try:
        summary = run_patches(
            instances,
            localizations,
            args.out,
            args.patcher,
            workspace=workspace,
            options=options,
            workers=args.workers,
            retry_errors=args.retry_errors,
            on_result=on_result,
        )
    except ValueError as error:  # an output that cannot be resumed safely
        raise CommandError(str(error)) from None
    return finish_batch(args.out, summary, "patched", "empty patches")


def _mini_swe_agent(args: argparse.Namespace) -> int:
    # The hosts layer sits below evaluation, so only the CLI may reach it.
    os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")
    from reposearcher_plugin.hosts.mini_swe_agent_swebench import load_config

    if args.localizations:
        print(
            "reposearcher: note: mini-swe-agent localizes by itself; --localizations is ignored",
            file=sys.stderr,
        )
    return run_swebench_batch(args, load_config)
