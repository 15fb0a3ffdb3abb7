"""SWE-agent's rules for a tool bundle, and the check of a bundle against them.

Encoded from SWE-agent's source (sweagent/tools/bundle.py, commands.py, tools.py, parsing.py, utils.py):
we cannot import it (not on PyPI), and a bundle it refuses fails a whole run at start-up. Checked against
SWE-agent commit 3ea751c087f32b16e039a2233dd6eefecef325d5 (2026-07-16): the BundleConfig and Command
format of config.yaml, the upload to /root/tools/<bundle> with bin/ put on PATH and `cd <bundle> &&
source install.sh` (ToolHandler._install_commands), ROOT exported by the repository reset, and the
default command filter below (ToolFilterConfig). The templates in swe_agent_bundle/ follow the same rules.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_ARGUMENT_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")  # commands.ARGUMENT_NAME_PATTERN
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # a bash command and an OpenAI function name
_JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object"}
_COMMAND_KEYS = {"signature", "docstring", "end_name", "arguments"}
_ARGUMENT_KEYS = {"name", "type", "items", "description", "required", "enum", "argument_format"}
# ToolFilterConfig's defaults (sweagent/tools/tools.py): an action that starts with a blocklist entry, or
# is exactly a standalone entry, is answered "Operation ... is not supported" and never runs
_BLOCKED_PREFIXES = (
    "vim",
    "vi",
    "emacs",
    "nano",
    "nohup",
    "gdb",
    "less",
    "tail -f",
    "python -m venv",
    "make",
)
_BLOCKED_STANDALONE = frozenset(
    {
        "python",
        "python3",
        "ipython",
        "bash",
        "sh",
        "/bin/bash",
        "/bin/sh",
        "nohup",
        "vi",
        "vim",
        "emacs",
        "nano",
        "su",
    }
)
_BLOCKED_UNLESS_REGEX = frozenset({"radare2", "r2"})


def blocked_by_default_filter(name: str) -> str | None:
    """The entry of SWE-agent's default command filter that refuses every call of tool ``name``."""
    prefix = next((entry for entry in _BLOCKED_PREFIXES if name.startswith(entry)), None)
    if prefix is not None:
        return prefix
    if name in _BLOCKED_STANDALONE or name in _BLOCKED_UNLESS_REGEX:
        return name
    return None


def _format_fields(text: str) -> list[str]:
    """Field names of a str.format string; raises ValueError on unbalanced braces, as format would."""
    return [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]


def validate_bundle_config(config: Any) -> list[str]:
    """Problems SWE-agent would raise on (or trip over at run time) in a bundle's parsed config.yaml."""
    if not isinstance(config, Mapping) or not isinstance(config.get("tools"), Mapping):
        return ["config.yaml must be a mapping with a 'tools' mapping (BundleConfig.tools: dict[str, dict])"]
    problems: list[str] = []
    state = config.get("state_command")
    if state is not None and not isinstance(state, str):
        problems.append("state_command must be a string")
    for name, tool in config["tools"].items():
        where = f"tool {name!r}"
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            problems.append(f"{where}: the name must be a command and a function name ([a-zA-Z0-9_-], <= 64)")
        if name in ("bash", "submit"):
            problems.append(f"{where}: clashes with SWE-agent's own {name} tool")
        blocked = blocked_by_default_filter(str(name))
        if blocked is not None:
            problems.append(
                f"{where}: SWE-agent's default command filter refuses every action starting with {blocked!r}"
            )
        if not isinstance(tool, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        unknown = sorted(set(tool) - _COMMAND_KEYS)
        if unknown:  # pydantic ignores them: a misspelt key silently does nothing
            problems.append(f"{where}: unknown keys {unknown}")
        if "docstring" not in tool:
            problems.append(f"{where}: docstring is required (it may be null)")
        docstring = tool.get("docstring")
        if docstring is not None:
            try:  # generate_command_docs calls docstring.format(**env_variables)
                fields = _format_fields(str(docstring))
            except ValueError as error:
                fields = [f"<{error}>"]
            if fields:
                problems.append(f"{where}: docstring holds format fields {fields}; SWE-agent .format()s it")
        arguments = tool.get("arguments") or []
        if not isinstance(arguments, list):
            problems.append(f"{where}: arguments must be a list")
            continue
        problems += _validate_arguments(where, name, tool.get("signature"), arguments)
    return problems


def _validate_arguments(where: str, name: str, signature: Any, arguments: list[Any]) -> list[str]:
    problems: list[str] = []
    names: list[str] = []
    optional_seen = False
    for number, argument in enumerate(arguments, start=1):
        if not isinstance(argument, Mapping):
            problems.append(f"{where}: argument {number} must be a mapping")
            continue
        for key in ("name", "type", "description", "required"):
            if key not in argument:
                problems.append(f"{where}: argument {number} lacks {key!r}")
        unknown = sorted(set(argument) - _ARGUMENT_KEYS)
        if unknown:
            problems.append(f"{where}: argument {number} has unknown keys {unknown}")
        arg_name = str(argument.get("name", ""))
        names.append(arg_name)
        label = f"{where}: argument {arg_name!r}"
        # SWE-agent uses re.match (a prefix); the whole name must fit or the signature regex splits it
        if not _ARGUMENT_NAME.fullmatch(arg_name):
            problems.append(f"{label}: invalid name")
        if not isinstance(argument.get("required"), bool):
            problems.append(f"{label}: required must be true or false")
        elif argument["required"] and optional_seen:
            problems.append(f"{label}: a required argument cannot come after optional arguments")
        elif not argument["required"]:
            optional_seen = True
        kind = argument.get("type")
        if kind not in _JSON_TYPES:
            problems.append(f"{label}: type {kind!r} is not a JSON schema type (the model sees it)")
        items = argument.get("items")
        if kind == "array" and not isinstance(items, Mapping):
            problems.append(f"{label}: an array needs items: {{type: ...}}")
        if items is not None and not (
            isinstance(items, Mapping) and all(isinstance(v, str) for v in items.values())
        ):
            problems.append(f"{label}: items must map strings to strings")
        enum = argument.get("enum")
        if enum is not None and not (isinstance(enum, list) and all(isinstance(v, str) for v in enum)):
            problems.append(f"{label}: enum must be a list of strings")
        argument_format = argument.get("argument_format", "{{value}}")
        if "{{" not in str(argument_format) or "value" not in str(argument_format):
            problems.append(f"{label}: argument_format must be Jinja and use {{{{value}}}}")
    duplicates = sorted({arg for arg in names if names.count(arg) > 1})
    if duplicates:
        problems.append(f"{where}: duplicate argument names {duplicates}")
    problems += _validate_signature(where, name, signature, names)
    return problems


def _validate_signature(where: str, name: str, signature: Any, names: list[str]) -> list[str]:
    if signature is None:  # SWE-agent then invokes "name {arg1} {arg2} ..."
        return []
    if not isinstance(signature, str):
        return [f"{where}: signature must be a string"]
    problems = []
    for arg in names:
        if not any(mark in signature for mark in (f"<{arg}>", f"{{{arg}}}", f"--{arg}")):
            problems.append(f"{where}: argument {arg!r} is not named in the signature {signature!r}")
    # Command.invoke_format: [<x>] and <x> become {x}; its format fields must be exactly the arguments
    invoke = re.sub(rf"\[?<({_ARGUMENT_NAME.pattern})>\]?", r"{\1}", signature)
    try:
        fields = set(_format_fields(invoke))
    except ValueError as error:
        return [*problems, f"{where}: signature is not a valid format string ({error})"]
    if fields != set(names):
        problems.append(
            f"{where}: signature fields {sorted(fields)} do not match the arguments {sorted(names)}"
        )
    if not signature.split() or signature.split()[0] != name:
        problems.append(f"{where}: the signature should start with the command name")
    return problems


def validate_bundle(path: str | Path) -> list[str]:
    """``validate_bundle_config`` plus what SWE-agent checks on disk: config.yaml, and ``which <tool>``
    finding an executable ``bin/<tool>`` after install."""
    root = Path(path)
    config_path = root / "config.yaml"
    if not config_path.is_file():
        return [f"{config_path} does not exist"]
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        return [f"{config_path}: not valid YAML ({error})"]
    problems = validate_bundle_config(config)
    for name in (config or {}).get("tools") or {}:
        executable = root / "bin" / str(name)
        if not executable.is_file():
            problems.append(f"tool {name!r}: bin/{name} does not exist")
        elif not os.access(executable, os.X_OK):
            problems.append(f"tool {name!r}: bin/{name} is not executable")
    return problems
