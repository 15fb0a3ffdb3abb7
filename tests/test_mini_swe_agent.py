"""mini-swe-agent host: LocalizeFirstAgent and the SWE-bench runner, driven by mini-swe-agent's own
DeterministicModel and LocalEnvironment on repositories made here (no mocks, no network, no Docker)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")  # mini-swe-agent prints a banner on import otherwise

from minisweagent.agents import get_agent, get_agent_class
from minisweagent.environments.local import LocalEnvironment
from minisweagent.models.test_models import DeterministicModel, make_output

from reposearcher_plugin.cli.mini_cmd import add_mini_command
from reposearcher_plugin.evaluation.instances import load_instances
from reposearcher_plugin.hosts.mini_swe_agent import LocalizeFirstAgent
from reposearcher_plugin.hosts.mini_swe_agent_swebench import DEFAULT_CONFIG, load_config, run_swebench
from reposearcher_plugin.workspace import Workspace
from tests.broken_tree_sitter import (
    break_runtime,
    fresh_grammars,  # noqa: F401 (a fixture, used by name)
)
from tests.conftest import commit_all, git, write_tree

SHOP = {
    "shop/__init__.py": "",
    "shop/cart.py": """
        from shop.pricing import total


        class Cart:
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


        def tax(amount, rate=0.2):
            return amount * rate
        """,
    "docs/notes.txt": "pricing notes\n",
}
ISSUE = "total() ignores the quantity: two items at 5 each cost 5 instead of 10."
FIX = "sed -i 's/sum(price for/sum(price * quantity for/' shop/pricing.py"
EXPECTED_DIFF = "-    return sum(price for price, quantity in items)\n+    return sum(price * quantity for price, quantity in items)\n"


class RecordingModel(DeterministicModel):
    """mini-swe-agent's scripted model, keeping what it was sent (to check the first prompt)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: list[list[dict]] = []

    def query(self, messages: list[dict], **kwargs: Any) -> dict:
        self.received.append([dict(message) for message in messages])
        return super().query(messages, **kwargs)


def fix_and_submit(fix: str = FIX) -> list[dict]:
    return [
        make_output("Fix the sum.", [{"command": fix}]),
        make_output("Write the patch.", [{"command": "git diff -- shop/pricing.py > patch.txt"}]),
        make_output("Submit.", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && cat patch.txt"}]),
    ]


def make_repo(root: Path) -> tuple[Path, str]:
    write_tree(root, SHOP)
    return root, commit_all(root)


def our_config(tmp_path: Path) -> dict[str, Any]:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["agent"]["localizer"]["index_cache_dir"] = str(tmp_path / "index-cache")
    return config


# --- the agent -----------------------------------------------------------------------------------------


def test_agent_from_config_localizes_before_the_first_prompt_and_submits_the_patch(tmp_path):
    repo, _ = make_repo(tmp_path / "repo")
    config = our_config(tmp_path)
    model = RecordingModel(outputs=fix_and_submit())
    env = LocalEnvironment(cwd=str(repo), **config["environment"])
    # the config's agent_class goes through mini-swe-agent's own resolution, as `mini -c` does
    agent = get_agent(model, env, {**config["agent"], "output_path": tmp_path / "run.traj.json"})
    assert type(agent) is LocalizeFirstAgent

    info = agent.run(ISSUE)

    first = model.received[0]
    assert [message["role"] for message in first] == ["system", "user"]
    prompt = first[1]["content"]
    assert ISSUE in prompt
    block = prompt.split("<localization>")[1].split("</localization>")[0]
    ranked = [line.split(". ", 1)[1] for line in block.splitlines() if line.strip()[:2] == "1."]
    # top function, top file
    assert ranked == ["shop/pricing.py::total (function, lines 1-2)", "shop/pricing.py"]
    assert info["exit_status"] == "Submitted"
    assert EXPECTED_DIFF in info["submission"]
    assert info["submission"] == git(repo, "diff", "--", "shop/pricing.py")
    saved = json.loads((tmp_path / "run.traj.json").read_text())
    assert saved["info"]["localization"]["locations"][0] == "shop/pricing.py::total"
    assert saved["info"]["config"]["agent"]["localizer"]["model"] == "retrieval"


def test_a_failed_localization_leaves_a_note_and_the_agent_runs_anyway(tmp_path):
    repo, _ = make_repo(tmp_path / "repo")
    config = our_config(tmp_path)
    config["agent"]["localizer"]["repo_path"] = str(tmp_path / "nowhere")
    model = RecordingModel(outputs=fix_and_submit())
    agent = LocalizeFirstAgent(model, LocalEnvironment(cwd=str(repo)), **config["agent"])
    info = agent.run(ISSUE)
    prompt = model.received[0][1]["content"]
    assert "No localization hints for this task: localization failed" in prompt
    assert "nowhere is not a directory" in prompt
    assert EXPECTED_DIFF in info["submission"]
    assert "not a directory" in agent.serialize()["info"]["localization"]["note"]


@pytest.mark.usefixtures("fresh_grammars")
def test_a_tree_sitter_that_cannot_parse_is_named_in_the_note(tmp_path, monkeypatch):
    # not "the localizer found nothing": an empty index from a runtime that cannot load the grammars
    repo, _ = make_repo(tmp_path / "repo")
    config = our_config(tmp_path)
    break_runtime(monkeypatch, "0.21 Language(ptr, name)")
    model = RecordingModel(outputs=fix_and_submit())
    agent = LocalizeFirstAgent(model, LocalEnvironment(cwd=str(repo)), **config["agent"])
    info = agent.run(ISSUE)
    prompt = model.received[0][1]["content"]
    assert "localization failed (GrammarRuntimeError: tree-sitter" in prompt
    assert "found nothing" not in prompt and EXPECTED_DIFF in info["submission"]


def test_a_given_localization_is_used_as_is_and_the_interactive_variant_resolves(tmp_path):
    repo, _ = make_repo(tmp_path / "repo")
    config = our_config(tmp_path)
    cls = get_agent_class("reposearcher_plugin.hosts.mini_swe_agent.LocalizeFirstInteractiveAgent")
    model = RecordingModel(outputs=fix_and_submit())
    agent = cls(model, LocalEnvironment(cwd=str(repo)), **config["agent"], mode="yolo", confirm_exit=False)
    info = agent.run(ISSUE, localization="look at shop/pricing.py::total")
    assert "look at shop/pricing.py::total" in model.received[0][1]["content"]
    assert info["exit_status"] == "Submitted" and EXPECTED_DIFF in info["submission"]


# --- the SWE-bench runner ------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> dict[str, Path]:
    """One repository under repos/acme+shop and three instances; the third names a commit it lacks."""
    _, commit = make_repo(tmp_path / "repos" / "acme+shop")
    rows = [
        {
            "instance_id": "acme__shop-1",
            "repo": "acme/shop",
            "base_commit": commit,
            "problem_statement": ISSUE,
        },
        {
            "instance_id": "acme__shop-2",
            "repo": "acme/shop",
            "base_commit": commit,
            "problem_statement": "tax",
        },
        {
            "instance_id": "acme__shop-3",
            "repo": "acme/shop",
            "base_commit": "f" * 40,
            "problem_statement": "x",
        },
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"data": data, "repos": tmp_path / "repos", "root": tmp_path}


def test_runner_writes_swebench_predictions_and_resumes(dataset, tmp_path):
    instances = load_instances(str(dataset["data"]))
    workspace = Workspace(dataset["repos"], cache_dir=tmp_path / "snapshots", online=False)
    scripts = {
        "acme__shop-1": fix_and_submit(),
        "acme__shop-2": fix_and_submit("sed -i 's/rate=0.2/rate=0.25/' shop/pricing.py"),
    }
    built: list[str] = []

    def model_factory(instance):
        built.append(instance.instance_id)
        return RecordingModel(outputs=scripts.get(instance.instance_id, []))

    out = tmp_path / "preds.jsonl"
    kwargs = {"config": our_config(tmp_path), "model_factory": model_factory, "work_root": tmp_path / "work"}
    summary = run_swebench(instances, out, workspace, workers=2, **kwargs)
    assert (summary.done, summary.errors, summary.skipped) == (3, 1, 0)
    rows = {row["instance_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert EXPECTED_DIFF in rows["acme__shop-1"]["model_patch"]
    assert "+def tax(amount, rate=0.25):" in rows["acme__shop-2"]["model_patch"]
    assert rows["acme__shop-1"]["model_name_or_path"] == "deterministic"
    assert rows["acme__shop-1"]["exit_status"] == "Submitted"
    assert rows["acme__shop-3"]["model_patch"] == "" and "not found" in rows["acme__shop-3"]["error"]
    trajectory = json.loads((out.parent / rows["acme__shop-1"]["trajectory"]).read_text())
    assert trajectory["instance_id"] == "acme__shop-1"
    assert trajectory["info"]["localization"]["locations"][0] == "shop/pricing.py::total"
    first_prompt = trajectory["messages"][1]["content"]
    assert "shop/pricing.py::total" in first_prompt
    assert not list((tmp_path / "work").iterdir())  # checkouts are removed afterwards
    assert git(dataset["repos"] / "acme+shop", "status", "--porcelain") == ""  # the source is never edited

    built.clear()
    again = run_swebench(instances, out, workspace, **kwargs)
    assert (again.skipped, again.done, built) == (3, 0, [])
    retried = run_swebench(instances, out, workspace, retry_errors=True, **kwargs)
    assert (retried.skipped, retried.done, built) == (2, 1, ["acme__shop-3"])
    assert len(out.read_text().splitlines()) == 3


def test_cli_writes_mini_swe_agent_preds_json_that_swebench_reads(dataset, tmp_path, capsys):
    from swebench.harness.utils import get_predictions_from_file

    # the model is mini-swe-agent's `deterministic` class, scripted from a config file like any other model
    script = tmp_path / "model.yaml"
    script.write_text(yaml.safe_dump({"model": {"outputs": fix_and_submit()}}))
    parser = argparse.ArgumentParser()
    add_mini_command(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "preds.json"
    argv = [
        "mini-swe-agent",
        "swebench",
        "--dataset",
        str(dataset["data"]),
        "--repos-dir",
        str(dataset["repos"]),
        "--offline",
        "--cache-dir",
        str(tmp_path / "snapshots"),
        "--index-cache-dir",
        str(tmp_path / "index-cache"),
        "--out",
        str(out),
        "--model",
        "deterministic",
        "-c",
        str(DEFAULT_CONFIG),
        "-c",
        str(script),
        "--instances",
        "acme__shop-1",
    ]
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    predictions = get_predictions_from_file(str(out), "unused", "test")
    assert [prediction["instance_id"] for prediction in predictions] == ["acme__shop-1"]
    assert EXPECTED_DIFF in predictions[0]["model_patch"]
    assert predictions[0]["model_name_or_path"] == "deterministic"
    assert "1 run" in capsys.readouterr().err
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    assert "0 run in" in (err := capsys.readouterr().err) and "1 already there" in err
    assert len(json.loads(out.read_text())) == 1


def test_key_value_specs_alone_apply_on_top_of_our_config():
    config = load_config(["agent.localizer.top_k=3"])
    assert config["agent"]["agent_class"].endswith("LocalizeFirstAgent")
    assert config["agent"]["localizer"]["top_k"] == 3
    assert "{{localization}}" in config["agent"]["instance_template"]
