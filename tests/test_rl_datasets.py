"""`reposearcher rl prepare`: verl's RL parquet from a synthetic dataset, loaded by verl's own RLHFDataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reposearcher_plugin.cli.rl_cmd import add_rl_commands
from reposearcher_plugin.tools import openai_tools, profile_specs
from tests.conftest import commit_all, git, write_tree
from tests.tiny_tokenizer import build_tiny_tokenizer

SHOP = {
    "shop/__init__.py": "",
    "shop/cart.py": """
        from shop.pricing import total


        class Cart:
            def __init__(self):
                self.items = []

            def checkout(self):
                return total(self.items)
        """,
    "shop/pricing.py": """
        def total(items):
            return sum(price for price, quantity in items)
        """,
    "README.md": "shop\n",
}
# instance -> (file, old text, new text, issue)
EDITS = {
    "shop-1": (
        "shop/pricing.py",
        "price for price",
        "price * quantity for price",
        "total() ignores quantity",
    ),
    "shop-2": ("README.md", "shop", "shop, a shop", "the README is terse"),  # no source edit: no gold
    "shop-3": ("shop/cart.py", "return total(self.items)", "return round(total(self.items), 2)", "round it"),
    "shop-4": ("shop/cart.py", "self.items = []", "self.items = list()", "Cart.__init__ style"),
}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="reposearcher")
    add_rl_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture
def shop(tmp_path: Path) -> dict[str, Path]:
    """repos/acme+shop at one commit, and a dataset whose rows carry real patches of that commit."""
    repo = write_tree(tmp_path / "repos" / "acme+shop", SHOP)
    commit = commit_all(repo)
    rows = []
    for instance_id, (path, old, new, issue) in EDITS.items():
        target = repo / path
        original = target.read_text()
        target.write_text(original.replace(old, new))
        patch = git(repo, "diff")
        target.write_text(original)
        rows.append(
            {
                "instance_id": instance_id,
                "repo": "acme/shop",
                "base_commit": commit,
                "problem_statement": issue,
                "patch": patch,
            }
        )
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"data": data, "repos": tmp_path / "repos", "root": tmp_path}


def prepare_args(shop: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "rl",
        "prepare",
        "--dataset",
        str(shop["data"]),
        "--repos-dir",
        str(shop["repos"]),
        "--offline",
        "--cache-dir",
        str(shop["root"] / "snapshots"),
        "--out",
        str(out),
        *extra,
    ]


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_prepare_writes_verl_rl_schema_with_derived_gold(shop, tmp_path):
    out = tmp_path / "rl"
    assert run(prepare_args(shop, out, "--test-size", "1")) == 0
    train, test = read_rows(out / "train.parquet"), read_rows(out / "test.parquet")
    rows = train + test
    assert len(train) == 2 and len(test) == 1  # shop-2 has no gold (README only) and is left out
    by_id = {row["extra_info"]["instance_id"]: row for row in rows}
    assert set(by_id) == {"shop-1", "shop-3", "shop-4"}
    assert by_id["shop-1"]["reward_model"] == {"style": "rule", "ground_truth": ["shop/pricing.py::total"]}
    assert by_id["shop-3"]["reward_model"]["ground_truth"] == ["shop/cart.py::Cart.checkout"]
    assert by_id["shop-4"]["reward_model"]["ground_truth"] == ["shop/cart.py::Cart.__init__"]
    row = by_id["shop-1"]
    assert row["data_source"] == "reposearcher" and row["ability"] == "localization"
    assert row["agent_name"] == "tool_agent"
    system, user = row["prompt"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "<tools>" not in system["content"]  # verl's chat template adds the tools; never twice
    assert "total() ignores quantity" in user["content"] and "shop/" in user["content"]  # issue, overview
    names = {spec.name for spec in profile_specs("default")}
    kwargs = row["extra_info"]["tools_kwargs"]
    assert set(kwargs) == names
    commit = json.loads(shop["data"].read_text().splitlines()[0])["base_commit"]
    assert all(
        value == {"create_kwargs": {"repo": "acme/shop", "base_commit": commit}} for value in kwargs.values()
    )
    assert sorted(r["extra_info"]["index"] for r in train) == [0, 1]
    assert {r["extra_info"]["split"] for r in train} == {"train"} and test[0]["extra_info"]["split"] == "test"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["no_gold"] == 1 and manifest["train"] == 2


def test_exclusion_gold_file_and_test_dataset(shop, tmp_path):
    exclude = tmp_path / "verified_ids.txt"
    exclude.write_text("shop-3\n")
    gold = tmp_path / "gold.json"
    gold.write_text(
        json.dumps(
            {
                "shop-1": ["shop/pricing.py::total"],
                "shop-2": [],
                "shop-3": ["x.py::y"],
                "shop-4": ["shop/cart.py"],
            }
        )
    )
    tests = tmp_path / "tests.jsonl"
    tests.write_text(shop["data"].read_text().splitlines()[3] + "\n")  # shop-4 only
    out = tmp_path / "rl"
    args = prepare_args(
        shop, out, "--gold", str(gold), "--exclude", str(exclude), "--test-dataset", str(tests)
    )
    assert run(args) == 0
    train, test = read_rows(out / "train.parquet"), read_rows(out / "test.parquet")
    assert [row["extra_info"]["instance_id"] for row in train] == ["shop-1"]  # 2: no gold, 3: excluded
    assert [row["extra_info"]["instance_id"] for row in test] == ["shop-4"]  # never in train as well
    assert test[0]["reward_model"]["ground_truth"] == ["shop/cart.py"]


def test_clear_errors(shop, tmp_path, capsys):
    assert run(prepare_args(shop, tmp_path / "o", "--test-size", "3")) == 2
    assert "leaves no training rows" in capsys.readouterr().err
    missing = ["--gold", str(tmp_path / "nope.json")]
    assert run(prepare_args(shop, tmp_path / "o", *missing)) == 2
    assert "cannot read gold file" in capsys.readouterr().err


def test_verl_rlhf_dataset_loads_the_parquet(shop, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = tmp_path / "rl"
    assert run(prepare_args(shop, out, "--test-size", "1")) == 0
    # the tool config as a recipe writes it: our schemas, on any BaseTool (the adapter is tested elsewhere)
    tools = [
        {"class_name": "verl.tools.base_tool.BaseTool", "config": {"type": "native"}, "tool_schema": schema}
        for schema in openai_tools(profile_specs("default"))
    ]
    tool_config = tmp_path / "tools.yaml"
    tool_config.write_text(json.dumps({"tools": tools}))
    tokenizer = build_tiny_tokenizer()
    config = OmegaConf.create(
        {
            "max_prompt_length": 100_000,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "tool_config_path": str(tool_config),
            "cache_dir": str(tmp_path / "verl-cache"),
        }
    )
    dataset = RLHFDataset(str(out / "train.parquet"), tokenizer, config)
    assert dataset.tool_schemas and len(dataset.tool_schemas) == len(tools)
    assert len(dataset) == 2  # nothing dropped: templating with the tools worked for every row
    item = dataset[0]
    assert [message["role"] for message in item["raw_prompt"]] == ["system", "user"]
    assert set(item["tools_kwargs"]) == {spec.name for spec in profile_specs("default")}
    assert item["agent_name"] == "tool_agent"
    assert list(item["reward_model"]["ground_truth"])
    rendered = tokenizer.apply_chat_template(item["raw_prompt"], tools=dataset.tool_schemas, tokenize=False)
    assert rendered.count('"name": "search_function"') == 1  # the tools appear once, from the template
