"""Gold locations from patches: every rule of evaluation/gold.py on small repositories and exact lists."""

from __future__ import annotations

import difflib
import json
import sys
import textwrap
from pathlib import Path

import pytest

from reposearcher_plugin.cli.main import main
from reposearcher_plugin.evaluation import gold_source
from reposearcher_plugin.evaluation.gold import (
    GoldError,
    derive_gold,
    derive_gold_for_dataset,
    gold_from_patches,
)
from reposearcher_plugin.evaluation.gold_agreement import agreement, level_set
from reposearcher_plugin.evaluation.instances import Instance
from tests.conftest import git, write_tree

BASE = '''\
import os


CONSTANT = 1


def helper(x):
    return x + 1


@decorator
def decorated():
    return 2


class Widget:
    """A widget."""

    size = 3

    def __init__(self):
        self.value = 0

    def render(self):
        def inner():
            return self.value

        return inner()


def outer():
    def nested():
        return 1

    return nested()
'''

JS = """\
function greet(name) {
  return "hi " + name;
}

class Box {
  open() {
    return 1;
  }
}
"""


def instance(patch: str, commit: str = "0" * 40, instance_id: str = "acme__proj-1") -> Instance:
    return Instance(instance_id, "acme/proj", commit, "issue", patch=patch)


def diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=3
    )
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return diff("mod.py", BASE, BASE.replace(old, new, 1))


@pytest.fixture
def index(make_index):
    return make_index(
        {"mod.py": BASE, "app.js": JS, "docs/notes.rst": "Notes\n=====\n", "data.py": "X = 1\n"}
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # rule 1: the innermost definition holding a modified line
        ("    return x + 1\n", "    return x + 2\n", ["mod.py::helper"]),
        (
            "            return self.value\n",
            "            return -self.value\n",
            ["mod.py::Widget.render.inner"],
        ),
        ("        return 1\n", "        return 0\n", ["mod.py::outer.nested"]),
        # rule 3: a decorator belongs to what it decorates
        ("@decorator\n", "@decorator(strict=True)\n", ["mod.py::decorated"]),
        # rule 4: class-body lines outside methods are the class
        ("    size = 3\n", "    size = 4\n", ["mod.py::Widget"]),
        ('    """A widget."""\n', '    """A better widget."""\n', ["mod.py::Widget"]),
        ("class Widget:\n", "class Widget(Base):\n", ["mod.py::Widget"]),
        # rule 5: module-level lines are the file
        ("import os\n", "import os\nimport sys\n", ["mod.py"]),
        ("CONSTANT = 1\n", "CONSTANT = 2\n", ["mod.py"]),
        # rule 2: added lines, in the patched file's definitions
        (
            "        return inner()\n",
            "        result = inner()\n        return result\n",
            ["mod.py::Widget.render"],
        ),
        (
            "        return inner()\n",
            "        return inner()\n\n    def reset(self):\n        self.value = 0\n",
            ["mod.py::Widget"],
        ),
        ("    return nested()\n", "    return nested()\n\n\ndef added():\n    return 3\n", ["mod.py"]),
        ("def helper(x):\n", "def helper2(x):\n", ["mod.py::helper", "mod.py"]),
        # a deleted definition exists at the base: it is the label
        ("def helper(x):\n    return x + 1\n\n\n", "", ["mod.py::helper"]),
        ("    def __init__(self):\n        self.value = 0\n\n", "", ["mod.py::Widget.__init__"]),
        # rule 6: blank lines do not count, comments do
        ("CONSTANT = 1\n\n", "CONSTANT = 1\n\n\n", []),
        ("    return x + 1\n", "    # one more\n    return x + 1\n", ["mod.py::helper"]),
        # ... and a comment directly above a definition belongs to it
        ("def helper(x):\n", "# adds one\ndef helper(x):\n", ["mod.py::helper"]),
        ("@decorator\n", "# decorated on purpose\n# really\n@decorator\n", ["mod.py::decorated"]),
        ("    def render(self):\n", "    # draws it\n    def render(self):\n", ["mod.py::Widget.render"]),
        ("CONSTANT = 1\n\n", "CONSTANT = 1\n# not above anything\n\n", ["mod.py"]),
    ],
)
def test_rules_within_a_python_file(index, old, new, expected):
    assert derive_gold(instance(edit(old, new)), index) == expected


def test_labels_come_by_base_line_then_the_file(index):
    patch = edit("import os\n", "import re\n")
    changed = BASE.replace("import os\n", "import re\n").replace("    size = 3\n", "    size = 9\n")
    changed = changed.replace("    return x + 1\n", "    return x\n").replace(
        "        return 1\n", "        return 2\n"
    )
    patch = diff("mod.py", BASE, changed)
    assert derive_gold(instance(patch), index) == [
        "mod.py::helper",
        "mod.py::Widget",
        "mod.py::outer.nested",
        "mod.py",
    ]


def test_other_parsed_languages_follow_the_same_rules(index):
    patch = diff("app.js", JS, JS.replace('"hi "', '"hello "').replace("return 1;", "return 2;"))
    assert derive_gold(instance(patch), index) == ["app.js::greet", "app.js::Box.open"]


def test_files_the_index_does_not_parse_are_left_out_unless_asked(index):
    patch = diff("docs/notes.rst", "Notes\n=====\n", "Notes\n=====\n\nMore.\n") + edit(
        "CONSTANT = 1\n", "CONSTANT = 5\n"
    )
    assert derive_gold(instance(patch), index) == ["mod.py"]
    assert derive_gold(instance(patch), index, include_non_source=True) == ["docs/notes.rst", "mod.py"]


def test_new_files_are_left_out_and_deleted_files_are_their_path(index):
    new_file = "diff --git a/new.py b/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+def fresh():\n+    return 1\n"
    deleted = "diff --git a/data.py b/data.py\ndeleted file mode 100644\n--- a/data.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-X = 1\n"
    assert derive_gold(instance(new_file), index) == []
    assert derive_gold(instance(deleted), index) == ["data.py"]
    assert derive_gold(instance(new_file + edit("    return 2\n", "    return fresh()\n")), index) == [
        "mod.py::decorated"
    ]


def test_renamed_files_are_labelled_under_the_base_path(index):
    hunks = edit("    return x + 1\n", "    return x - 1\n").split("\n", 3)[3]
    patch = f"diff --git a/mod.py b/pkg/mod.py\nsimilarity index 90%\nrename from mod.py\nrename to pkg/mod.py\n--- a/mod.py\n+++ b/pkg/mod.py\n{hunks}"
    assert derive_gold(instance(patch), index) == ["mod.py::helper"]
    pure = "diff --git a/data.py b/moved.py\nsimilarity index 100%\nrename from data.py\nrename to moved.py\n"
    assert derive_gold(instance(pure), index) == ["data.py"]


def test_hunks_offset_from_their_stated_lines_apply_where_they_fit(index):
    # hand-written, stated 3 lines too low (as some SWE-bench gold patches are): git apply finds it
    patch = textwrap.dedent(
        """\
        diff --git a/mod.py b/mod.py
        --- a/mod.py
        +++ b/mod.py
        @@ -10,2 +10,2 @@ import os
         def helper(x):
        -    return x + 1
        +    return x + 3
        """
    )
    assert derive_gold(instance(patch), index) == ["mod.py::helper"]


def test_a_patch_that_does_not_fit_the_base_is_an_error(index):
    patch = diff("mod.py", BASE.replace("x + 1", "x + 100"), BASE)
    with pytest.raises(GoldError, match=r"does not apply to mod\.py"):
        derive_gold(instance(patch), index)
    missing = diff("absent.py", "A = 1\n", "A = 2\n")
    with pytest.raises(GoldError, match=r"absent\.py.*wrong commit"):
        derive_gold(instance(missing), index)
    with pytest.raises(GoldError, match="cannot be parsed"):
        derive_gold(
            instance("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-only one line\n"), index
        )


# --- whole datasets and the command ----------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Instance]]:
    """A repository with two commits in tmp/repos, and an instance at each."""
    monkeypatch.setenv("REPOSEARCHER_CACHE", str(tmp_path / "cache"))  # never the user's cache
    work = tmp_path / "repos" / "acme__proj"
    work.mkdir(parents=True)
    git(work, "init", "-q")
    write_tree(work, {"mod.py": BASE})
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "one")
    first = git(work, "rev-parse", "HEAD").strip()
    second_text = BASE.replace("    size = 3\n", "    size = 30\n")
    write_tree(work, {"mod.py": second_text})
    git(work, "commit", "-q", "-am", "two")
    second = git(work, "rev-parse", "HEAD").strip()
    instances = [
        instance(edit("    return x + 1\n", "    return x + 2\n"), first, "acme__proj-1"),
        instance(
            diff("mod.py", second_text, second_text.replace("size = 30", "size = 31")), second, "acme__proj-2"
        ),
    ]
    return tmp_path / "repos", instances


def test_gold_for_a_dataset_checks_out_each_base_commit(dataset):
    repos, instances = dataset
    seen = []
    gold = derive_gold_for_dataset(instances, repos, progress=lambda done, total: seen.append((done, total)))
    assert gold == {"acme__proj-1": ["mod.py::helper"], "acme__proj-2": ["mod.py::Widget"]}
    assert seen == [(0, 2), (1, 2), (2, 2)]
    # the second instance's patch does not fit the first commit: a wrong base is an error, not a guess
    wrong = [instance(instances[1].patch, instances[0].base_commit, "acme__proj-3")]
    with pytest.raises(GoldError, match="acme__proj-3"):
        derive_gold_for_dataset(wrong, repos)
    with pytest.raises(gold_source.GoldError, match=r"1 of 1 instances:\n.*not found in"):
        derive_gold_for_dataset([instance("", "f" * 40, "acme__proj-4")], repos)
    # one line per distinct error, naming the instances it hit (a missing commit fails every one)
    lost = [instance("", "e" * 40, f"acme__gone-{n}") for n in range(5)]
    with pytest.raises(GoldError) as failed:
        derive_gold_for_dataset(lost, repos)
    message = str(failed.value)
    assert message.startswith("gold could not be derived for 5 of 5 instances:\n")
    assert message.count("e" * 40) == 1 and "[acme__gone-0, acme__gone-1, acme__gone-2 and 2 more]" in message
    # the same call `eval loc` makes when it has no --gold file
    assert gold_from_patches(instances, repos) == gold


def test_eval_gold_command_writes_resumes_and_compares(dataset, tmp_path, capsys):
    repos, instances = dataset
    data = tmp_path / "data.jsonl"
    rows = [
        {
            "instance_id": i.instance_id,
            "repo": i.repo,
            "base_commit": i.base_commit,
            "problem_statement": "x",
            "patch": i.patch,
        }
        for i in instances
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "gold.json"
    out.write_text(json.dumps({"acme__proj-2": ["kept.py::untouched"]}))  # as if interrupted earlier
    published = tmp_path / "published.json"
    published.write_text(
        json.dumps({"acme__proj-1": ["mod.py::helper"], "acme__proj-2": ["mod.py::Widget", "mod.py"]})
    )
    command = [
        "eval",
        "gold",
        "--dataset",
        str(data),
        "--repos-dir",
        str(repos),
        "--out",
        str(out),
        "--offline",
    ]
    assert main([*command, "--compare", str(published), "--report", str(tmp_path / "agree.md")]) == 0
    assert json.loads(out.read_text()) == {
        "acme__proj-1": ["mod.py::helper"],
        "acme__proj-2": ["kept.py::untouched"],
    }
    report = json.loads((tmp_path / "agree.json").read_text())
    assert report["levels"]["file"]["recall"] == 50.0 and report["levels"]["function"]["precision"] == 50.0
    assert "eval gold --dataset" in (tmp_path / "agree.md").read_text()
    assert main([*command, "--overwrite"]) == 0
    assert json.loads(out.read_text()) == {
        "acme__proj-1": ["mod.py::helper"],
        "acme__proj-2": ["mod.py::Widget"],
    }
    rows.append({**rows[0], "instance_id": "acme__proj-9", "base_commit": "e" * 40})
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(command) == 1  # one failure: reported, the others kept
    assert "acme__proj-9" in capsys.readouterr().err
    assert set(json.loads(out.read_text())) == {"acme__proj-1", "acme__proj-2"}


def test_eval_loc_without_a_gold_module_fails_with_the_import_error(dataset, tmp_path, monkeypatch):
    # A gold module that cannot be imported is a broken install: its own error, not "not available"
    _, instances = dataset
    data = tmp_path / "data.jsonl"
    rows = [{"instance_id": i.instance_id, "repo": i.repo, "base_commit": i.base_commit} for i in instances]
    data.write_text(
        "".join(json.dumps({**row, "problem_statement": "x", "patch": ""}) + "\n" for row in rows)
    )
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps({"instance_id": "acme__proj-1", "found_files": ["mod.py"]}) + "\n")
    monkeypatch.setitem(sys.modules, "reposearcher_plugin.evaluation.gold", None)
    with pytest.raises(ModuleNotFoundError) as error:
        main(["eval", "loc", "--dataset", str(data), "--predictions", str(predictions)])
    assert error.value.name == "reposearcher_plugin.evaluation.gold"


def test_agreement_levels_and_counts():
    ours = {"a-1": ["x.py::A.f", "x.py::g", "x.py"], "a-2": ["y.py::B"]}
    theirs = {"a-1": ["x.py::A.f", "x.py::h"], "a-2": ["y.py::B"], "a-3": ["z.py"]}
    assert level_set(ours["a-1"], "module") == {"x.py::A", "x.py::g"}
    assert level_set(ours["a-1"], "file") == {"x.py"}
    report = agreement(ours, theirs)
    assert report["instances"] == 2 and report["only_theirs"] == ["a-3"]
    function = report["levels"]["function"]
    assert (function["precision"], function["recall"], function["identical"]) == (66.67, 66.67, 50.0)
    assert report["levels"]["file"]["identical"] == 100.0
    assert report["levels"]["all"]["precision"] == 50.0
    assert report["differences"] == {"a-1": {"only_ours": ["x.py", "x.py::g"], "only_theirs": ["x.py::h"]}}
