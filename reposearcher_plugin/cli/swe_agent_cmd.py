"""`reposearcher swe-agent ...`: the SWE-agent tool bundle and the "localize first" instances file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
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
from reposearcher_plugin.cli.progress import report_row
from reposearcher_plugin.packaged import config_path
from reposearcher_plugin.tools import PROFILES

LOCAL_DEPLOYMENT_HELP = """\
SWE-agent's local deployment (no Docker: the agent works on this machine):
  reposearcher swe-agent instances --dataset D --repos-dir R --instances ID --out instances.jsonl \\
      --image-template '' --repo-name /abs/path/to/checkout
  sweagent run-batch --config configs/hosts/swe_agent_localize_first.yaml \\
      --instances.type file --instances.path instances.jsonl --instances.deployment.type local
--image-template '': SWE-agent stops with "Local deployment does not support image_name" otherwise.
--repo-name /abs/path/to/checkout: a name without a slash means a repository already at /NAME on this
machine; a path is a local checkout, which SWE-agent copies to /<its directory name> and resets to each
row's base_commit (it needs a clean git work tree, and write access to /). One checkout serves the
instances of one repository: select them with --instances. See docs/hosts-swe-agent.md.
"""


def add_swe_agent_command(commands: Any) -> None:
    swe = commands.add_parser(
        "swe-agent",
        help="RepoSearcher in SWE-agent: a tool bundle, or localization in the first prompt",
        description="Write a SWE-agent tool bundle of the RepoSearcher tools, or localize a dataset and "
        "write SWE-agent's instances file (--instances.type=file) with the result in "
        "extra_fields.localization. See docs/hosts-swe-agent.md.",
    )
    actions = swe.add_subparsers(dest="swe_agent_action", metavar="ACTION", required=True)

    bundle = actions.add_parser("bundle", help="write the tool bundle directory")
    bundle.add_argument(
        "--out", required=True, help="bundle directory; its name is the name SWE-agent installs it under"
    )
    bundle.add_argument("--profile", choices=sorted(PROFILES), default="default", help="tool profile")
    bundle.add_argument(
        "--wheels",
        action="store_true",
        help="ship reposearcher-plugin and the wheels its tools need in DIR/wheels, so install.sh can "
        "build a venv offline in images where no Python >= 3.11 has it installed",
    )
    bundle.add_argument(
        "--wheel-python-version", metavar="X.Y", help="wheels for this Python (default: the running one)"
    )
    bundle.add_argument(
        "--wheel-platform", metavar="TAG", help="wheels for this platform, e.g. manylinux2014_x86_64"
    )
    bundle.set_defaults(handler=cmd_bundle)

    check = actions.add_parser("validate", help="check a bundle directory against SWE-agent's rules")
    check.add_argument("path", help="bundle directory")
    check.set_defaults(handler=cmd_validate)

    instances = actions.add_parser(
        "instances",
        help="localize a dataset, then write SWE-agent's instances file with the localization",
        description="Localize every instance (resumable: predictions go to OUT_STEM.predictions.jsonl and\n"
        "a rerun skips what is done), then write one SimpleBatchInstance row per instance with\n"
        "extra_fields.localization for {{localization}} in an instance_template.",
        epilog=LOCAL_DEPLOYMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataset_options(instances)
    instances.add_argument("--out", required=True, help="instances JSONL for sweagent run-batch")
    instances.add_argument("--predictions", help="predictions JSONL (default: OUT_STEM.predictions.jsonl)")
    instances.add_argument(
        "--image-template",
        default="docker.io/swebench/sweb.eval.x86_64.{id}:latest",
        help="image name; {id} is the id with __ -> _1776_ (SWE-bench's images), {instance_id} as is; "
        "'' for SWE-agent's local deployment, which refuses any image name",
    )
    instances.add_argument(
        "--repo-name",
        default="testbed",
        help="without a slash: the repository already at /REPO_NAME (default testbed, as in SWE-bench "
        "images); an absolute path: a local checkout SWE-agent copies in (local deployment)",
    )
    instances.add_argument("--top", type=int, default=10, help="locations shown (default 10)")
    instances.add_argument("--top-files", type=int, default=5, help="files shown (default 5)")
    add_batch_options(instances, "instances localized in parallel")
    add_localizer_options(instances)
    add_workspace_options(instances)
    instances.set_defaults(handler=cmd_instances)


@reports_errors
def cmd_bundle(args: argparse.Namespace) -> int:
    from reposearcher_plugin.hosts.swe_agent import LEFT_OUT_TOOLS, write_bundle

    try:
        out = write_bundle(
            args.out,
            args.profile,
            wheels=args.wheels,
            wheel_python_version=args.wheel_python_version,
            wheel_platform=args.wheel_platform,
            log=lambda message: print(message, file=sys.stderr),
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise CommandError(str(error)) from None
    tools = sorted(path.name for path in (out / "bin").iterdir())
    print(f"wrote {out}: {len(tools)} tools ({', '.join(tools)})")
    print(f"left out: {', '.join(sorted(LEFT_OUT_TOOLS))} (SWE-agent has its own submit)")
    print(f"add to your SWE-agent config: agent.tools.bundles: [..., {{path: {out.resolve()}}}]")
    return 0


@reports_errors
def cmd_validate(args: argparse.Namespace) -> int:
    from reposearcher_plugin.hosts.swe_agent_rules import validate_bundle

    problems = validate_bundle(args.path)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args.path}: a valid SWE-agent bundle")
    return 1 if problems else 0


@reports_errors
def cmd_instances(args: argparse.Namespace) -> int:
    from reposearcher_plugin.evaluation.instances import DatasetError
    from reposearcher_plugin.hosts.swe_agent_instances import swe_bench_image, write_instances

    try:
        options = localizer_options(args)
        if args.workers < 1:
            raise ValueError("--workers must be at least 1")
        swe_bench_image("x__y-1", args.image_template)  # a bad template fails before any work
        if not args.image_template and "/" not in args.repo_name:
            print(
                f"reposearcher: note: no image (a local deployment) and --repo-name {args.repo_name}: "
                f"SWE-agent will look for the repository at /{args.repo_name} on this machine; give a "
                "checkout as --repo-name /abs/path/to/checkout",
                file=sys.stderr,
            )
        instances = batch_instances(args)
        workspace = workspace_from_args(args)
    except (KeyError, IndexError) as error:
        raise CommandError(
            f"--image-template: unknown field {error}; use {{id}} or {{instance_id}}"
        ) from None
    except (DatasetError, OSError, ValueError) as error:
        raise CommandError(str(error)) from None

    def on_result(row: dict[str, Any], summary: Any) -> None:
        status = f"error: {row['error']}" if row.get("error") else (row.get("locations") or ["(none)"])[0]
        report_row(summary, row["instance_id"], status)

    try:
        result = write_instances(
            instances,
            args.out,
            options,
            workspace,
            predictions=args.predictions,
            workers=args.workers,
            image_template=args.image_template,
            repo_name=args.repo_name,
            max_locations=args.top,
            max_files=args.top_files,
            retry_errors=args.retry_errors,
            index_cache_dir=args.index_cache_dir,
            on_result=on_result,
        )
    except ValueError as error:  # a predictions file that cannot be resumed safely
        raise CommandError(str(error)) from None
    print(
        f"{args.out}: {result.written} instances ({result.errors} without a localization: failed); "
        f"predictions in {result.predictions}",
        file=sys.stderr,
    )
    if result.missing:
        print(f"  {len(result.missing)} not localized yet: run the same command again", file=sys.stderr)
    local = "" if args.image_template else " --instances.deployment.type local"
    config = config_path("swe_agent_localize_first", "hosts")  # the packaged copy: works from any folder
    print(
        f"run: sweagent run-batch --config {config} --instances.type file --instances.path {args.out}{local}",
        file=sys.stderr,
    )
    if result.batch.interrupted:
        return 130
    return 1 if result.written and result.errors == result.written else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reposearcher_plugin.cli.swe_agent_cmd ACTION ...`` = ``reposearcher swe-agent ACTION``."""
    parser = argparse.ArgumentParser(prog="reposearcher")
    commands = parser.add_subparsers(dest="command", required=True)
    add_swe_agent_command(commands)
    args = parser.parse_args(["swe-agent", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
