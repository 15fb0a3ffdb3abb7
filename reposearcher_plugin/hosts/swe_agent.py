"""RepoSearcher inside SWE-agent (v1.x), two ways, neither needing SWE-agent code on our side.

1. **A tool bundle** (``write_bundle``): ``config.yaml`` generated from our ToolSpecs, one POSIX-sh
   ``bin/<tool>`` per tool, ``install.sh`` and a README, rendered from the templates in
   ``swe_agent_bundle/`` (package data, laid out as the bundle is). SWE-agent uploads the directory to
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from reposearcher_plugin.files import parse_jsonl, write_jsonl
from reposearcher_plugin.hosts.localization_text import render_localization
from reposearcher_plugin.tools import FINAL_TOOLS, profile_specs

# SWE-agent brings its own submit (it writes the patch); our search-ending tools mean nothing to it
LEFT_OUT_TOOLS = FINAL_TOOLS
DEFAULT_IMAGE_TEMPLATE = "docker.io/swebench/sweb.eval.x86_64.{id}:latest"
RUNNER_MODULE = "reposearcher_plugin.hosts.swe_agent_tool"
# what the tools import; the rest of our dependencies serve the LLM agent and the command line
_NOT_NEEDED_BY_TOOLS = {"litellm", "rich", "pyyaml"}
_PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check")

# --- SWE-agent's rules for a bundle ----------------------------------------------------------------------
# Encoded from SWE-agent's source (sweagent/tools/bundle.py, commands.py, tools.py, parsing.py, utils.py):
# we cannot import it (not on PyPI), and a bundle it refuses fails a whole run at start-up. Checked against
# SWE-agent commit 3ea751c087f32b16e039a2233dd6eefecef325d5 (2026-07-16): the BundleConfig and Command
# format of config.yaml, the upload to /root/tools/<bundle> with bin/ put on PATH and `cd <bundle> &&
# source install.sh` (ToolHandler._install_commands), ROOT exported by the repository reset, and the
# default command filter below (ToolFilterConfig). The templates in swe_agent_bundle/ follow the same rules.
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


# The bundle's files are package data under swe_agent_bundle/, laid out as the bundle is: each file is
# rendered with one explicit substitution (below) and written with the same name (bin/tool.sh becomes
# every bin/<tool>). No Jinja: the base install does not depend on it, and shell is full of braces.
_TEMPLATES = "swe_agent_bundle"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_WHEELS_NOTE = (
    "`wheels/` holds reposearcher-plugin and the packages its tools need, so `install.sh` can build "
    "`venv/` offline from any Python >= 3.11 in the image (SWE-agent's `/root/python3.11` included)."
)
_NO_WHEELS_NOTE = (
    "No wheels are shipped: a Python >= 3.11 in the image must already import "
    "`reposearcher_plugin` (set `REPOSEARCHER_PYTHON` to choose it), or rebuild with `--wheels`."
)


def render_bundle_file(template: str, **values: str) -> str:
    """The packaged template ``template`` (a path under swe_agent_bundle/) with every ``{{name}}``
    replaced by ``values[name]`` in one pass (a value is never expanded again). A placeholder without a
    value, or a value no placeholder uses, is an error: a renamed placeholder must not ship literally."""
    text = (files(__package__) / _TEMPLATES / template).read_text(encoding="utf-8")
    wanted = set(_PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise ValueError(
            f"bundle template {template}: placeholders {sorted(wanted)}, values given {sorted(values)}"
        )
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _readme(profile: str, tools: Sequence[str], wheels: bool) -> str:
    return render_bundle_file(
        "README.md",
        profile=profile,
        tool_list="\n".join(f"- `{tool}`" for tool in tools),
        left_out=", ".join(f"`{tool}`" for tool in sorted(LEFT_OUT_TOOLS)),
        wheel_note=_WHEELS_NOTE if wheels else _NO_WHEELS_NOTE,
    )


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
    tools_yaml = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    (out / "config.yaml").write_text(
        render_bundle_file(
            "config.yaml",
            profile=profile,
            left_out=", ".join(sorted(LEFT_OUT_TOOLS)),
            tools=tools_yaml.removesuffix("\n"),  # the template's last line ends the file
        ),
        encoding="utf-8",
    )
    (out / "bin").mkdir()
    for tool in config["tools"]:
        script = out / "bin" / tool
        script.write_text(
            render_bundle_file("bin/tool.sh", tool=tool, module=RUNNER_MODULE, profile=profile),
            encoding="utf-8",
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (out / "install.sh").write_text(render_bundle_file("install.sh", module=RUNNER_MODULE), encoding="utf-8")
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
        # every file the installed package holds (its configs, the bundle's templates, ...), not a
        # second list to keep in step with pyproject.toml's
        'reposearcher_plugin = ["**/*"]',
    ]
    (source / "pyproject.toml").write_text("\n".join(project) + "\n", encoding="utf-8")
    return source


def build_package_wheel(target: Path) -> Path:
    """reposearcher-plugin's own wheel, built from this checkout or this installation, into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reposearcher-wheel-") as scratch:
        source = _wheel_source(Path(scratch))
        _pip([*_PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(target), str(source)])
    return max(target.glob("reposearcher_plugin-*.whl"), key=lambda wheel: wheel.stat().st_mtime)


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
    say("building the reposearcher-plugin wheel")
    build_package_wheel(target)
    requirements = runtime_requirements()
    say(f"collecting wheels for {', '.join(requirements)}")
    if python_version or platform:
        command = [*_PIP, "download", "-q", "--only-binary=:all:", "-d", str(target)]
        command += ["--python-version", python_version] if python_version else []
        command += ["--platform", platform] if platform else []
    else:
        command = [*_PIP, "wheel", "-q", "--prefer-binary", "-w", str(target)]
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
    locations = list(prediction.get("locations") or [])[:max_locations]
    files = list(prediction.get("found_files") or [])[:max_files]
    # a failed localization shows nothing rather than a partial ranking; the template leaves it out
    text = (
        ""
        if prediction.get("error")
        else render_localization(locations, files, max_files=max_files, max_locations=max_locations)
    )
    return {
        "instance_id": instance.instance_id,
        "image_name": swe_bench_image(instance.instance_id, image_template),
        "problem_statement": instance.problem_statement,
        "repo_name": repo_name,
        "base_commit": instance.base_commit,
        "extra_fields": {
            "localization": text,
            "localized_locations": locations,
            "localized_files": files,
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
    write_jsonl(out, rows)
    return InstancesSummary(len(rows), missing, errors, predictions, summary)


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    # a retried instance's later line wins
    return {row["instance_id"]: row for row in parse_jsonl(path.read_text(encoding="utf-8"), str(path))}
