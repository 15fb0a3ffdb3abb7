"""The SWE-agent host: bundle rules, the bundle installed and called the way SWE-agent does (real swe-rex,
LocalDeployment, an old python first on PATH), and the localize-first instances file."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import Template

from reposearcher_plugin.cli.swe_agent_cmd import main as swe_agent_main
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.hosts.localization_text import render_localization
from reposearcher_plugin.hosts.swe_agent import bundle_config, render_bundle_file, write_bundle
from reposearcher_plugin.hosts.swe_agent_instances import instance_row, swe_bench_image
from reposearcher_plugin.hosts.swe_agent_rules import validate_bundle, validate_bundle_config
from reposearcher_plugin.hosts.swe_agent_tool import (
    NoRepository,
    UsageError,
    parse_arguments,
    repository_root,
    run,
)
from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.index.languages import REQUIRED_TREE_SITTER, GrammarRuntimeError, check_grammars
from reposearcher_plugin.tools import PROFILES, Param, ToolBox, ToolSpec, profile_specs
from tests.broken_tree_sitter import (
    BREAKAGES,
    break_runtime,
    checkout_venv,
    fresh_grammars,  # noqa: F401 (a fixture, used by name)
)
from tests.conftest import commit_all, git, write_tree

OLD_PYTHON = Path("/root/.pyenv/versions/3.8.18/bin/python")

REPO_FILES = {
    "shop/__init__.py": "",
    "shop/cart.py": """
        from shop.pricing import total


        class Cart:
            \"\"\"A shopping cart.\"\"\"

            def __init__(self):
                self.items = []

            def add(self, price, quantity=1):
                self.items.append((price, quantity))

            def checkout(self):
                return total(self.items)
        """,
    "shop/pricing.py": """
        def total(items):
            return sum(price for price, quantity in items)


        def discount(amount, rate):
            return amount * (1 - rate)
        """,
    "tests/test_cart.py": """
        from shop.cart import Cart


        def test_checkout():
            assert Cart().checkout() == 0
        """,
}

# (tool, arguments) as a model would send them through function calling
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_repo_structure", {}),
    ("get_repo_structure", {"depth": 1}),  # an optional argument after an omitted one
    ("get_imports_of_file", {"file": "shop/cart.py"}),
    ("search_class", {"class_name": "Cart"}),
    ("search_function", {"function_name": "total", "file": "shop/pricing.py"}),
    ("search_class_method", {"class_name": "Cart", "method_name": "checkout"}),
    ("show_code", {"file": "shop/pricing.py", "start_line": 1, "end_line": 3}),
    ("search_code", {"query": "total price quantity", "k": 3}),
    ("find_references", {"name": "total"}),
]


def swe_agent_command(config: dict[str, Any], tool: str, values: dict[str, Any]) -> str:
    """The shell command SWE-agent's function-calling parser makes of a call (sweagent/tools/parsing.py
    FunctionCallingParser and commands.Command.invoke_format): strings shell-quoted, each argument through
    its Jinja argument_format, omitted ones left empty, <x> / [<x>] slots filled."""
    entry = config["tools"][tool]
    formatted = {}
    for argument in entry["arguments"]:
        if argument["name"] not in values:
            formatted[argument["name"]] = ""
            continue
        value = values[argument["name"]]
        value = shlex.quote(value) if isinstance(value, str) else value
        formatted[argument["name"]] = Template(argument.get("argument_format", "{{value}}")).render(
            value=value
        )
    invoke = re.sub(r"\[?<([a-zA-Z_][a-zA-Z0-9_-]*)>\]?", r"{\1}", entry["signature"])
    return invoke.format(**formatted).strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("git") / "shop", REPO_FILES)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    return root


# --- SWE-agent's bundle rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_generated_config_follows_swe_agent_rules(profile):
    config = bundle_config(profile)
    assert validate_bundle_config(config) == []
    names = [spec.name for spec in profile_specs(profile)]
    assert list(config["tools"]) == [name for name in names if name not in ("submit", "exit")]


def test_validator_catches_what_swe_agent_refuses():
    good = bundle_config("default")
    breakages = {
        "not named in the signature": lambda c: c["tools"]["search_class"].update(
            signature="search_class <x>"
        ),
        "cannot come after optional": lambda c: c["tools"]["show_code"]["arguments"][1].update(
            required=False
        ),
        "invalid name": lambda c: c["tools"]["find_references"]["arguments"][0].update(name="2name"),
        "not a JSON schema type": lambda c: c["tools"]["search_code"]["arguments"][1].update(type="int"),
        "duplicate argument names": lambda c: c["tools"]["show_code"]["arguments"][2].update(
            name="start_line"
        ),
        "lacks 'required'": lambda c: c["tools"]["search_code"]["arguments"][0].pop("required"),
        "docstring holds format fields": lambda c: c["tools"]["search_code"].update(docstring="a {dict} b"),
        "clashes with SWE-agent's own submit": lambda c: c["tools"].update(submit=c["tools"]["search_code"]),
        # the tool was called view_code until SWE-agent answered every call "not supported"
        "default command filter refuses every action starting with 'vi'": lambda c: c["tools"].update(
            view_code=c["tools"]["show_code"] | {"signature": "view_code <file> <start_line> <end_line>"}
        ),
        "starting with 'make'": lambda c: c["tools"].update(
            make_index=c["tools"]["find_references"] | {"signature": "make_index <name>"}
        ),
        "argument_format must be Jinja": lambda c: c["tools"]["search_class"]["arguments"][1].update(
            argument_format="--file {value}"
        ),
    }
    for expected, breaking in breakages.items():
        config = copy.deepcopy(good)
        breaking(config)
        problems = validate_bundle_config(config)
        assert any(expected in problem for problem in problems), (expected, problems)
    assert validate_bundle_config({"tool": {}}) != []


def test_bundle_layout_and_disk_checks(tmp_path):
    bundle = write_bundle(tmp_path / "reposearcher", "tooltrain")
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert "exit" not in config["tools"] and sorted(p.name for p in (bundle / "bin").iterdir()) == sorted(
        config["tools"]
    )
    assert (bundle / "bin" / "get_code_of_class").read_text().startswith("#!/bin/sh\n")
    assert "SWE-agent has its own `submit`" in (bundle / "README.md").read_text()
    assert subprocess.run(["sh", "-n", str(bundle / "install.sh")]).returncode == 0
    # rewriting as another profile leaves no stale tools behind
    write_bundle(bundle, "default")
    assert not (bundle / "bin" / "get_code_of_class").exists() and validate_bundle(bundle) == []
    (bundle / "bin" / "show_code").chmod(0o644)
    (bundle / "bin" / "search_code").unlink()
    problems = validate_bundle(bundle)
    assert any("show_code is not executable" in p for p in problems)
    assert any("search_code does not exist" in p for p in problems)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not a bundle"):
        write_bundle(tmp_path / "other")


def test_bundle_templates_take_exactly_their_placeholders(tmp_path):
    assert render_bundle_file("install.sh", module="x.y").count("-m x.y ") == 2
    with pytest.raises(ValueError, match=r"placeholders \['module'\], values given \[\]"):
        render_bundle_file("install.sh")  # a placeholder must not ship literally
    with pytest.raises(ValueError, match="values given"):
        render_bundle_file("install.sh", module="x", profile="default")  # nor a value go unused
    # one pass: a value that looks like a placeholder is written as it is
    assert 'exec "$py" -E -P -m {{profile}} --profile p t' in render_bundle_file(
        "bin/tool.sh", tool="t", module="{{profile}}", profile="p"
    )
    bundle = write_bundle(tmp_path / "reposearcher")
    rendered = [path for path in bundle.rglob("*") if path.is_file() and path.name != "config.yaml"]
    assert not [path for path in rendered if "{{" in path.read_text()]
    # config.yaml's Jinja is SWE-agent's own (argument_format: --name {{value}})
    header = (bundle / "config.yaml").read_text().splitlines()[:2]
    assert header[0].startswith("# RepoSearcher tools (profile default)") and "{{" not in "".join(header)


# --- the runner's command line ---------------------------------------------------------------------------


def test_command_line_arguments_map_to_parameters():
    specs = {spec.name: spec for spec in profile_specs("default")}
    view, structure = specs["show_code"], specs["get_repo_structure"]
    assert parse_arguments(view, ["a.py", "3", "9"]) == {"file": "a.py", "start_line": 3, "end_line": 9}
    assert parse_arguments(structure, ["--depth", "1"]) == {"depth": 1}
    assert parse_arguments(structure, ["src", "3"]) == {"path": "src", "depth": 3}  # positional optionals
    assert parse_arguments(structure, ["--depth=4", "src"]) == {"path": "src", "depth": 4}
    assert parse_arguments(specs["search_class"], ["Cart", "--file"]) == {"class_name": "Cart"}  # null
    assert parse_arguments(specs["search_code"], ["--weird query"]) == {"query": "--weird query"}
    with pytest.raises(UsageError, match="start_line must be an integer"):
        parse_arguments(view, ["a.py", "one", "3"])
    with pytest.raises(UsageError, match="missing argument"):
        parse_arguments(view, ["a.py"])
    with pytest.raises(UsageError, match="too many arguments"):
        parse_arguments(specs["find_references"], ["total", "price"])
    listing = ToolSpec(
        "pick", "", (Param("items", "array", "", items="integer"), Param("why", "string", "", False))
    )
    assert parse_arguments(listing, ["1", "2", "--why", "x"]) == {"items": [1, 2], "why": "x"}
    assert parse_arguments(listing, ["--items", "3", "4"]) == {"items": [3, 4]}


def test_repository_root_resolution(repo, tmp_path):
    assert repository_root({"REPOSEARCHER_REPO": str(tmp_path)}, repo) == tmp_path
    assert repository_root({"ROOT": str(repo)}, tmp_path) == repo
    assert repository_root({}, repo / "shop") == repo.resolve()  # a cd into a sub-directory
    assert repository_root({"REPOSEARCHER_REPO": str(tmp_path)}, Path("/")) == tmp_path  # explicit: enough


def test_runner_refuses_a_working_directory_that_is_no_repository(tmp_path, monkeypatch):
    # ROOT unset and started from / (or $HOME): the working directory is not a repository to index
    with pytest.raises(NoRepository, match="/ is not inside a git work tree"):
        repository_root({}, Path("/"))
    with pytest.raises(NoRepository, match=r"REPOSEARCHER_REPO=.*missing is not a directory"):
        repository_root({"REPOSEARCHER_REPO": str(tmp_path / "missing")}, tmp_path)
    loose = write_tree(tmp_path / "loose", REPO_FILES)  # source files, but no git work tree
    cache = tmp_path / "cache"
    monkeypatch.chdir(loose)
    monkeypatch.delenv("ROOT", raising=False)
    monkeypatch.delenv("REPOSEARCHER_REPO", raising=False)
    monkeypatch.setenv("REPOSEARCHER_CACHE", str(cache))
    for argv in (["search_class", "Cart"], ["--warm"]):
        out = io.StringIO()
        assert run(argv, out) == 1
        assert "is not inside a git work tree" in out.getvalue() and "REPOSEARCHER_REPO" in out.getvalue()
    assert not list(cache.glob("index-*"))  # nothing was indexed
    monkeypatch.setenv("REPOSEARCHER_REPO", str(loose))  # said explicitly: it is searched
    out = io.StringIO()
    assert run(["search_class", "Cart"], out) == 0 and "class Cart" in out.getvalue()


# --- start-up self-check: a tree-sitter that cannot parse is an error, never an empty index -------------


@pytest.mark.usefixtures("fresh_grammars")
@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_grammar_check_is_loud(kind, monkeypatch):
    from importlib.metadata import version

    expected = break_runtime(monkeypatch, kind)
    with pytest.raises(GrammarRuntimeError) as raised:
        check_grammars()
    message = str(raised.value)
    assert f"tree-sitter {version('tree-sitter')} cannot parse" in message
    assert expected in message
    assert "RepoSearcher needs tree-sitter" in message and "<0.27" in message and "pip install" in message


@pytest.mark.usefixtures("fresh_grammars")
def test_grammar_check_passes_and_the_pin_is_pyprojects():
    import tomllib

    check_grammars()
    pyproject = tomllib.loads(Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text())
    pins = [dep for dep in pyproject["project"]["dependencies"] if re.match(r"tree-sitter[<>=]", dep)]
    assert pins == [f"tree-sitter{REQUIRED_TREE_SITTER}"]


@pytest.mark.usefixtures("fresh_grammars")
def test_runner_refuses_to_answer_from_a_broken_tree_sitter(repo, tmp_path, monkeypatch):
    # what SWE-agent's edit_anthropic does to a shared environment: the tools answered "No class named
    # 'Cart'." with exit 0 and warm-up printed "indexed 0 files"
    monkeypatch.setenv("ROOT", str(repo))
    monkeypatch.delenv("REPOSEARCHER_REPO", raising=False)
    monkeypatch.setenv("REPOSEARCHER_CACHE", str(tmp_path / "cache"))
    break_runtime(monkeypatch, "0.21 Language(ptr, name)")
    for argv in (["search_class", "Cart"], ["--warm"], ["--check"]):
        out = io.StringIO()
        assert run(argv, out) == 1, argv
        text = out.getvalue()
        assert "error: tree-sitter" in text and "RepoSearcher needs tree-sitter" in text, argv
        assert "No class named" not in text and "indexed" not in text


@pytest.mark.usefixtures("fresh_grammars")
def test_runner_checks_once_per_runtime(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("ROOT", str(repo))
    monkeypatch.setenv("REPOSEARCHER_CACHE", str(tmp_path / "cache"))
    assert run(["--check"], io.StringIO()) == 0
    assert len(list((tmp_path / "cache" / "grammar-checks").glob("*.ok"))) == 1
    calls: list[int] = []
    monkeypatch.setattr("reposearcher_plugin.index.languages.check_grammars", lambda: calls.append(1))
    out = io.StringIO()
    assert run(["search_class", "Cart"], out) == 0 and "class Cart" in out.getvalue()
    assert calls == []  # the stamp of this runtime: no grammar loaded for the check
    assert run(["--check"], io.StringIO()) == 0 and calls == [1]  # --check always checks


# --- installed and called as SWE-agent does --------------------------------------------------------------


async def _session_run(runtime: Any, command: str, timeout: float = 60) -> tuple[str, int | None]:
    from swerex.runtime.abstract import BashAction

    result = await runtime.run_in_session(BashAction(command=command, timeout=timeout, check="silent"))
    return result.output, result.exit_code


@pytest.mark.skipif(not OLD_PYTHON.exists(), reason="needs pyenv's Python 3.8")
def test_bundle_installs_and_runs_in_swe_rex_with_an_old_python_first(repo, tmp_path, monkeypatch):
    from swerex.deployment.local import LocalDeployment
    from swerex.runtime.abstract import CreateBashSessionRequest, UploadRequest

    # swe-rex's session is an interactive bash: it must not read the user's start-up files (a pyenv
    # PROMPT_COMMAND in ~/.bashrc printed "pyenv: command not found" into every tool output here)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("PROMPT_COMMAND", "BASH_ENV", "ENV"):
        monkeypatch.delenv(variable, raising=False)

    bundle = write_bundle(tmp_path / "build" / "reposearcher")
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    cache = tmp_path / "index-cache"
    tools_dir = tmp_path / "root" / "tools" / "reposearcher"
    tools_dir.parent.mkdir(parents=True)
    old = tmp_path / "old-python"  # what a SWE-bench image's conda env puts first on PATH
    old.mkdir()
    for name in ("python", "python3"):
        (old / name).symlink_to(OLD_PYTHON)
    ours = checkout_venv(tmp_path / "venv")  # a python3.11 that imports this checkout, not what is installed
    path = os.pathsep.join([str(old), str(ours.parent), "/usr/bin", "/bin"])
    toolbox = ToolBox(build_index(repo, cache=ParseCache(tmp_path / "test-cache"), workers=1))

    async def scenario() -> None:
        deployment = LocalDeployment()
        await deployment.start()
        runtime = deployment.runtime
        try:
            await runtime.create_session(CreateBashSessionRequest(startup_timeout=10))
            setup = [
                f"export PATH={shlex.quote(path)} REPOSEARCHER_CACHE={shlex.quote(str(cache))}",
                "unset REPOSEARCHER_PYTHON REPOSEARCHER_REPO PYTHONPATH",
                f"cd {shlex.quote(str(repo))} && export ROOT=$(pwd -P)",  # SWE-agent's repository reset
            ]
            for line in setup:
                assert (await _session_run(runtime, line))[1] == 0
            output, _ = await _session_run(runtime, "python3 --version")
            assert "Python 3.8" in output
            # tools.py _install_commands: upload, PATH, chmod, `cd bundle && source install.sh`
            await runtime.upload(UploadRequest(source_path=str(bundle), target_path=str(tools_dir)))
            install = " && ".join(
                [
                    f"export PATH={tools_dir}/bin:$PATH",
                    f"chmod +x {tools_dir}/bin/*",
                    f"cd {tools_dir} && source install.sh",
                    f"chmod +x {tools_dir}/bin/*",
                ]
            )
            output, status = await _session_run(runtime, install, timeout=120)
            assert status == 0, output
            assert f"using {sys.executable}" in output or "using /" in output
            assert "RepoSearcher: indexed 4 files" in output  # warmed from $ROOT
            recorded = (tools_dir / "python_path").read_text().strip()
            assert recorded != str(OLD_PYTHON) and "3.8" not in recorded
            output, _ = await _session_run(
                runtime, "declare -F _rs_find; echo vars=${_rs_py:-}${_rs_bundle:-}"
            )
            assert output.strip() == "vars="  # install.sh leaves nothing behind in the agent's shell
            assert (await _session_run(runtime, f"cd {shlex.quote(str(repo / 'shop'))}"))[1] == 0
            for tool, values in CALLS:
                command = swe_agent_command(config, tool, values)
                output, status = await _session_run(runtime, command)
                expected = toolbox.call(tool, values)
                assert expected.ok, (tool, expected.text)
                assert status == 0, (command, output)
                assert output.strip() == expected.text.strip(), command
            # an unknown class is an answer (the tool's text, status 0); a refused call has status 1
            output, status = await _session_run(runtime, "search_class NoSuchClass")
            assert status == 0 and output.strip() == "No class named 'NoSuchClass'."
            output, status = await _session_run(runtime, "search_class Cart --file nope.py")
            assert status == 1 and output.strip() == "Error: No file 'nope.py' in the repository."
            # bad arguments: a usage message, exit status 2
            output, status = await _session_run(runtime, "show_code shop/cart.py one 3")
            assert status == 2
            assert "start_line must be an integer" in output and "usage: show_code <file>" in output
            output, status = await _session_run(runtime, "search_class_method Cart")
            assert status == 2 and "missing argument(s): method_name" in output
        finally:
            await deployment.stop()

    asyncio.run(scenario())


def test_install_fails_loudly_without_a_usable_python(tmp_path):
    bundle = write_bundle(tmp_path / "reposearcher")
    old = tmp_path / "old-python"
    old.mkdir()
    (old / "python3").symlink_to(OLD_PYTHON if OLD_PYTHON.exists() else "/bin/false")
    script = f"cd {shlex.quote(str(bundle))} && source install.sh; echo status=$?; echo alive"
    env = {"PATH": f"{old}:/bin", "HOME": str(tmp_path)}  # no Python >= 3.11 with our package
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert "status=1" in done.stdout and "alive" in done.stdout
    assert "no Python >= 3.11 that can import reposearcher_plugin" in done.stderr
    # and a tool called anyway says what to do
    done = subprocess.run([str(bundle / "bin" / "search_class"), "Cart"], capture_output=True, text=True)
    assert done.returncode == 127 and "install.sh" in done.stdout


def test_install_refuses_a_python_whose_tree_sitter_is_0_21(repo, tmp_path):
    # the only Python that imports us has SWE-agent's tree-sitter 0.21.3: install.sh must stop SWE-agent
    # with the reason, not record it and let the tools index nothing
    bundle = write_bundle(tmp_path / "reposearcher")
    python = checkout_venv(tmp_path / "shared-venv", tree_sitter_021=True)
    script = f"cd {shlex.quote(str(bundle))} && source install.sh; echo status=$?; echo alive"
    env = {
        "PATH": "/bin",  # no other Python >= 3.11 with our package
        "HOME": str(tmp_path),
        "REPOSEARCHER_PYTHON": str(python),
        "REPOSEARCHER_CACHE": str(tmp_path / "cache"),
        "ROOT": str(repo),
    }
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert "status=1" in done.stdout and "alive" in done.stdout, done.stdout + done.stderr
    assert "tree-sitter 0.21.3 cannot parse" in done.stderr
    assert "missing 1 required positional argument: 'name'" in done.stderr
    assert "no Python here has a tree-sitter that parses" in done.stderr
    assert not (bundle / "python_path").exists() and "indexed" not in done.stdout
    # the runner with that Python: the same reason, exit 1, not "No class named 'Cart'." with exit 0
    done = subprocess.run(
        [str(python), "-E", "-P", "-m", "reposearcher_plugin.hosts.swe_agent_tool", "search_class", "Cart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "search_class: error: tree-sitter 0.21.3" in done.stdout


# --- localize first: the instances file ------------------------------------------------------------------


def test_instances_file_for_swe_agent(tmp_path, capsys):
    repo = write_tree(tmp_path / "repos" / "acme+shop", REPO_FILES)
    commit = commit_all(repo)
    issues = {
        "acme__shop-1": "Cart.checkout returns a wrong total: total() ignores the quantity of each item.",
        "acme__shop-2": "discount() should refuse a rate above 1",
    }
    rows = [
        {"instance_id": key, "repo": "acme/shop", "base_commit": commit, "problem_statement": text}
        for key, text in issues.items()
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "instances.jsonl"
    args = ["instances", "--dataset", str(data), "--repos-dir", str(tmp_path / "repos"), "--out", str(out)]
    args += [
        "--offline",
        "--cache-dir",
        str(tmp_path / "snapshots"),
        "--index-cache-dir",
        str(tmp_path / "ic"),
    ]
    assert swe_agent_main(args) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["instance_id"] for row in written] == list(issues)
    first, second = written
    # SimpleBatchInstance (sweagent/run/batch_instances.py): these keys, extra_fields for the templates
    assert set(first) == {
        "instance_id",
        "image_name",
        "problem_statement",
        "repo_name",
        "base_commit",
        "extra_fields",
    }
    assert first["image_name"] == "docker.io/swebench/sweb.eval.x86_64.acme_1776_shop-1:latest"
    assert first["repo_name"] == "testbed" and first["base_commit"] == commit
    assert first["problem_statement"] == issues["acme__shop-1"]
    assert first["extra_fields"]["localized_locations"][0] in {
        "shop/cart.py::Cart.checkout",
        "shop/pricing.py::total",
    }
    assert second["extra_fields"]["localized_locations"][0] == "shop/pricing.py::discount"
    text = second["extra_fields"]["localization"]
    assert text.splitlines()[1] == "1. shop/pricing.py::discount"
    assert "Files, most likely first:\n1. shop/pricing.py" in text
    # what SWE-agent's instance_template makes of it (plain Jinja, extra_fields merged into the variables)
    template = yaml.safe_load(Path("configs/hosts/swe_agent_localize_first.yaml").read_text())
    prompt = Template(template["agent"]["templates"]["instance_template"]).render(
        working_dir="/testbed", problem_statement=second["problem_statement"], **second["extra_fields"]
    )
    assert "<localization>\nFunctions and classes" in prompt and "1. shop/pricing.py::discount" in prompt
    bare = Template(template["agent"]["templates"]["instance_template"]).render(
        problem_statement="x", localization=""
    )
    assert "<localization>" not in bare
    # resumable: a rerun localizes nothing and writes the same file
    assert "[2/2] acme__shop-" in capsys.readouterr().err
    before = out.read_text()
    assert swe_agent_main(args) == 0
    assert out.read_text() == before and (tmp_path / "instances.predictions.jsonl").exists()
    assert "acme__shop-" not in capsys.readouterr().err


def test_localize_first_config_keeps_swe_agents_submit_review():
    # a --config given alone replaces SWE-agent's default: without its SUBMIT_REVIEW_MESSAGES the
    # review_on_submit_m bundle's first `submit` ends the run with no review step
    config = yaml.safe_load(Path("configs/hosts/swe_agent_localize_first.yaml").read_text())
    tools = config["agent"]["tools"]
    assert {"path": "tools/review_on_submit_m"} in tools["bundles"]
    (message,) = tools["registry_variables"]["SUBMIT_REVIEW_MESSAGES"]
    assert message.startswith("Thank you for your work on this issue.")
    assert "4. Run the submit command again to confirm." in message
    # what review_on_submit_m's submit does with it
    shown = message.replace("{{diff}}", "--- a/shop/cart.py\n+++ b/shop/cart.py")
    assert "<diff>\n--- a/shop/cart.py\n+++ b/shop/cart.py\n</diff>" in shown
    # and with no localization the prompt is SWE-agent's own, with no pointer to missing locations
    template = Template(config["agent"]["templates"]["instance_template"])
    bare = template.render(working_dir="/testbed", problem_statement="x", localization="")
    assert "the locations above" not in bare and "relevant to the <pr_description>\n" in bare
    shown = template.render(working_dir="/testbed", problem_statement="x", localization="1. a.py::f")
    assert "starting with the locations above" in shown


def test_instances_for_a_local_deployment(tmp_path, capsys):
    repo = write_tree(tmp_path / "repos" / "acme+shop", REPO_FILES)
    commit = commit_all(repo)
    row = {"instance_id": "acme__shop-1", "repo": "acme/shop", "base_commit": commit}
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({**row, "problem_statement": "total() ignores the quantity"}) + "\n")
    out = tmp_path / "instances.jsonl"
    common = ["instances", "--dataset", str(data), "--repos-dir", str(tmp_path / "repos"), "--offline"]
    common += ["--cache-dir", str(tmp_path / "snapshots"), "--index-cache-dir", str(tmp_path / "ic")]
    # SWE-agent's local deployment refuses an image name, and takes a checkout as an absolute repo_name
    assert swe_agent_main([*common, "--out", str(out), "--image-template", "", "--repo-name", str(repo)]) == 0
    (written,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert written["image_name"] == "" and written["repo_name"] == str(repo)
    err = capsys.readouterr().err
    assert "note:" not in err and "--instances.deployment.type local" in err
    # no image and a bare name: SWE-agent would look for /testbed on this machine; say so
    assert swe_agent_main([*common, "--out", str(out), "--image-template", ""]) == 0
    assert "look for the repository at /testbed on this machine" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        swe_agent_main(["instances", "--help"])
    help_text = capsys.readouterr().out
    assert "--image-template ''" in help_text and "--repo-name /abs/path/to/checkout" in help_text
    assert "--instances.deployment.type local" in help_text


def test_image_names_and_rendering():
    assert (
        swe_bench_image("django__django-11099")
        == "docker.io/swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    )
    assert (
        swe_bench_image("Org__Repo-1", "swebench/sweb.eval.x86_64.{id}:latest")
        == "swebench/sweb.eval.x86_64.org_1776_repo-1:latest"
    )
    instance = Instance("acme__shop-1", "acme/shop", "c0ffee", "x")
    failed = instance_row(instance, {"error": "boom", "locations": ["a.py::f"]})
    assert failed["extra_fields"]["localization"] == ""
    assert render_localization([], ["a.py"]) == "Files, most likely first:\n1. a.py"


def test_bundle_wheel_builds_from_an_installed_distribution_without_a_checkout(tmp_path, monkeypatch):
    """Installed from a wheel there is no pyproject.toml beside the package: the wheel source is the
    installed package plus a pyproject written from the installed metadata (configs included)."""
    import zipfile

    import reposearcher_plugin
    from reposearcher_plugin.hosts.swe_agent import _wheel_source

    site = tmp_path / "site-packages"
    shutil.copytree(Path(reposearcher_plugin.__file__).parent, site / "reposearcher_plugin")
    monkeypatch.setattr(reposearcher_plugin, "__file__", str(site / "reposearcher_plugin" / "__init__.py"))
    (tmp_path / "scratch").mkdir()
    source = _wheel_source(tmp_path / "scratch")
    project = (source / "pyproject.toml").read_text()
    assert 'name = "reposearcher-plugin"' in project and "tree-sitter" in project and "litellm" not in project
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "w"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "w").glob("reposearcher_plugin-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "reposearcher_plugin/configs/hosts/swe_agent_localize_first.yaml" in names
    assert "reposearcher_plugin/hosts/swe_agent_tool.py" in names
    # every data file the installed package holds, so `swe-agent bundle` works in the venv it fills
    assert "reposearcher_plugin/hosts/swe_agent_bundle/bin/tool.sh" in names
    assert "reposearcher_plugin/hosts/swe_agent_bundle/install.sh" in names
