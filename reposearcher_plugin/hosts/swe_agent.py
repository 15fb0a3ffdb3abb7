"""RepoSearcher inside SWE-agent (v1.x), two ways, neither needing SWE-agent code on our side.

1. **A tool bundle** (``write_bundle``): ``config.yaml`` generated from our ToolSpecs, one POSIX-sh
   ``bin/<tool>`` per tool, ``install.sh`` and a README, rendered from the templates in
   ``swe_agent_bundle/`` (package data, laid out as the bundle is). SWE-agent uploads the directory to
   ``/root/tools/<dir name>``, puts ``bin/`` on PATH and sources ``install.sh`` from inside it.
2. **Localize first** (``swe_agent_instances.write_instances``): localize a dataset with any localizer
   (resumable batch), then write SWE-agent's ``--instances.type=file`` rows with the result in
   ``extra_fields.localization``; SWE-agent passes extra fields to its Jinja templates, so an
   ``instance_template`` holding ``{{localization}}`` shows it in the first prompt.

The Python problem: in SWE-bench images the repository's conda Python (3.6-3.9) is first on PATH and
our package is not installed. ``bin/<tool>`` therefore never runs ``python``: it execs the interpreter
that ``install.sh`` recorded in ``<bundle>/python_path`` — the first Python >= 3.11 that can import us,
else a virtual environment made from the first Python >= 3.11 found (SWE-agent's own
``/root/python3.11`` in its Docker deployments) and filled offline from wheels shipped in the bundle
(``--wheels``). docs/hosts-swe-agent.md has the reasoning.

This module writes the bundle and builds its wheels; ``swe_agent_rules.py`` holds SWE-agent's rules a
bundle must keep (and checks one), ``swe_agent_instances.py`` the localize-first instances file.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from reposearcher_plugin.hosts.swe_agent_rules import validate_bundle, validate_bundle_config
from reposearcher_plugin.tools import FINAL_TOOLS, profile_specs

# SWE-agent brings its own submit (it writes the patch); our search-ending tools mean nothing to it
LEFT_OUT_TOOLS = FINAL_TOOLS
RUNNER_MODULE = "reposearcher_plugin.hosts.swe_agent_tool"
# what the tools import; the rest of our dependencies serve the LLM agent and the command line
_NOT_NEEDED_BY_TOOLS = {"litellm", "rich", "pyyaml"}
_PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check")


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
