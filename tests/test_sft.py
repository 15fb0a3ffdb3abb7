"""`reposearcher sft sample|prepare`: sample the agent, keep what the RL reward likes, feed verl's SFT dataset."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reposearcher_plugin.rl import sft
from reposearcher_plugin.rl.reward import compute_score
from tests.openai_stub import ScriptedReply, StubServer
from tests.test_rl_datasets import run, shop  # noqa: F401  (the synthetic repository fixture)
from tests.tiny_tokenizer import build_tiny_tokenizer

RIGHT = {
    "total() ignores quantity": "```\nshop/pricing.py\nfunction: total\n```",
    "round it": "```\nshop/cart.py\nfunction: Cart.checkout\n```",
}
WRONG = "```\nshop/pricing.py\nfunction: subtotal\n```"


def scripted_agent():
    """Two parallel searches, then an answer: right for shop-1 always, right for shop-3 only the first
    time it is asked (so one of its two samples is rejected), wrong otherwise."""
    lock = threading.Lock()
    asked: dict[str, int] = {}

    def reply(body: dict) -> ScriptedReply:
        issue = body["messages"][1]["content"]
        if not any(message["role"] == "tool" for message in body["messages"]):
            calls = [
                ("search_function", {"function_name": "total"}),
                ("search_class", {"class_name": "Cart"}),
            ]
            return ScriptedReply(content="Let me look.", tool_calls=calls)
        with lock:
            key = next((marker for marker in RIGHT if marker in issue), "")
            asked[key] = asked.get(key, 0) + 1
            first = asked[key] == 1
        if key == "total() ignores quantity" or (key == "round it" and first):
            return ScriptedReply(content=f"Found it.\n{RIGHT[key]}")
        return ScriptedReply(content=WRONG)

    return reply


def sample_args(shop: dict[str, Path], out: Path, server: StubServer) -> list[str]:  # noqa: F811
    return [
        "sft",
        "sample",
        "--dataset",
        str(shop["data"]),
        "--repos-dir",
        str(shop["repos"]),
        "--offline",
        "--cache-dir",
        str(shop["root"] / "snapshots"),
        "--out",
        str(out),
        "--n",
        "2",
        "--model",
        "openai/stub-model",
        "--api-base",
        server.base_url,
        "--retries",
        "0",
        "--temperature",
        "0.7",
        "--instances",
        "shop-1,shop-3",
    ]


@pytest.fixture
def sampled(shop, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("OPENAI_API_KEY", "stub")
    out = tmp_path / "traj"
    with StubServer(scripted_agent(), mode="native") as server:
        assert run(sample_args(shop, out, server)) == 0
        assert run(sample_args(shop, out, server)) == 0  # resumed: nothing left to run, no request made
        requests = len(server.requests)
    assert requests == 8  # 2 samples x 2 instances x 2 turns, the rerun added none
    gold = tmp_path / "gold.json"
    gold.write_text(
        json.dumps({"shop-1": ["shop/pricing.py::total"], "shop-3": ["shop/cart.py::Cart.checkout"]})
    )
    return {"out": out, "gold": gold, **shop}


def prepare(sampled, out: Path, *extra: str) -> int:
    args = ["sft", "prepare", "--trajectories", str(sampled["out"]), "--gold", str(sampled["gold"])]
    return run([*args, "--out", str(out), "--min-reward", "0.5", *extra])


def test_failed_samples_run_again_with_retry_errors(shop, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("OPENAI_API_KEY", "stub")
    out = tmp_path / "traj"
    with StubServer(lambda body: ScriptedReply(status=500), mode="native") as down:
        assert run([*sample_args(shop, out, down), "--n", "1"]) == 0
    failed = [json.loads(line) for line in (out / "sample_0.jsonl").read_text().splitlines()]
    assert len(failed) == 2 and all(row["error"] for row in failed)
    with StubServer(scripted_agent(), mode="native") as up:
        assert run([*sample_args(shop, out, up), "--n", "1"]) == 0  # failed runs count as done
        assert up.requests == []
        assert run([*sample_args(shop, out, up), "--n", "1", "--retry-errors"]) == 0
        assert len(up.requests) == 4
    rows = [json.loads(line) for line in (out / "sample_0.jsonl").read_text().splitlines()]
    assert {row["instance_id"] for row in rows if not row.get("error")} == {"shop-1", "shop-3"}


def test_sample_then_prepare_keeps_what_the_reward_likes(sampled, tmp_path, capsys):
    assert sorted(path.name for path in sampled["out"].glob("*.jsonl")) == [
        "sample_0.jsonl",
        "sample_1.jsonl",
    ]
    out = tmp_path / "sft"
    assert prepare(sampled, out) == 0
    rows = pq.read_table(out / "train.parquet").to_pylist()
    assert sorted(row["instance_id"] for row in rows) == ["shop-1", "shop-1", "shop-3"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejected"] == {"below min reward": 1} and manifest["kept"] == 3
    row = rows[0]
    assert [message["role"] for message in row["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assistant = row["messages"][2]
    assert [call["function"]["name"] for call in assistant["tool_calls"]] == [
        "search_function",
        "search_class",
    ]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"function_name": "total"}
    tool = row["messages"][3]
    assert tool["content"].count("\n</tool_response>\n<tool_response>\n") == 1  # two results, one turn
    tools = json.loads(row["tools"])
    assert {tool["function"]["name"] for tool in tools} >= {"search_function", "submit"}
    assert row["reward"] == 1.0 and "kept 3 of 4" in capsys.readouterr().err

    # the reward read from a rollout's decoded text equals the one prepare read from the messages
    tokenizer = build_tiny_tokenizer()
    gold = json.loads(sampled["gold"].read_text())
    for item in rows:
        messages = sft._decode_messages(item["messages"])
        prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, tokenize=False)
        whole = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer.encode(whole[len(prompt) :], add_special_tokens=False)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        assert compute_score("reposearcher", text, gold[item["instance_id"]])["score"] == item["reward"]

    assert prepare(sampled, tmp_path / "best", "--best-per-instance") == 0
    best = pq.read_table(tmp_path / "best" / "train.parquet").to_pylist()
    assert sorted(row["instance_id"] for row in best) == ["shop-1", "shop-3"]


def test_verl_multiturn_sft_dataset_loads_it(sampled, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
    from verl.utils.import_utils import load_extern_object

    out = tmp_path / "sft"
    assert prepare(sampled, out) == 0
    tokenizer = build_tiny_tokenizer()
    config = OmegaConf.create({"max_length": 8192, "truncation": "error", "pad_mode": "right"})
    # what the recipe names in data.custom_cls: verl's dataset, reading our JSON-string columns
    dataset_cls = load_extern_object("pkg://reposearcher_plugin.rl.sft", "RepoSearcherSFTDataset")
    assert issubclass(dataset_cls, MultiTurnSFTDataset)
    dataset = dataset_cls(str(out / "train.parquet"), tokenizer, config)
    assert len(dataset) == 3
    for number in range(len(dataset)):  # each runs verl's per-turn vs whole-conversation sanity check
        item = dataset[number]
        trained = item["input_ids"][item["loss_mask"].bool()]
        text = tokenizer.decode(trained)
        assert '"arguments": {"function_name": "total"}' in text  # decoded objects, not JSON in a string
        assert "null" not in text and "Found it." in text and "<tool_response>" not in text
    whole = tokenizer.decode(dataset[0]["input_ids"][dataset[0]["attention_mask"].bool()])
    assert whole.count('"name": "search_class"') == 2  # once in the tools block, once as the call
    assert '"file_path": null' not in whole  # tool schemas were not null-filled

    # one tool message per result is what the canonical form holds; verl's sanity check refuses it under a
    # Qwen-style template, which is why results are joined by default
    assert prepare(sampled, tmp_path / "separate", "--join-tool-results", "none") == 0
    separate = dataset_cls(str(tmp_path / "separate" / "train.parquet"), tokenizer, config)
    with pytest.raises(AssertionError, match="apply_chat_template to each turn"):
        separate[0]


def test_prepare_errors(sampled, tmp_path, capsys):
    assert prepare(sampled, tmp_path / "none", "--min-reward", "2") == 2
    assert "no trajectory was kept" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no predictions files"):
        sft.read_trajectories([tmp_path / "empty-dir-that-is-missing"])


def test_max_length_drops_the_rows_verl_would_refuse(sampled, tmp_path, capsys):
    from omegaconf import OmegaConf
    from verl.utils.import_utils import load_extern_object

    tokenizer_dir = tmp_path / "tok"
    build_tiny_tokenizer(save_to=tokenizer_dir)
    out = tmp_path / "all"
    assert prepare(sampled, out, "--max-length", "100000", "--tokenizer", str(tokenizer_dir)) == 0
    rows = pq.read_table(out / "train.parquet").to_pylist()
    dataset_cls = load_extern_object("pkg://reposearcher_plugin.rl.sft", "RepoSearcherSFTDataset")
    config = OmegaConf.create({"max_length": 100000, "truncation": "error", "pad_mode": "right"})
    dataset = dataset_cls(str(out / "train.parquet"), build_tiny_tokenizer(), config)
    # the count prepare records is the length verl's dataset gives the same row
    assert [row["tokens"] for row in rows] == [
        int(dataset[i]["attention_mask"].sum()) for i in range(len(rows))
    ]

    shortest = min(row["tokens"] for row in rows)
    cut = tmp_path / "cut"
    assert prepare(sampled, cut, "--max-length", str(shortest), "--tokenizer", str(tokenizer_dir)) == 0
    manifest = json.loads((cut / "manifest.json").read_text())
    longer = sum(row["tokens"] > shortest for row in rows)
    assert longer and manifest["rejected"][f"longer than {shortest} tokens"] == longer
    assert manifest["train_rows"] == len(rows) - longer
    capsys.readouterr()
    assert prepare(sampled, tmp_path / "x", "--max-length", "10") == 2
    assert "go together" in capsys.readouterr().err
    assert prepare(sampled, tmp_path / "x", "--max-length", "10", "--tokenizer", str(tmp_path / "no")) == 2
    assert "cannot load a tokenizer" in capsys.readouterr().err
