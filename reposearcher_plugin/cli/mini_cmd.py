"""`reposearcher mini-swe-agent swebench`: mini-swe-agent's LocalizeFirstAgent over a SWE-bench dataset.

Nothing heavy is imported at module level: mini-swe-agent prints a banner and reads its global config
when first imported, which only this command should pay for.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.cli.options import (
    add_batch_options,
    add_dataset_options,
    add_workspace_options,
    batch_instances,
    workspace_from_args,
)
from reposearcher_plugin.cli.progress import finish_batch, report_row


def add_mini_command(commands: Any) -> None:
    """Add ``mini-swe-agent`` and its sub-commands to the top-level ``commands``."""
    mini = commands.add_parser(
        "mini-swe-agent", help="run mini-swe-agent with RepoSearcher localization first (SWE-bench batches)"
    )
    sub = mini.add_subparsers(dest="mini_command", required=True)
    swebench = sub.add_parser(
        "swebench",
        help="patch every instance of a dataset into SWE-bench predictions (resumable)",
        description="Per instance: a writable checkout of the base commit (local) or the SWE-bench image "
        "(docker), LocalizeFirstAgent, and its submitted patch as a SWE-bench prediction. Instances "
        "already in --out are skipped, so rerunning the same command resumes.",
    )
    add_dataset_options(swebench)
    swebench.add_argument(
        "--out",
        required=True,
        help="predictions: preds.json (mini-swe-agent's dict) or .jsonl; trajectories go to "
        "OUT_STEM.trajectories/",
    )
    swebench.add_argument(
        "--model", help="the agent's litellm model (default: model.model_name of the config)"
    )
    swebench.add_argument(
        "--model-class",
        help="mini-swe-agent model class, a short name (litellm, deterministic) or import path",
    )
    swebench.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="SPEC",
        help="mini-swe-agent config file or key.path=value, merged in order (repeatable; default: "
        "configs/hosts/mini_swe_agent_localize_first.yaml). Give the file first, then overrides.",
    )
    swebench.add_argument(
        "--environment",
        choices=("local", "docker"),
        default="local",
        help="local: a writable copy of the base commit on this machine (default); docker: the SWE-bench "
        "evaluation image (needs a Docker engine)",
    )
    add_batch_options(swebench)
    swebench.add_argument("--work-dir", help="where local checkouts are made (default: the temp directory)")
    swebench.add_argument("--keep-workdirs", action="store_true", help="keep the local checkouts afterwards")
    group = swebench.add_argument_group("localizer (the agent.localizer block of the config)")
    group.add_argument("--localizer-model", help="retrieval (the config's default), bm25, or a litellm model")
    group.add_argument("--localizer-api-base", help="OpenAI-compatible endpoint of the localizer model")
    group.add_argument("--localizer-profile", help="tool profile of the RepoSearcher agent")
    group.add_argument("--top-k", type=int, help="functions and classes shown in the prompt")
    group.add_argument("--no-localize", action="store_true", help="run the agent without localization")
    add_workspace_options(swebench)
    swebench.set_defaults(handler=cmd_swebench)


def _localizer_overrides(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {
        "model": args.localizer_model,
        "api_base": args.localizer_api_base,
        "profile": args.localizer_profile,
        "top_k": args.top_k,
        "index_cache_dir": args.index_cache_dir,
        "enabled": False if args.no_localize else None,
    }
    return {key: value for key, value in chosen.items() if value is not None}


@reports_errors
def cmd_swebench(args: argparse.Namespace) -> int:
    os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")  # keep mini-swe-agent's banner off our stdout
    from reposearcher_plugin.hosts.mini_swe_agent_swebench import load_config

    try:
        if args.workers < 1:
            raise ValueError("--workers must be at least 1")
        from minisweagent.utils.serialize import recursive_merge

        config = recursive_merge(
            load_config(args.config), {"agent": {"localizer": _localizer_overrides(args)}}
        )
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from None

    def on_result(row: dict[str, Any], summary: Any) -> None:
        status = row.get("error") or row.get("exit_status")
        lines = row["model_patch"].count("\n")
        seconds = row.get("seconds", 0)
        report_row(summary, row["instance_id"], f"{status}, patch {lines} lines, {seconds:.0f} s")

    return run_swebench_batch(
        args,
        lambda: config,
        on_result,
        model_class=args.model_class,
        environment=args.environment,
        work_root=args.work_dir,
        keep_workdirs=args.keep_workdirs,
    )


def run_swebench_batch(
    args: argparse.Namespace,
    config: Callable[[], dict[str, Any]],
    on_result: Callable[[dict[str, Any], Any], None] | None = None,
    **run_options: Any,
) -> int:
    """mini-swe-agent over the instances the batch options select, and the batch's last lines: the body
    of ``mini-swe-agent swebench`` and of ``patch --patcher mini-swe-agent``. ``config`` is read once the
    instances and the workspace are; ``run_options`` go to ``run_swebench``."""
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.hosts.mini_swe_agent_swebench import run_swebench

    try:
        instances = batch_instances(args)
        workspace = workspace_from_args(args)
        summary = run_swebench(
            instances,
            args.out,
            workspace,
            config=config(),
            model_name=args.model,
            workers=args.workers,
            retry_errors=args.retry_errors,
            on_result=on_result,
            **run_options,
        )
    except (DatasetError, OSError, ValueError) as error:  # ValueError: also an output that cannot resume
        raise CommandError(str(error)) from None
    return finish_batch(args.out, summary, "run", "empty patches")
