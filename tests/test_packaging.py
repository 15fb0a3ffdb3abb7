"""The base install serves the offline paths without the heavy optional packages, and a command that
needs a missing extra says which one in one line (issue 13, items 1, 2, 4, 5); a built wheel carries the
package data its commands read (issue 14, move 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from reposearcher_plugin.extras import EXTRA_OF_MODULE, install_hint, missing_extra_message
from tests.broken_tree_sitter import fresh_grammars  # noqa: F401 (a fixture, used by name)
from tests.conftest import write_tree

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("litellm", "torch", "verl", "mcp", "minisweagent", "datasets", "matplotlib", "swebench", "docker")


def _run_hidden(code: str, hidden: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``hidden`` modules made unimportable, as on an install without their extra."""
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "repo",
        {"shop/cart.py": "class Cart:\n    def total(self):\n        return sum(self.items)\n"},
    )


def test_offline_localize_imports_no_optional_package(small_repo, tmp_path):
    issue = tmp_path / "issue.md"
    issue.write_text("Cart.total is wrong for an empty cart\n")
    done = _run_hidden(
        f"""
        from reposearcher_plugin.cli.main import main
        status = main(["localize", "--repo", {str(small_repo)!r}, "--issue", {str(issue)!r}])
        loaded = sorted(name for name in {HEAVY!r} if sys.modules.get(name) is not None)
        print("LOADED", loaded)
        sys.exit(status)
        """,
        hidden=("litellm", "torch"),
    )
    assert done.returncode == 0, done.stderr
    assert "shop/cart.py::Cart.total" in done.stdout
    assert "LOADED []" in done.stdout


def test_llm_localizer_without_the_llm_extra_is_one_line(small_repo, tmp_path):
    issue = tmp_path / "issue.md"
    issue.write_text("Cart.total is wrong\n")
    done = _run_hidden(
        f"""
        from reposearcher_plugin.cli.main import main
        sys.exit(main(["localize", "--repo", {str(small_repo)!r}, "--issue", {str(issue)!r},
                       "--model", "openai/some-model", "--api-base", "http://127.0.0.1:9/v1"]))
        """,
        hidden=("litellm",),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"reposearcher: error: this needs litellm, from the 'llm' extra: {install_hint('llm')}"
    ]


def test_unknown_missing_module_keeps_its_traceback():
    assert missing_extra_message(ModuleNotFoundError("No module named 'nonesuch'", name="nonesuch")) is None
    message = missing_extra_message(ModuleNotFoundError("x", name="matplotlib.pyplot"))
    assert message is not None and "'eval' extra" in message


def _requirements(extras: dict[str, list[str]], extra: str) -> set[str]:
    """Distribution names an extra pulls in, through its references to other extras of ours."""
    names: set[str] = set()
    for requirement in extras[extra]:
        name = requirement.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip()
        if name == "reposearcher-plugin":
            for inner in requirement.split("[", 1)[1].split("]")[0].split(","):
                names |= _requirements(extras, inner.strip())
        else:
            names.add(name.lower().replace("_", "-"))
    return names


def test_every_extra_named_for_a_module_brings_it_and_hints_say_how_to_install():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    distribution = {"minisweagent": "mini-swe-agent"}
    for module, extra in EXTRA_OF_MODULE.items():
        if module == "torch":  # by design installed by hand from the CPU wheel before rl/models
            assert all("torch" not in _requirements(extras, name) for name in extras)
            continue
        assert distribution.get(module, module) in _requirements(extras, extra), (module, extra)
    base = " ".join(project["dependencies"])
    assert "torch" not in base and "litellm" not in base
    everything = _requirements(extras, "all")
    assert all(_requirements(extras, name) <= everything for name in extras if name != "openhands")
    hint = install_hint("mcp")
    assert "pip install -e '.[mcp]'" in hint and ".whl[mcp]" in hint and "reposearcher-plugin[" not in hint


def test_a_built_wheel_carries_the_tree_sitter_queries_and_indexes_with_them(tmp_path):
    """The index reads its definitions queries (index/queries/*.scm) as package data: a wheel without
    them would index no JavaScript, TypeScript, Java, Go or Rust file (issue 14, move 9)."""
    import shutil
    import zipfile

    source = tmp_path / "src"  # a copy: an in-tree build leaves build/ behind
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "reposearcher_plugin", source / "reposearcher_plugin", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    # the PEP 517 hook `pip wheel` calls, without pip's own start-up
    hook = f"from setuptools import build_meta; build_meta.build_wheel({str(tmp_path)!r})"
    built = subprocess.run(
        [sys.executable, "-c", hook], cwd=source, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("reposearcher_plugin-*.whl")
    queries = sorted(path.name for path in (ROOT / "reposearcher_plugin/index/queries").glob("*.scm"))
    assert {"javascript.scm", "typescript.scm", "java.scm", "go.scm", "rust.scm"} <= set(queries)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"reposearcher_plugin/index/queries/{name}" for name in queries} <= names
    # git reads the definitions past changes edited through it (workspace/history.py)
    assert "reposearcher_plugin/workspace/python_hunk_headers.gitattributes" in names
    site = tmp_path / "site-packages"  # a pure-Python wheel installs by unpacking
    zipfile.ZipFile(wheel).extractall(site)
    code = """
        import reposearcher_plugin
        from reposearcher_plugin.index.languages import parse_source
        print(reposearcher_plugin.__file__)
        for module, path, text in [
            ("lang_javascript", "a.js", b"class A { m() {} }"),
            ("lang_typescript", "a.tsx", b"class A { m(): void {} }"),
            ("lang_java", "A.java", b"class A { void m() {} }"),
            ("lang_go", "a.go", b"package a\\ntype A interface { m() }"),
            ("lang_rust", "a.rs", b"struct A;\\nimpl A { fn m(&self) {} }"),
        ]:
            print(path, [entity.qualname for entity in parse_source(module, path, text).entities])
        """
    done = _run_from_unpacked_wheel(code, site, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        str(site / "reposearcher_plugin" / "__init__.py"),
        "a.js ['A', 'A.m']",
        "a.tsx ['A', 'A.m']",
        "A.java ['A', 'A.m']",
        "a.go ['A', 'A.m']",
        "a.rs ['A', 'A.m']",
    ]


def test_version_and_every_positional_argument_has_help(capsys):
    import argparse

    from reposearcher_plugin.cli.main import build_parser, main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("reposearcher 0.")
    silent: list[str] = []
    pending = [(build_parser(), "reposearcher")]
    while pending:
        parser, path = pending.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [(sub, f"{path} {name}") for name, sub in action.choices.items()]
            elif not action.option_strings and not action.help:
                silent.append(f"{path} {action.dest}")
    assert silent == []


def test_silent_wrong_inputs_are_clear_errors(small_repo, tmp_path, capsys):
    from reposearcher_plugin.cli.main import main

    issue = tmp_path / "issue.md"
    issue.write_text("Cart.total is wrong\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["localize", "--repo", str(empty), "--issue", str(issue)]) == 2
    assert "no source file in a language the index parses" in capsys.readouterr().err
    for flags in (["--profile", "tooltrain"], ["--tool-format", "hermes", "--hints", "5"]):
        assert main(["localize", "--repo", str(small_repo), "--issue", str(issue), *flags]) == 2
        error = capsys.readouterr().err
        assert f"{flags[0]}" in error and "only apply to an LLM localizer" in error
    # a config file may hold LLM settings for other runs: only flags typed with the offline model are refused
    assert main(["localize", "--repo", str(small_repo), "--issue", str(issue), "--model", "bm25"]) == 0


def test_a_long_entity_id_wraps_in_its_cell_and_is_never_cut():
    import io

    from rich.console import Console

    from reposearcher_plugin.cli.console import ranked_table

    long_id = "src/package/subpackage/module_with_a_long_name.py::SomeClass.some_method_name"
    screen = io.StringIO()
    Console(file=screen, width=40).print(ranked_table("where", [long_id, "a.py::f"]))
    cells = [line.split("│")[2].strip() for line in screen.getvalue().splitlines() if line.count("│") == 3]
    assert "".join(cells).startswith(long_id) and "…" not in screen.getvalue()


def test_no_command_indexes_into_an_empty_result_with_a_broken_tree_sitter(
    small_repo,
    tmp_path,
    monkeypatch,
    capsys,
    fresh_grammars,  # noqa: F811
):
    from reposearcher_plugin.cli.main import main
    from tests.broken_tree_sitter import break_runtime

    issue = tmp_path / "issue.md"
    issue.write_text("Cart.total is wrong\n")
    break_runtime(monkeypatch, "0.21 Language(ptr, name)")
    assert main(["localize", "--repo", str(small_repo), "--issue", str(issue)]) == 2
    error = capsys.readouterr().err
    assert "reposearcher: error: " in error and "tree-sitter" in error and "Traceback" not in error


def _files_and_modes(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(path.relative_to(root)): (path.stat().st_mode, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_built_wheel_carries_the_bundle_files_and_writes_the_same_bundle_installed(tmp_path):
    from reposearcher_plugin.hosts.swe_agent import build_package_wheel, write_bundle

    wheel = build_package_wheel(tmp_path / "dist")  # what `pip install .` installs
    names = set(zipfile.ZipFile(wheel).namelist())
    bundle_files = {"bin/tool.sh", "install.sh", "config.yaml", "README.md"}
    assert {f"reposearcher_plugin/hosts/swe_agent_bundle/{name}" for name in bundle_files} <= names
    site = tmp_path / "site-packages"  # a pure-Python wheel installs by unpacking
    zipfile.ZipFile(wheel).extractall(site)
    installed = tmp_path / "from-wheel" / "reposearcher"
    code = f"""
        import reposearcher_plugin, sys
        assert reposearcher_plugin.__file__.startswith({str(site)!r}), reposearcher_plugin.__file__
        from reposearcher_plugin.cli.main import main
        sys.exit(main(["swe-agent", "bundle", "--out", {str(installed)!r}]))
        """
    done = _run_from_unpacked_wheel(code, site, tmp_path)
    assert done.returncode == 0, done.stderr
    checkout = write_bundle(tmp_path / "from-checkout" / "reposearcher")
    assert _files_and_modes(installed) == _files_and_modes(checkout)


def _run_from_unpacked_wheel(code: str, site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` where only the unpacked wheel in ``site`` can be imported (not the checkout)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=120,
    )
