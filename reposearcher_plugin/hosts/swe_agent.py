"""RepoSearcher inside SWE-agent (v1.x), two ways, neither needing SWE-agent code on our side.

1. **A tool bundle** (``write_bundle``): ``config.yaml`` generated from our ToolSpecs, one POSIX-sh
   ``bin/<tool>`` per tool, ``install.sh`` and a README. SWE-agent uploads the directory to
   ``/root/tools/<dir name>``, puts ``bin/`` on PATH and sources ``install.sh`` from inside it.
2. **Localize first** (``write_instances``): localize a dataset with any localizer (resumable batch),
   then write SWE-agent's ``--instances.type=file`` rows with the result in
   ``extra_fields.localization``; SWE-agent passes extra fields to its Jinja templates, so an
   ``instance_template`` holding ``{{localization}}`` shows it in the first prompt.

The Python problem: in SWE-bench images the repository's conda Python (3.6-3.9) is first on PATH and
our package is not installed. ``bin/<tool>`` therefore never runs ``python``: it execs the interpreter
that ``install.sh`` recorded in ``<bundle>/python_path`` — the first Python >= 3.11 that can import us,
else a virtual environment made from the first Python >= 3.11 found (SWE-agent's own
``/root/python3.11`` in its Docker deployments) and filled offline from wheels shipped in the bundle
(``--wheels``). docs/hosts-swe-agent.md has the reasoning.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reposearcher_plugin.tools import FINAL_TOOLS, profile_specs

# SWE-agent brings its own submit (it writes the patch); our search-ending tools mean nothing to it
LEFT_OUT_TOOLS = FINAL_TOOLS
DEFAULT_IMAGE_TEMPLATE = "docker.io/swebench/sweb.eval.x86_64.{id}:latest"
RUNNER_MODULE = "reposearcher_plugin.hosts.swe_agent_tool"
# what the tools import; the rest of our dependencies serve the LLM agent and the command line
_NOT_NEEDED_BY_TOOLS = {"litellm", "rich", "pyyaml"}

# --- SWE-agent's rules for a bundle ----------------------------------------------------------------------
# Encoded from SWE-agent's source (sweagent/tools/bundle.py, commands.py, tools.py, parsing.py, utils.py):
# we cannot import it (not on PyPI), and a bundle it refuses fails a whole run at start-up.
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


# --- writing the bundle ----------------------------------------------------------------------------------


def bundle_config(profile: str = "default") -> dict[str, Any]:
    specs = [spec for spec in profile_specs(profile) if spec.name not in LEFT_OUT_TOOLS]
    return {"tools": {spec.name: spec.swe_agent() for spec in specs}}


_BIN_SCRIPT = """#!/bin/sh
# {tool}: a RepoSearcher tool for SWE-agent, generated by `reposearcher swe-agent bundle`.
# Never `python`: inside SWE-bench images that is the repository's old interpreter. install.sh recorded
# a Python >= 3.11 that imports reposearcher_plugin; -E and -P keep the repository's PYTHONPATH and the
# working directory (the repository itself) out of its imports.
bundle=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd -P)
py=$(cat "$bundle/python_path" 2>/dev/null)
if [ -z "$py" ] || [ ! -x "$py" ]; then
    echo "{tool}: the RepoSearcher tools have no Python recorded; run: . $bundle/install.sh"
    exit 127
fi
exec "$py" -E -P -m {module} --profile {profile} {tool} "$@"
"""

_INSTALL_SH = r"""# RepoSearcher tools for SWE-agent: choose the Python that runs them, record it, index.
# SWE-agent runs `cd /root/tools/<bundle> && source install.sh` in the agent's bash session, so this file
# must not exit, leaves no shell options or variables behind, and returns non-zero only when the tools
# cannot work (SWE-agent then stops with this output in its log). POSIX sh; bash sources it.
_rs_bundle=$(pwd -P)
if [ -n "${BASH_SOURCE:-}" ]; then
    _rs_bundle=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE:-}")" && pwd -P)
fi
_rs_check='import sys; assert sys.version_info >= (3, 11); import __MODULE__; print(sys.executable)'

# First Python that imports our runner and whose tree-sitter parses with our grammars: $REPOSEARCHER_PYTHON,
# a venv made earlier, SWE-agent's own standalone Python, then what PATH offers, newest first. The
# repository's python (3.6-3.9) fails the import. A Python that imports us but fails the grammar check (a
# shared environment where SWE-agent's edit_anthropic installed tree-sitter 0.21.3) is reported and passed
# over: its tools would index nothing. Returns 1 when none imports us, 2 when some failed the check.
_rs_find() {
    _rs_broken=1
    _rs_seen=
    for _rs_c in ${REPOSEARCHER_PYTHON:-} "$_rs_bundle/venv/bin/python" /root/python3.11/bin/python3 \
        python3.14 python3.13 python3.12 python3.11 python3 python; do
        command -v "$_rs_c" >/dev/null 2>&1 || continue
        _rs_out=$("$_rs_c" -E -P -c "$_rs_check" 2>/dev/null) && [ -n "$_rs_out" ] || continue
        case "|$_rs_seen|" in *"|$_rs_out|"*) continue ;; esac
        _rs_seen="$_rs_seen|$_rs_out"
        if _rs_msg=$("$_rs_out" -E -P -m __MODULE__ --check 2>&1); then
            printf '%s\n' "$_rs_out"
            return 0
        fi
        printf '%s\n  (%s, passed over)\n' "$_rs_msg" "$_rs_out" >&2
        _rs_broken=2
    done
    return $_rs_broken
}

# Else a venv from the first Python >= 3.11, filled offline from the wheels shipped in the bundle.
_rs_venv() {
    [ -f "$_rs_bundle/wheels/requirements.txt" ] || return 1
    for _rs_c in ${REPOSEARCHER_PYTHON:-} /root/python3.11/bin/python3 \
        python3.14 python3.13 python3.12 python3.11 python3 python; do
        command -v "$_rs_c" >/dev/null 2>&1 || continue
        "$_rs_c" -E -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || continue
        rm -rf "$_rs_bundle/venv"
        "$_rs_c" -E -m venv "$_rs_bundle/venv" || continue
        if "$_rs_bundle/venv/bin/python" -E -m pip install -q --disable-pip-version-check --no-index \
                --find-links "$_rs_bundle/wheels" -r "$_rs_bundle/wheels/requirements.txt" &&
            "$_rs_bundle/venv/bin/python" -E -m pip install -q --disable-pip-version-check --no-index \
                --find-links "$_rs_bundle/wheels" --no-deps reposearcher-plugin; then
            return 0
        fi
        rm -rf "$_rs_bundle/venv"
    done
    return 1
}

_rs_status=0
_rs_py=$(_rs_find) || _rs_status=$?
if [ "$_rs_status" != 0 ] && _rs_venv; then
    _rs_status=0
    _rs_py=$(_rs_find) || _rs_status=$?
fi
if [ "$_rs_status" = 0 ] && [ -n "$_rs_py" ]; then
    printf '%s\n' "$_rs_py" > "$_rs_bundle/python_path"
    echo "RepoSearcher tools: using $_rs_py"
    # SWE-agent exports ROOT (the repository) before installing tools: index it now, not on the first call
    if [ -z "${REPOSEARCHER_NO_WARM:-}" ] && [ -n "${REPOSEARCHER_REPO:-}${ROOT:-}" ]; then
        "$_rs_py" -E -P -m __MODULE__ --warm || echo "RepoSearcher tools: indexing failed; tools will retry"
    fi
    unset -f _rs_find _rs_venv
    unset _rs_bundle _rs_check _rs_c _rs_out _rs_py _rs_msg _rs_seen _rs_broken _rs_status
    true
else
    if [ "$_rs_status" = 2 ]; then
        echo "RepoSearcher tools: no Python here has a tree-sitter that parses with RepoSearcher's" \
            "grammars (see above); the tools would find nothing." >&2
        echo "  Reinstall tree-sitter as said above, set REPOSEARCHER_PYTHON to a Python with its own" \
            "environment, or rebuild the bundle with: reposearcher swe-agent bundle --wheels --out DIR" >&2
    else
        echo "RepoSearcher tools: no Python >= 3.11 that can import reposearcher_plugin," \
            "and no usable wheels." >&2
        echo "  Set REPOSEARCHER_PYTHON, install reposearcher-plugin into a Python >= 3.11 in the image," >&2
        echo "  or rebuild the bundle with: reposearcher swe-agent bundle --wheels --out DIR" >&2
    fi
    unset -f _rs_find _rs_venv
    unset _rs_bundle _rs_check _rs_c _rs_out _rs_py _rs_msg _rs_seen _rs_broken _rs_status
    false
fi
"""


def _readme(profile: str, tools: Sequence[str], wheels: bool) -> str:
    listed = "\n".join(f"- `{tool}`" for tool in tools)
    left_out = ", ".join(f"`{tool}`" for tool in sorted(LEFT_OUT_TOOLS))
    wheel_note = (
        "`wheels/` holds reposearcher-plugin and the packages its tools need, so `install.sh` can build "
        "`venv/` offline from any Python >= 3.11 in the image (SWE-agent's `/root/python3.11` included)."
        if wheels
        else "No wheels are shipped: a Python >= 3.11 in the image must already import "
        "`reposearcher_plugin` (set `REPOSEARCHER_PYTHON` to choose it), or rebuild with `--wheels`."
    )
    return f"""# RepoSearcher tools for SWE-agent (profile `{profile}`)

Generated by `reposearcher swe-agent bundle`. Read-only repository search tools: the same functions and
the same text as every other RepoSearcher host.

{listed}

Left out: {left_out} (SWE-agent has its own `submit`, which writes the patch).

Add this directory to `agent.tools.bundles` of a SWE-agent config, beside the bundles it already uses
(configuration lists replace, they do not merge); see `configs/hosts/swe_agent_tools.yaml`.

How it runs: SWE-agent uploads this directory to `/root/tools/<name>`, puts `bin/` on PATH and sources
`install.sh`. The repository's own `python` may be 3.6, so `install.sh` records in `python_path` a
Python >= 3.11 that imports `reposearcher_plugin` and every `bin/<tool>` (POSIX sh) execs it.
{wheel_note}
The repository searched is `$REPOSEARCHER_REPO`, else `$ROOT` (SWE-agent sets it to the repository),
else the git root above the working directory; with none of these the tools refuse rather than index the
working directory (`/`, say). Indexes are cached under `$REPOSEARCHER_CACHE` (default
`~/.cache/reposearcher`); `install.sh` builds the index once so the first call is fast
(`REPOSEARCHER_NO_WARM=1` skips that).

`install.sh` also checks that the chosen Python's tree-sitter parses with our grammars (SWE-agent's
`edit_anthropic` bundle installs tree-sitter 0.21.3 into the environment first on PATH, which cannot):
such a Python is passed over with the reason, and with no other it returns non-zero. Each tool call
repeats the check once per installed runtime, so a later downgrade is an error, not an empty index.

Calling a tool by hand: required arguments positional, optional ones as `--name value` (or positional,
in order), e.g. `search_class_method QuerySet union --file django/db/models/query.py`; `TOOL --help`
prints its usage. Exit status 1: the tool refused (the text says why); 2: a usage error.
"""


def write_bundle(
    out: str | Path,
    profile: str = "default",
    *,
    wheels: bool = False,
    wheel_python_version: str | None = None,
    wheel_platform: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write the bundle directory (its name is the name SWE-agent installs it under); returns it."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "config.yaml").exists():
        raise ValueError(f"{out} exists and is not a bundle; choose an empty or new directory")
    config = bundle_config(profile)
    problems = validate_bundle_config(config)
    if problems:  # our specs broke a SWE-agent rule: fail here, not at the start of someone's run
        raise ValueError("the generated config.yaml breaks SWE-agent's rules: " + "; ".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("bin", "venv", "python_path"):  # from an earlier profile or install
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    header = (
        f"# RepoSearcher tools (profile {profile}), generated by `reposearcher swe-agent bundle`.\n"
        f"# Left out: {', '.join(sorted(LEFT_OUT_TOOLS))} (SWE-agent has its own submit).\n"
    )
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    (out / "config.yaml").write_text(header + body, encoding="utf-8")
    (out / "bin").mkdir()
    for tool in config["tools"]:
        script = out / "bin" / tool
        script.write_text(
            _BIN_SCRIPT.format(tool=tool, module=RUNNER_MODULE, profile=profile), encoding="utf-8"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (out / "install.sh").write_text(_INSTALL_SH.replace("__MODULE__", RUNNER_MODULE), encoding="utf-8")
    if wheels:
        build_wheels(out / "wheels", python_version=wheel_python_version, platform=wheel_platform, log=log)
    (out / "README.md").write_text(
        _readme(profile, list(config["tools"]), wheels or (out / "wheels").is_dir()), encoding="utf-8"
    )
    problems = validate_bundle(out)
    if problems:
        raise ValueError(f"{out}: " + "; ".join(problems))
    return out


def runtime_requirements() -> list[str]:
    """Our declared dependencies that the tools import (the LLM client and CLI libraries are left out)."""
    from importlib.metadata import requires

    kept = []
    for requirement in requires("reposearcher-plugin") or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()
        if name not in _NOT_NEEDED_BY_TOOLS:
            kept.append(requirement.split(";")[0].strip())
    return kept


def _wheel_source(scratch: Path) -> Path:
    """A source tree to build our wheel from: a copy of the checkout's, or, when installed from a wheel
    (no pyproject.toml beside the package), the installed package with a pyproject.toml written from
    the installed distribution's metadata. A copy either way: an in-tree build leaves build/ behind."""
    from importlib import metadata

    import reposearcher_plugin

    package = Path(reposearcher_plugin.__file__).resolve().parent
    source = scratch / "src"
    source.mkdir()
    shutil.copytree(
        package, source / "reposearcher_plugin", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file():
        for name in ("pyproject.toml", "README.md"):
            if (checkout / name).exists():
                shutil.copy2(checkout / name, source / name)
        return source
    installed = metadata.distribution("reposearcher-plugin")
    base = [req for req in installed.requires or [] if "extra ==" not in req]  # what the tools import
    project = [
        "[build-system]",
        'requires = ["setuptools>=68"]',
        'build-backend = "setuptools.build_meta"',
        "[project]",
        f"name = {json.dumps(installed.metadata['Name'])}",
        f"version = {json.dumps(installed.version)}",
        f"requires-python = {json.dumps(installed.metadata.get('Requires-Python') or '>=3.11')}",
        f"dependencies = {json.dumps(base)}",
        "[project.scripts]",
        'reposearcher = "reposearcher_plugin.cli.main:main"',
        "[tool.setuptools.packages.find]",
        'include = ["reposearcher_plugin*"]',
        "[tool.setuptools.package-data]",
        'reposearcher_plugin = ["configs/*/*"]',
    ]
    (source / "pyproject.toml").write_text("\n".join(project) + "\n", encoding="utf-8")
    return source


def build_wheels(
    target: Path,
    *,
    python_version: str | None = None,
    platform: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """reposearcher-plugin (built from this checkout or this installation) and the wheels its tools
    need, into ``target``, with the ``requirements.txt`` install.sh reads. Without a target
    version/platform the wheels fit the Python running this (3.11 on Linux x86-64 matches SWE-agent's
    ``/root/python3.11``)."""
    say = log or (lambda _message: None)
    target.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="reposearcher-wheel-") as scratch:
        source = _wheel_source(Path(scratch))
        say("building the reposearcher-plugin wheel")
        _pip([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(target), str(source)])
    requirements = runtime_requirements()
    say(f"collecting wheels for {', '.join(requirements)}")
    if python_version or platform:
        command = [*pip, "download", "-q", "--only-binary=:all:", "-d", str(target)]
        command += ["--python-version", python_version] if python_version else []
        command += ["--platform", platform] if platform else []
    else:
        command = [*pip, "wheel", "-q", "--prefer-binary", "-w", str(target)]
    _pip(command + requirements)
    (target / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    return sorted(target.glob("*.whl"))


def _pip(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(command[2:5])} failed:\n" + "\n".join(tail))


# --- localize first: SWE-agent instances -----------------------------------------------------------------


def swe_bench_image(instance_id: str, template: str = DEFAULT_IMAGE_TEMPLATE) -> str:
    """The image name of an instance. ``{id}`` is the Docker-safe id (``__`` -> ``_1776_``, as SWE-bench
    names its images), ``{instance_id}`` the id as it is; lower-cased, as SWE-agent does."""
    safe = instance_id.replace("__", "_1776_")
    return template.format(id=safe, instance_id=instance_id).lower()


def render_localization(row: Mapping[str, Any], max_locations: int = 10, max_files: int = 5) -> str:
    """The text an instance template shows: ranked definitions, then ranked files. Empty when the
    localizer found nothing or failed, so a template can leave the section out with ``{% if %}``."""
    if row.get("error"):
        return ""
    locations = list(row.get("locations") or [])[:max_locations]
    files = list(row.get("found_files") or [])[:max_files]
    if not locations and not files:
        return ""
    lines = []
    if locations:
        lines.append("Functions and classes most likely to need changes, most likely first:")
        lines += [f"{rank}. {location}" for rank, location in enumerate(locations, start=1)]
    if files:
        if lines:
            lines.append("")
        lines.append("Files, most likely first:")
        lines += [f"{rank}. {path}" for rank, path in enumerate(files, start=1)]
    return "\n".join(lines)


def instance_row(
    instance: Any,
    prediction: Mapping[str, Any] | None,
    *,
    image_template: str = DEFAULT_IMAGE_TEMPLATE,
    repo_name: str = "testbed",
    max_locations: int = 10,
    max_files: int = 5,
) -> dict[str, Any]:
    """One row of SWE-agent's instances file (``SimpleBatchInstance``: image_name, problem_statement,
    instance_id, repo_name, base_commit, extra_fields). A repo_name without a slash is a repository
    already in the image at ``/<repo_name>``, as SWE-agent's own SWE-bench loader writes it."""
    prediction = prediction or {}
    return {
        "instance_id": instance.instance_id,
        "image_name": swe_bench_image(instance.instance_id, image_template),
        "problem_statement": instance.problem_statement,
        "repo_name": repo_name,
        "base_commit": instance.base_commit,
        "extra_fields": {
            "localization": render_localization(prediction, max_locations, max_files),
            "localized_locations": list(prediction.get("locations") or [])[:max_locations],
            "localized_files": list(prediction.get("found_files") or [])[:max_files],
            "localization_model": prediction.get("model", ""),
        },
    }


@dataclass
class InstancesSummary:
    written: int
    missing: list[str]  # selected instances without a prediction (an interrupted batch)
    errors: int  # rows whose localization failed (their localization text is empty)
    predictions: Path
    batch: Any  # evaluation.batch.BatchSummary


def predictions_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".predictions.jsonl")


def write_instances(
    instances: Sequence[Any],
    out: str | Path,
    options: Any,
    workspace: Any,
    *,
    predictions: str | Path | None = None,
    workers: int = 1,
    image_template: str = DEFAULT_IMAGE_TEMPLATE,
    repo_name: str = "testbed",
    max_locations: int = 10,
    max_files: int = 5,
    retry_errors: bool = False,
    index_cache_dir: str | None = None,
    on_result: Callable[[dict[str, Any], Any], None] | None = None,
) -> InstancesSummary:
    """Localize ``instances`` into a predictions file (resumable: evaluation.batch), then write the
    SWE-agent instances file ``out`` from it, one row per instance that has a prediction."""
    from reposearcher_plugin.evaluation.batch import run_batch

    out = Path(out)
    predictions = Path(predictions) if predictions else predictions_path(out)
    summary = run_batch(
        instances,
        predictions,
        options,
        workspace,
        workers=workers,
        retry_errors=retry_errors,
        index_cache_dir=index_cache_dir,
        on_result=on_result,
    )
    by_id = _read_rows(predictions)
    rows, missing, errors = [], [], 0
    for instance in instances:
        prediction = by_id.get(instance.instance_id)
        if prediction is None:
            missing.append(instance.instance_id)
            continue
        errors += bool(prediction.get("error"))
        rows.append(
            instance_row(
                instance,
                prediction,
                image_template=image_template,
                repo_name=repo_name,
                max_locations=max_locations,
                max_files=max_files,
            )
        )
    _write_jsonl(out, rows)
    return InstancesSummary(len(rows), missing, errors, predictions, summary)


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["instance_id"]] = row  # a retried instance's later line wins
    return rows


def _write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    os.replace(temporary, path)
