"""`reposearcher localize` with the offline default imports what it needs and nothing more: in a fresh
process the imports are most of a warm localization's time (issue 15, item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import write_tree

ROOT = Path(__file__).resolve().parents[1]
# what the offline default never uses: the learned ranker's and the LLM's packages, the terminal's, the
# process pool (a warm or small index starts none), the HTTP client, the other sub-commands' modules
NOT_FOR_THE_DEFAULT = (
    "lightgbm",
    "litellm",
    "mcp",
    "rich",
    "concurrent.futures",
    "multiprocessing",
    "urllib.request",
    "reposearcher_plugin.cli.show",
    "reposearcher_plugin.cli.eval_cmd",
    "reposearcher_plugin.cli.models_cmd",
    "reposearcher_plugin.hosts",
    "reposearcher_plugin.evaluation",
    "reposearcher_plugin.models",
)


def _loaded_after(argv: list[str], cwd: Path) -> tuple[int, list[str], str]:
    code = f"""
        import json, sys
        from reposearcher_plugin.cli.main import main
        status = main({argv!r})
        print(json.dumps(sorted(sys.modules)), file=sys.stderr)
        sys.exit(status)
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    return done.returncode, json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


def test_offline_localize_imports_only_what_it_uses(tmp_path):
    repo = write_tree(
        tmp_path / "repo",
        {"shop/cart.py": "class Cart:\n    def total(self):\n        return sum(self.items)\n"},
    )
    issue = tmp_path / "issue.md"
    issue.write_text("Cart.total is wrong for an empty cart\n")
    argv = ["localize", "--repo", str(repo), "--issue", str(issue), "--json"]
    status, loaded, out = _loaded_after(argv, ROOT)
    assert status == 0 and "shop/cart.py::Cart.total" in json.loads(out)["locations"]
    assert [name for name in NOT_FOR_THE_DEFAULT if name in loaded] == []


def test_each_command_line_still_sees_every_sub_command():
    # only the named sub-command's parser is built; --help and mistakes still list them all
    from reposearcher_plugin.cli.main import COMMAND_MODULES, build_parser, named_command

    full = build_parser()
    choices = next(action.choices for action in full._actions if action.dest == "command")
    built_in = {"index", "tool", "tools", "bench", "demo"}
    assert set(choices) == built_in | set(COMMAND_MODULES)
    assert named_command(["localize", "--repo", "."]) == "localize"
    assert named_command(["--help"]) is None and named_command(["lokalize"]) is None
    assert named_command([]) is None and named_command(["index", "."]) is None
    for command in COMMAND_MODULES:
        one = build_parser(command)
        only = next(action.choices for action in one._actions if action.dest == "command")
        assert command in only and set(only) <= set(choices)
