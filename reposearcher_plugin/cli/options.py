"""Command-line options shared by several sub-commands: localizer choice and workspace sources."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields, replace
from typing import Any

from reposearcher_plugin.agent.localizers import RETRIEVAL_MODELS, LocalizerOptions
from reposearcher_plugin.packaged import config_path, packaged_configs
from reposearcher_plugin.tools import PROFILES

GIB = 1 << 30
DEFAULT_CACHE_GB = 20.0


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, help="a local .jsonl/.json/.parquet/.csv file, or a hub name"
    )
    parser.add_argument("--split", help="split of a hub dataset (default: test)")


# command-line flag (argparse dest) -> LocalizerOptions field; flags left out keep the config file's value
_FLAG_FIELDS = {
    "model": "model",
    "api_base": "api_base",
    "profile": "profile",
    "tool_format": "tool_format",
    "max_turns": "max_turns",
    "max_tokens": "max_tokens",
    "max_wall": "max_wall_s",
    "max_calls_per_turn": "max_calls_per_turn",
    "hints": "hints",
    "temperature": "temperature",
    "max_output_tokens": "max_output_tokens",
    "retries": "retries",
    "prompts": "prompts",
}
_DEFAULTS = LocalizerOptions()


def add_localizer_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("localizer (flags override --config, which overrides the defaults)")
    group.add_argument(
        "--config",
        metavar="YAML",
        help="localizer options: a YAML file of LocalizerOptions fields, or a packaged one by name ("
        + ", ".join(packaged_configs("agent"))
        + ")",
    )
    group.add_argument(
        "--model",
        help="'retrieval' (default: offline, no LLM), 'bm25' (plain BM25 baseline), or a litellm model "
        "string, e.g. hosted_vllm/Qwen2.5-Coder-7B-Instruct or anthropic/claude-sonnet-4-5",
    )
    group.add_argument("--api-base", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    group.add_argument(
        "--api-key-env", metavar="VAR", help="environment variable holding the API key (default: provider's)"
    )
    group.add_argument("--profile", choices=sorted(PROFILES), help="tool profile (default: default)")
    group.add_argument(
        "--tool-format",
        choices=("native", "hermes"),
        help="native function calling (default), or hermes <tool_call> text (servers without a tool parser)",
    )
    group.add_argument("--max-turns", type=int, help=f"model turns per stage (default {_DEFAULTS.max_turns})")
    group.add_argument("--max-tokens", type=int, help=f"tokens per run (default {_DEFAULTS.max_tokens})")
    group.add_argument("--max-wall", type=float, help=f"seconds per run (default {_DEFAULTS.max_wall_s:g})")
    group.add_argument(
        "--max-calls-per-turn", type=int, help=f"calls run per reply (default {_DEFAULTS.max_calls_per_turn})"
    )
    group.add_argument(
        "--hints", type=int, help="show the agent the offline default's top N definitions (default 0)"
    )
    group.add_argument("--temperature", type=float, help=f"(default {_DEFAULTS.temperature:g})")
    group.add_argument(
        "--max-output-tokens",
        type=int,
        help=f"longest reply per turn, in tokens (default {_DEFAULTS.max_output_tokens})",
    )
    group.add_argument("--retries", type=int, help=f"LLM retries with backoff (default {_DEFAULTS.retries})")
    group.add_argument(
        "--prompts",
        metavar="DIR",
        help="prompt templates (<name>.jinja) overriding the packaged ones by name; see docs/agent.md",
    )


def localizer_options(args: argparse.Namespace, serves_tools: bool = False) -> LocalizerOptions:
    """Defaults, then the ``--config`` file, then the flags given on the command line. Flags that only an
    LLM localizer reads are refused with the offline one, except ``--profile`` where it also chooses the
    tools a host serves (``serves_tools``)."""
    values: dict[str, Any] = {}
    api_key_env = getattr(args, "api_key_env", None)
    if getattr(args, "config", None):
        values, config_key_env = read_localizer_config(args.config)
        api_key_env = api_key_env or config_key_env
    for flag, field_name in _FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[field_name] = value
    if api_key_env:
        values["api_key"] = os.environ.get(api_key_env)
        if not values["api_key"]:
            raise ValueError(f"api key variable {api_key_env} is not set")
    options = replace(_DEFAULTS, **values)
    if options.model in RETRIEVAL_MODELS:
        llm_only = [
            "--" + flag.replace("_", "-")
            for flag in [*_FLAG_FIELDS, "api_key_env"]
            if flag != "model"
            and getattr(args, flag, None) is not None
            and not (serves_tools and flag == "profile")
        ]
        if llm_only:  # silently ignored flags make a user believe they changed something
            raise ValueError(
                f"{', '.join(llm_only)} only apply to an LLM localizer; the offline {options.model!r} "
                "localizer has no tools, turns or model (pass --model with a litellm model string)"
            )
    if options.max_turns < 1:
        raise ValueError("--max-turns must be at least 1")
    return options


def read_localizer_config(path: str) -> tuple[dict[str, Any], str | None]:
    """A YAML mapping of LocalizerOptions fields (plus ``api_key_env``); unknown keys are refused."""
    import yaml

    try:
        data = yaml.safe_load(config_path(path, "agent").read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ValueError(f"--config {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"--config {path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values")
    api_key_env = data.pop("api_key_env", None)
    known = {field.name for field in fields(LocalizerOptions)} - {"api_key"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"--config {path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    for key, value in data.items():
        default = getattr(_DEFAULTS, key)
        expected = (
            (str,) if default is None else (int, float) if isinstance(default, float) else (type(default),)
        )
        if not isinstance(value, expected) or (isinstance(value, bool) and not isinstance(default, bool)):
            raise ValueError(f"--config {path}: {key} must be {expected[0].__name__}, got {value!r}")
    return data, api_key_env


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


def add_batch_options(parser: argparse.ArgumentParser, workers_help: str = "instances in parallel") -> None:
    """The options of every resumable batch over a dataset's instances (``run``, ``patch``, ``sft sample``,
    ``mini swebench``, ``swe-agent instances``)."""
    group = parser.add_argument_group("batch (resumable: the same command again goes on where it stopped)")
    group.add_argument("--instances", help="comma-separated instance ids to run (default: all)")
    group.add_argument("--limit", type=int, help="only the first N instances (after --instances)")
    group.add_argument("--workers", type=int, default=1, help=f"{workers_help} (default 1)")
    group.add_argument("--retry-errors", action="store_true", help="run again the instances that failed")
    group.add_argument("--index-cache-dir", help="parse cache (default: ~/.cache/reposearcher)")
