"""Command-line options shared by several sub-commands: datasets, workspace sources, instance selection.

The localizer's options (``--model``, ``--config``, ...) are ``agent/options.py``: hosts parse them too.
"""

from __future__ import annotations

import argparse
from typing import Any

GIB = 1 << 30
DEFAULT_CACHE_GB = 20.0


DATASET_HELP = "a local .jsonl/.json/.parquet/.csv file, or a hub name"


def add_dataset_options(parser: argparse.ArgumentParser, dataset_help: str = DATASET_HELP) -> None:
    parser.add_argument("--dataset", required=True, help=dataset_help)
    parser.add_argument("--split", help="split of a hub dataset (default: test)")


def add_workspace_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("repositories")
    group.add_argument(
        "--repos-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of clones or mirrors, DIR/owner__name or DIR/owner+name, bare or not (repeatable)",
    )
    group.add_argument(
        "--repo-alias",
        action="append",
        default=[],
        metavar="REPO=OTHER",
        help="take REPO's commits from OTHER, e.g. django/django=apprent1c3/django (repeatable)",
    )
    group.add_argument("--offline", action="store_true", help="never clone from GitHub")
    group.add_argument("--cache-dir", help="snapshot cache (default: <index cache>/snapshots)")
    group.add_argument(
        "--max-cache-gb",
        type=float,
        default=DEFAULT_CACHE_GB,
        help="snapshot cache cap in GiB (default 20); least recently used snapshots go first",
    )


def workspace_from_args(args: argparse.Namespace) -> Any:
    from reposearcher_plugin.workspace import Workspace, parse_aliases

    return Workspace(
        args.repos_dir or None,
        cache_dir=args.cache_dir,
        max_bytes=int(args.max_cache_gb * GIB),
        aliases=parse_aliases(args.repo_alias),
        online=not args.offline,
    )


def select_instances(instances: list[Any], ids: str | None, limit: int | None = None) -> list[Any]:
    """``--instances a,b`` (or ``--instance-ids``) and ``--limit N`` applied to a dataset's instances."""
    if ids:
        wanted = {item.strip() for item in ids.split(",") if item.strip()}
        unknown = wanted - {instance.instance_id for instance in instances}
        if unknown:
            raise ValueError(f"instance ids not in the dataset: {', '.join(sorted(unknown)[:5])}")
        instances = [instance for instance in instances if instance.instance_id in wanted]
    if limit is not None:
        if limit < 0:
            raise ValueError("--limit must not be negative")
        instances = instances[:limit]
    return instances


def batch_instances(args: argparse.Namespace) -> list[Any]:
    """The instances a batch command runs: ``--dataset`` (and ``--split``) cut to ``--instances`` and
    ``--limit``. Raises ``DatasetError`` or ``ValueError`` with the user's message."""
    from reposearcher_plugin.evaluation.instances import load_instances

    return select_instances(load_instances(args.dataset, args.split), args.instances, args.limit)


def add_batch_options(parser: argparse.ArgumentParser, workers_help: str = "instances in parallel") -> None:
    """The options of every resumable batch over a dataset's instances (``run``, ``patch``, ``sft sample``,
    ``mini swebench``, ``swe-agent instances``)."""
    group = parser.add_argument_group("batch (resumable: the same command again goes on where it stopped)")
    group.add_argument("--instances", help="comma-separated instance ids to run (default: all)")
    group.add_argument("--limit", type=int, help="only the first N instances (after --instances)")
    group.add_argument("--workers", type=int, default=1, help=f"{workers_help} (default 1)")
    group.add_argument("--retry-errors", action="store_true", help="run again the instances that failed")
    group.add_argument("--index-cache-dir", help="parse cache (default: ~/.cache/reposearcher)")
