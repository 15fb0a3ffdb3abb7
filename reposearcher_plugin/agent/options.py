"""Localizer options from a command line: the defaults, then a ``--config`` YAML file, then the flags.

The argparse side of :class:`LocalizerOptions`, here rather than in ``cli/`` so that hosts with a command
line of their own (the MCP server, the OpenHands hook) share it without importing the layer above them.

A config is a YAML mapping of flat option names (``max_turns: 7``: each name is unique across the nested
parts of the options), the names may also be grouped as the options nest them (``agent: {max_turns: 7}``),
and ``api_key_env`` names the variable holding the API key (the key itself never sits in a file).
Pydantic validates the result strictly (YAML ``"3"`` is not an int); unknown keys are refused.
"""

from __future__ import annotations

import argparse
import os
import types
from typing import Any

from pydantic import ValidationError

from reposearcher_plugin.agent.localizers import (
    OPTION_PARTS,
    LocalizerOptions,
    flat_option_names,
    is_retrieval_model,
    option_field,
)
from reposearcher_plugin.packaged import config_path, packaged_configs
from reposearcher_plugin.tools import PROFILES

_DEFAULTS = LocalizerOptions()
# Every localizer flag and its argparse keywords, in --help order. The dest is the flat LocalizerOptions
# field the flag sets (the flag's own name unless ``dest`` says otherwise) and the type is that field's;
# flags left out of a command line keep the config file's value.
_FLAGS: dict[str, dict[str, Any]] = {
    "--model": {
        "help": "'retrieval' (default: offline, no LLM), 'bm25' (plain BM25 baseline), or a litellm model "
        "string, e.g. hosted_vllm/Qwen2.5-Coder-7B-Instruct or anthropic/claude-sonnet-4-5"
    },
    "--api-base": {"help": "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1"},
    "--profile": {"choices": sorted(PROFILES), "help": "tool profile (default: default)"},
    "--tool-format": {
        "choices": ("native", "hermes"),
        "help": "native function calling (default), or hermes <tool_call> text (servers without a tool "
        "parser)",
    },
    "--max-turns": {"help": f"model turns per stage (default {_DEFAULTS.agent.max_turns})"},
    "--max-tokens": {"help": f"tokens per run (default {_DEFAULTS.agent.max_tokens})"},
    "--max-wall": {"dest": "max_wall_s", "help": f"seconds per run (default {_DEFAULTS.agent.max_wall_s:g})"},
    "--max-calls-per-turn": {"help": f"calls run per reply (default {_DEFAULTS.agent.max_calls_per_turn})"},
    "--hints": {"help": "show the agent the offline default's top N definitions (default 0)"},
    "--temperature": {"help": f"(default {_DEFAULTS.policy.temperature:g})"},
    "--max-output-tokens": {
        "help": f"longest reply per turn, in tokens (default {_DEFAULTS.policy.max_output_tokens})"
    },
    "--retries": {"help": f"LLM retries with backoff (default {_DEFAULTS.policy.retries})"},
    "--prompts": {
        "metavar": "DIR",
        "help": "prompt templates (<name>.jinja) overriding the packaged ones by name; see docs/agent.md",
    },
}


def flag_field(flag: str) -> str:
    """The flat LocalizerOptions field a localizer flag sets (its argparse dest)."""
    return _FLAGS[flag].get("dest", flag.removeprefix("--").replace("-", "_"))


def _field_type(name: str) -> type:
    """The value type of a flat field: ``int`` for ``max_turns``, ``str`` for ``str | None``."""
    annotation = option_field(name).annotation
    if isinstance(annotation, types.UnionType):
        annotation = next(arg for arg in annotation.__args__ if arg is not type(None))
    assert isinstance(annotation, type), f"{name}: {annotation!r} is not a plain type"
    return annotation


def add_localizer_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("localizer (flags override --config, which overrides the defaults)")
    group.add_argument(
        "--config",
        metavar="YAML",
        help="localizer options: a YAML file of LocalizerOptions fields, or a packaged one by name ("
        + ", ".join(packaged_configs("agent"))
        + ")",
    )
    for flag, keywords in _FLAGS.items():
        field_type = _field_type(flag_field(flag))
        typed = {} if field_type is str else {"type": field_type}
        group.add_argument(flag, **{**typed, **keywords, "dest": flag_field(flag)})
    group.add_argument(  # not a field: the key is read from the variable it names
        "--api-key-env", metavar="VAR", help="environment variable holding the API key (default: provider's)"
    )


def localizer_options(args: argparse.Namespace, serves_tools: bool = False) -> LocalizerOptions:
    """Defaults, then the ``--config`` file, then the flags given on the command line. Flags that only an
    LLM localizer reads are refused with the offline one, except ``--profile`` where it also chooses the
    tools a host serves (``serves_tools``)."""
    values: dict[str, Any] = {}
    config = getattr(args, "config", None)
    api_key_env = getattr(args, "api_key_env", None)
    if config:
        values, config_key_env = read_localizer_config(config)
        api_key_env = api_key_env or config_key_env
    from_config = set(values)
    given = {flag: getattr(args, flag_field(flag), None) for flag in _FLAGS}
    given = {flag: value for flag, value in given.items() if value is not None}
    values |= {flag_field(flag): value for flag, value in given.items()}
    if api_key_env:
        values["api_key"] = os.environ.get(api_key_env)
        if not values["api_key"]:
            raise ValueError(f"api key variable {api_key_env} is not set")
    model = values.get("model", _DEFAULTS.model)
    if is_retrieval_model(model):
        llm_only = [
            flag
            for flag in [*given, *(["--api-key-env"] if getattr(args, "api_key_env", None) else [])]
            if flag != "--model" and not (serves_tools and flag == "--profile")
        ]
        if llm_only:  # silently ignored flags make a user believe they changed something
            raise ValueError(
                f"{', '.join(llm_only)} only apply to an LLM localizer; the offline {model!r} "
                "localizer has no tools, turns or model (pass --model with a litellm model string)"
            )
    try:
        return LocalizerOptions.model_validate(values, strict=True)
    except ValidationError as error:
        flags = {flag_field(flag): flag for flag in given}
        raise ValueError(_explain(error, flags, config if from_config else None)) from None


def read_localizer_config(path: str) -> tuple[dict[str, Any], str | None]:
    """The flat option values of a YAML config (its ``agent:`` / ``policy:`` groups flattened) and its
    ``api_key_env``; pydantic checks the values when the options are built."""
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
    flat = {key: value for key, value in data.items() if key not in OPTION_PARTS}
    for part in OPTION_PARTS:
        group = data.get(part, {})
        if not isinstance(group, dict):
            raise ValueError(f"--config {path}: {part} must be a mapping of option names to values")
        twice = sorted(set(group) & set(flat))
        if twice:
            raise ValueError(f"--config {path}: {', '.join(twice)} given both flat and under {part}")
        flat |= group
    if "api_key" in flat:  # a secret does not belong in a config file: name its variable instead
        raise ValueError(_unknown(path, ["api_key"]))
    return flat, api_key_env


def _unknown(path: str, names: list[str]) -> str:
    known = sorted(set(flat_option_names()) - {"api_key"})
    return f"--config {path}: unknown option(s) {', '.join(sorted(names))}; known: {', '.join(known)}"


def _explain(error: ValidationError, flags: dict[str, str], config: str | None) -> str:
    """Pydantic's errors as the user wrote the options: the flag or the config file, then the field."""
    unknown: list[str] = []
    lines: list[str] = []
    for item in error.errors():
        name = str(item["loc"][-1]) if item["loc"] else "options"
        if item["type"] == "extra_forbidden":
            unknown.append(".".join(str(part) for part in item["loc"]))
            continue
        if item["type"].endswith(("_type", "_parsing")) and name in flat_option_names():
            text = f"{name} must be {_field_type(name).__name__}, got {item['input']!r}"
        else:
            text = str(item["msg"]).removeprefix("Value error, ")
        where = flags.get(name) or (f"--config {config}" if config else name)
        lines.append(f"{where}: {text}")
    if unknown:
        lines.insert(0, _unknown(str(config), unknown))
    return "; ".join(lines)
