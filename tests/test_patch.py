"""The patch step: localizations -> SEARCH/REPLACE edits -> a git diff the SWE-bench harness applies."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest
from swebench.harness.utils import get_predictions_from_file

from reposearcher_plugin.cli.patch_cmd import add_patch_command
from reposearcher_plugin.evaluation.instances import load_instances
from reposearcher_plugin.evaluation.readers import read_predictions
from reposearcher_plugin.repair.edits import EditBlock, apply_edit, parse_edit_blocks
from reposearcher_plugin.repair.options import PatchOptions
from reposearcher_plugin.repair.runner import run_patches
from reposearcher_plugin.repair.voting import majority_patch, normalize_patch
from reposearcher_plugin.workspace import Workspace
from tests.conftest import commit_all, git, write_tree
from tests.scripted_llm import scripted_model

FILES = {
    "shop/__init__.py": "",
    "shop/pricing.py": """
        def total(items):
            return sum(price * quantity for price, quantity in items)


        def discount(value, rate):
            return value * rate
        """,
    "shop/cart.py": """
        from shop.pricing import total


        class Cart:
            def checkout(self):
                return total([])
        """,
}
OLD = "    return sum(price * quantity for price, quantity in items)\n"
NEW = "    return round(sum(price * quantity for price, quantity in items), 2)\n"
GOOD_REPLY = f"""The bug is in total.

```python
### shop/pricing.py
<<<<<<< SEARCH
def total(items):
{OLD}=======
def total(items):
{NEW}>>>>>>> REPLACE
```
"""
GOLD = "diff --git a/shop/pricing.py b/shop/pricing.py\n--- a/shop/pricing.py\n+++ b/shop/pricing.py\n"


@pytest.fixture
def dataset(tmp_path: Path) -> dict[str, Path]:
    repo = write_tree(tmp_path / "repos" / "acme+shop", FILES)
    commit = commit_all(repo)
    rows = [
        {
            "instance_id": f"shop-{number}",
            "repo": "acme/shop",
            "base_commit": commit,
            "problem_statement": "total() should round the sum to cents",
            "patch": f"{GOLD}@@ -{number} +{number} @@\n",
        }
        for number in (1, 2)
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    locs = tmp_path / "locs.jsonl"
    loc = {"found_files": ["shop/pricing.py"], "locations": ["shop/pricing.py::total", "shop/cart.py::Cart"]}
    locs.write_text("".join(json.dumps({"instance_id": row["instance_id"], **loc}) + "\n" for row in rows))
    return {"data": data, "repos": tmp_path / "repos", "root": tmp_path, "repo": repo, "locs": locs}


def _run(paths: dict[str, Path], replies: list, out: Path, ids: tuple[str, ...] = ("shop-1",), **options):
    model, handler = scripted_model(replies)
    instances = [item for item in load_instances(str(paths["data"])) if item.instance_id in ids]
    localizations, _ = read_predictions(paths["locs"], [item.instance_id for item in instances])
    workspace = Workspace(paths["repos"], cache_dir=paths["root"] / "snapshots", online=False)
    summary = run_patches(
        instances,
        localizations,
        out,
        "repair",
        workspace=workspace,
        options=PatchOptions(model=model, index_cache_dir=str(paths["root"] / "index-cache"), **options),
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return summary, rows, handler


def _blob(repo: Path, text: str) -> str:
    done = subprocess.run(
        ["git", "hash-object", "--stdin"], input=text, cwd=repo, capture_output=True, text=True
    )
    return done.stdout.strip()[:7]


def test_repair_end_to_end_with_retries(dataset: dict[str, Path], tmp_path: Path) -> None:
    malformed = "```python\n### shop/pricing.py\n<<<<<<< SEARCH\ndef total(items):\n>>>>>>> REPLACE\n```"
    wrong = "```python\n### shop/pricing.py\n<<<<<<< SEARCH\ndef totl(items):\n=======\ndef x():\n>>>>>>> REPLACE\n```"
    out = tmp_path / "preds.jsonl"
    summary, rows, handler = _run(dataset, [malformed, wrong, GOOD_REPLY], out)
    assert summary.done == 1 and summary.errors == 0
    (row,) = rows
    original = (dataset["repo"] / "shop/pricing.py").read_text()
    fixed = original.replace(OLD, NEW)
    expected = (
        "diff --git a/shop/pricing.py b/shop/pricing.py\n"
        f"index {_blob(dataset['repo'], original)}..{_blob(dataset['repo'], fixed)} 100644\n"
        "--- a/shop/pricing.py\n+++ b/shop/pricing.py\n"
        "@@ -1,5 +1,5 @@\n"
        " def total(items):\n"
        f"-{OLD}+{NEW}"
        " \n \n def discount(value, rate):\n"
    )
    assert row["model_patch"] == expected
    assert row["model_name_or_path"].endswith("test-model")
    assert row["attempts"] == 3 and row["edits_applied"] == 1 and row["outcome"] == "patched"
    assert row["usage"]["calls"] == 3

    # the prompt shows the localized entities' code with line numbers, and the issue
    prompt = handler.requests[0]["messages"][-1]["content"]
    assert "total() should round the sum to cents" in prompt
    assert "### shop/pricing.py" in prompt and f"    2 | {OLD.rstrip()}" in prompt
    assert "### shop/cart.py" in prompt and "class Cart:" in prompt
    # the retries carry the errors back to the model
    second = handler.requests[1]["messages"][-1]["content"]
    assert "no ======= line" in second
    third = handler.requests[2]["messages"][-1]["content"]
    assert "SEARCH text not found" in third

    log = json.loads((tmp_path / "preds.trajectories" / "shop-1.patch.json").read_text())
    assert log["attempts"][0]["malformed"] and not log["attempts"][0]["patch"]
    assert log["attempts"][1]["failed"] == ["shop/pricing.py: SEARCH text not found in the file"]

    # what the harness does: git apply on a fresh checkout of the base commit
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(dataset["repo"]), str(fresh))
    (tmp_path / "fix.diff").write_text(row["model_patch"])
    git(fresh, "apply", "--check", str(tmp_path / "fix.diff"))
    git(fresh, "apply", str(tmp_path / "fix.diff"))
    assert (fresh / "shop/pricing.py").read_text() == fixed


def test_repair_gives_up_after_retries(dataset: dict[str, Path], tmp_path: Path) -> None:
    summary, rows, _ = _run(dataset, ["no edits here", "still none"], tmp_path / "p.jsonl", retries_on_fail=1)
    (row,) = rows
    assert row["model_patch"] == "" and row["attempts"] == 2 and row["outcome"] == "no edit applied"
    assert summary.empty == 1 and "error" not in row


def test_samples_majority(dataset: dict[str, Path], tmp_path: Path) -> None:
    other = GOOD_REPLY.replace("round(", "int(").replace("), 2)", "))")
    spaced = GOOD_REPLY.replace("round(sum(", "round( sum(")  # differs only in whitespace
    _, rows, handler = _run(dataset, [other, GOOD_REPLY, spaced], tmp_path / "p.jsonl", samples=3)
    (row,) = rows
    assert row["chosen_sample"] == 1 and "round(sum(" in row["model_patch"]
    assert row["samples"] == 3 and len(handler.requests) == 3
    # each sample is a fresh conversation
    assert all(len(request["messages"]) == 2 for request in handler.requests)


def test_edit_parsing_and_tolerant_apply() -> None:
    reply = (
        "### a.py\n<<<<<<< SEARCH\n    1 | def f():\n    2 |   return 1\n=======\n    1 | def f():\n"
        "    2 |   return 2\n>>>>>>> REPLACE\n<<<<<<< SEARCH\nx = 1\n=======\n"  # cut off
    )
    blocks, malformed = parse_edit_blocks(reply)
    assert blocks == [EditBlock("a.py", "def f():\n  return 1\n", "def f():\n  return 2\n")]
    assert len(malformed) == 1
    # the model's indentation is off by four spaces: matched line by line and re-indented
    content = "class A:\n    def f():\n        return 1\n"
    updated, how = apply_edit(
        content, EditBlock("a.py", "def f():\n    return 1\n", "def f():\n    return 2\n")
    )
    assert how == "whitespace-tolerant" and updated == "class A:\n    def f():\n        return 2\n"
    assert apply_edit(content, EditBlock("a.py", "nope\n", "x\n")) == (
        None,
        "SEARCH text not found in the file",
    )


def test_majority_normalization() -> None:
    first = "diff --git a/x.py b/x.py\n@@ -1,2 +1,2 @@\n-a = 1\n+a = 2\n"
    moved = "diff --git a/x.py b/x.py\n@@ -9,2 +9,2 @@\n-a  =  1\n+a = 2\n"
    assert normalize_patch(first) == normalize_patch(moved)
    assert majority_patch(["", first, "diff --git a/y.py b/y.py\n+b\n"]) == 1  # tie: the first non-empty
    assert majority_patch(["", ""]) is None


def test_gold_rows_are_what_swebench_reads_and_resume(dataset: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "gold.jsonl"
    instances = load_instances(str(dataset["data"]))
    summary = run_patches(instances[:1], {}, out, "gold")
    assert summary.done == 1
    with out.open("a") as handle:
        handle.write('{"instance_id": "shop-2", "model_')  # a run killed mid-write
    summary = run_patches(instances, {}, out, "gold")
    assert summary.skipped == 1 and summary.done == 1
    rows = get_predictions_from_file(str(out), "unused", "test")
    assert rows == [
        {"instance_id": item.instance_id, "model_name_or_path": "gold", "model_patch": item.patch}
        for item in instances
    ]


def test_cli(dataset: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_patch_command(parser.add_subparsers(dest="command"))
    base = ["patch", "--dataset", str(dataset["data"]), "--repos-dir", str(dataset["repos"])]
    base += ["--cache-dir", str(tmp_path / "snapshots"), "--offline"]
    args = parser.parse_args([*base, "--out", str(tmp_path / "r.jsonl")])
    assert args.handler(args) == 2 and "needs --model and --localizations" in capsys.readouterr().err
    args = parser.parse_args([*base, "--out", str(tmp_path / "g.jsonl"), "--patcher", "gold", "--limit", "1"])
    assert args.handler(args) == 0
    assert [json.loads(line)["instance_id"] for line in (tmp_path / "g.jsonl").open()] == ["shop-1"]
    model, _ = scripted_model([GOOD_REPLY])
    out = tmp_path / "m.jsonl"
    extra = ["--localizations", str(dataset["locs"]), "--model", model, "--instances", "shop-2"]
    args = parser.parse_args([*base, "--out", str(out), *extra, "--index-cache-dir", str(tmp_path / "ic")])
    assert args.handler(args) == 0
    (row,) = [json.loads(line) for line in out.open()]
    assert row["instance_id"] == "shop-2" and f"+{NEW}" in row["model_patch"]


def test_majority_counts_changed_lines_that_look_like_file_headers() -> None:
    # a removed reST underline "-----" is "------" in the diff: a change, not a "---" file header
    underline = (
        "diff --git a/doc.rst b/doc.rst\nindex 1111111..2222222 100644\n--- a/doc.rst\n+++ b/doc.rst\n"
        "@@ -1,3 +1,2 @@\n Title\n------\n text\n"
    )
    assert normalize_patch(underline) == (("doc.rst", ("-----",), ()),)
    assert majority_patch(["", underline]) == 1
