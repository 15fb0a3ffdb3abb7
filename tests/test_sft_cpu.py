"""ToolTrain's SFT stage end to end on CPU, through verl 0.9.1's own trainer.

Trajectories of our tool format (real tool observations over a synthetic repository, scripted assistant
turns) -> ``reposearcher sft prepare`` -> ``verl_recipes/run_sft.sh`` with ``DEVICE=cpu`` (torchrun ->
``verl.trainer.sft_trainer`` on the ``cpu`` platform of ``reposearcher_plugin.rl.cpu_platform``) on a
tiny random Qwen2 that the test builds. The run repeats one small batch, so the loss must fall, and the
checkpoint's Hugging Face folder (what ``run_grpo.sh`` would start from) must load in transformers.

Nothing is downloaded. About a minute on 2 shared cores: ~20 s of it is torchrun importing verl and torch,
then ~1-3 s a step and the checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import commit_all, write_tree

RECIPES = Path(__file__).resolve().parents[1] / "verl_recipes"

REPO = {
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


        def discount(amount, percent):
            return amount * (1 - percent / 100)
        """,
}

# instance -> (issue, tool calls of the first assistant turn, gold, the answer block)
INSTANCES: dict[str, tuple[str, list[tuple[str, dict[str, Any]]], list[str], str]] = {
    "shop-1": (
        "Cart.checkout() ignores the quantity: two items at 5 cost 5, not 10.",
        [("search_class_method", {"class_name": "Cart", "method_name": "checkout"})],
        ["shop/pricing.py::total"],
        "shop/pricing.py\nfunction: total",
    ),
    "shop-2": (
        "discount() with percent=100 should give 0 but gives a tiny negative number when rounding.",
        [("search_function", {"function_name": "discount"})],
        ["shop/pricing.py::discount"],
        "shop/pricing.py\nfunction: discount",
    ),
    "shop-3": (
        "Cart.add() accepts a negative quantity; it should raise ValueError.",
        [("search_class", {"class_name": "Cart"}), ("get_imports_of_file", {"file": "shop/cart.py"})],
        ["shop/cart.py::Cart.add"],
        "shop/cart.py\nfunction: Cart.add",
    ),
    "shop-4": (
        "total() of an empty cart should be 0.0 (a float), not 0.",
        [("search_function", {"function_name": "total"})],
        ["shop/pricing.py::total"],
        "shop/pricing.py\nfunction: total",
    ),
    "shop-5": (
        "Cart() shares its items list between instances after copy.copy(cart).",
        [("search_class_method", {"class_name": "Cart", "method_name": "__init__"})],
        ["shop/cart.py::Cart.__init__"],
        "shop/cart.py\nfunction: Cart.__init__",
    ),
    "shop-6": (
        "checkout() should apply a discount code; where is the total computed?",
        [
            ("search_class_method", {"class_name": "Cart", "method_name": "checkout"}),
            ("search_function", {"function_name": "discount"}),
        ],
        ["shop/cart.py::Cart.checkout"],
        "shop/cart.py\nfunction: Cart.checkout\nshop/pricing.py\nfunction: discount",
    ),
    "shop-7": (
        "discount(10, 150) returns a negative amount; percent above 100 must be refused.",
        [("search_code", {"query": "percent"})],
        ["shop/pricing.py::discount"],
        "shop/pricing.py\nfunction: discount",
    ),
    "shop-8": (
        "Adding the same price twice with Cart.add should merge the quantities.",
        [("get_imports_of_file", {"file": "shop/cart.py"}), ("search_class", {"class_name": "Cart"})],
        ["shop/cart.py::Cart.add"],
        "shop/cart.py\nfunction: Cart.add",
    ),
}


def write_trajectories(root: Path, instances: int = len(INSTANCES)) -> tuple[Path, Path]:
    """A repository under ``root``, and one predictions file of agent trajectories over it (one for each of
    the first ``instances`` of :data:`INSTANCES`) as ``reposearcher run`` / ``sft sample`` write them: the
    prompt is the agent's own, every observation is what our tools return, only the assistant turns are
    scripted.

    Returns (trajectories directory, gold JSON)."""
    from reposearcher_plugin.agent import chat
    from reposearcher_plugin.agent.result import Trajectory
    from reposearcher_plugin.index import ParseCache, build_index
    from reposearcher_plugin.tools import ToolBox, profile_specs

    repo = write_tree(root / "repos" / "acme+shop", REPO)
    commit_all(repo)
    box = ToolBox(build_index(repo, cache=ParseCache(root / "parse-cache"), workers=1), "default")
    specs = profile_specs("default")
    overview = box.call("get_repo_structure", {}).text
    rows = []
    for instance_id, (issue, calls, _gold, answer) in list(INSTANCES.items())[:instances]:
        messages = chat.default_prompt(issue, overview, specs, "native", top_k=5)
        ids = [f"call_{number}" for number in range(len(calls))]
        messages.append(
            {
                "role": "assistant",
                "content": "Let me look at what the issue names.",
                "tool_calls": [
                    {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                    for id_, (name, args) in zip(ids, calls, strict=True)
                ],
            }
        )
        for id_, (name, args) in zip(ids, calls, strict=True):
            observation = box.call(name, args)
            assert observation.ok, observation.text
            messages.append({"role": "tool", "tool_call_id": id_, "name": name, "content": observation.text})
        messages.append({"role": "assistant", "content": f"Found it.\n```\n{answer}\n```"})
        trajectory = Trajectory(
            instance_id=instance_id,
            model="scripted-teacher",
            profile="default",
            tool_format="native",
            issue=issue,
            repo="acme/shop",
            messages=messages,
            answer=answer,
        )
        rows.append({"instance_id": instance_id, "trajectory": trajectory.to_dict()})
    trajectories = root / "trajectories"
    trajectories.mkdir()
    (trajectories / "sample_0.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    gold = root / "gold.json"
    gold.write_text(json.dumps({instance_id: spec[2] for instance_id, spec in INSTANCES.items()}))
    return trajectories, gold


def prepare_sft_data(root: Path, instances: int = len(INSTANCES)) -> Path:
    """``reposearcher sft prepare`` over :func:`write_trajectories`; returns the directory of train.parquet."""
    from tests.test_rl_datasets import run

    trajectories, gold = write_trajectories(root, instances)
    out = root / "sft"
    assert (
        run(["sft", "prepare", "--trajectories", str(trajectories), "--gold", str(gold), "--out", str(out)])
        == 0
    )
    return out


def build_tiny_qwen2(path: Path, train_parquet: Path) -> Path:
    """A random 2-layer Qwen2 (~60k parameters) with the tiny Qwen-like tokenizer, as a local HF folder.

    The tokenizer also learns merges from the conversations it will see (about 1,500 tokens each instead
    of 3,500 nearly byte-level ones), and the model has one attention head: on CPU, sdpa over the padded
    conversations is most of a step's time, and it grows with the square of their length."""
    import pyarrow.parquet as pq
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from reposearcher_plugin.rl import sft
    from tests.tiny_tokenizer import build_tiny_tokenizer

    template = build_tiny_tokenizer()
    corpus = [
        template.apply_chat_template(
            sft._decode_messages(row["messages"]), tools=sft._decode_tools(row["tools"]), tokenize=False
        )
        for row in pq.read_table(train_parquet).to_pylist()
    ]
    tokenizer = build_tiny_tokenizer(path, corpus=corpus, vocab_size=2000)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=16384,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


LOSS = re.compile(r"step:(\d+) - .*?train/loss:([-\d.eE+]+)")


def logged_losses(console: str) -> dict[int, float]:
    """verl's console logger prints one line per step: ``step:N - train/loss:X - train/grad_norm:...``."""
    return {int(step): float(loss) for step, loss in LOSS.findall(console)}


def test_sft_trains_on_cpu_through_verls_trainer(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from transformers import AutoModelForCausalLM

    batch = 2
    data = prepare_sft_data(tmp_path, instances=batch)
    assert pq.read_metadata(data / "train.parquet").num_rows == batch
    model = build_tiny_qwen2(tmp_path / "tiny-qwen2", data / "train.parquet")
    ckpt = tmp_path / "ckpt"
    steps = 5
    env = {
        **os.environ,
        "DEVICE": "cpu",
        "MODEL_PATH": str(model),
        "DATA_DIR": str(data),
        "CKPT_DIR": str(ckpt),
        "NPROC": "1",
        "PYTHONPATH": os.pathsep.join([str(RECIPES.parent), os.environ.get("PYTHONPATH", "")]),
    }
    overrides = [
        # the whole (tiny) set is one batch, seen `steps` times
        f"data.train_batch_size={batch}",
        f"trainer.total_training_steps={steps}",
        f"trainer.total_epochs={steps}",
        "data.max_length=8192",
        "optim.lr=1e-2",
        "optim.lr_warmup_steps_ratio=0",
        "optim.lr_scheduler_type=constant",
        "optim.weight_decay=0",
        "engine.dtype=float32",  # a tiny random model learns more steadily without bf16 rounding
        "model.enable_gradient_checkpointing=false",
    ]
    result = subprocess.run(
        ["bash", str(RECIPES / "run_sft.sh"), *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-6000:]

    losses = logged_losses(console)
    assert sorted(losses) == list(range(1, steps + 1)), console[-3000:]
    assert losses[steps] < 0.85 * losses[1], losses  # the repeated batch is being learned
    assert all(losses[step] < losses[1] for step in range(3, steps + 1)), losses

    hf = ckpt / f"global_step_{steps}" / "huggingface"
    assert (hf / "config.json").is_file(), sorted(p.name for p in ckpt.rglob("*"))
    trained = AutoModelForCausalLM.from_pretrained(hf)
    assert trained.config.model_type == "qwen2" and trained.config.num_hidden_layers == 2
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == str(steps)


def test_cpu_platform_is_registered_and_never_auto_detected() -> None:
    """Importing the plugin registers ``cpu`` and selects nothing: verl picks it only for VERL_PLATFORM=cpu
    (the training test above is that case)."""
    import torch
    import verl.utils.distributed
    from verl.plugin.platform import PlatformRegistry

    from reposearcher_plugin.rl.cpu_platform import ENV, PlatformCPU

    assert PlatformRegistry.get("cpu") is PlatformCPU
    platform = PlatformCPU()
    assert platform.is_platform_available(use_smi_check=True) is False  # auto-detection skips it
    assert platform.device_name == "cpu" and platform.communication_backend_name() == "gloo"
    assert platform.current_device() == "cpu"  # what verl hands to tensor.to(...)
    device = platform.device_module
    assert device.Stream is torch.cpu.Stream and device.is_available()
    assert device.memory_reserved() == 0 and device.max_memory_allocated() == 0
    available, total = device.mem_get_info()
    assert 0 < available <= total
    state = device.get_rng_state()
    first = torch.rand(1)
    device.set_rng_state(state)
    assert torch.equal(torch.rand(1), first)
    assert ENV == {
        "VERL_USE_EXTERNAL_MODULES": "reposearcher_plugin.rl.cpu_platform",
        "VERL_PLATFORM": "cpu",
        "VERL_ENGINE_DEVICE": "cuda",
    }
    if os.environ.get("VERL_PLATFORM", "") != "cpu":  # verl's process-group setup is untouched
        assert not hasattr(verl.utils.distributed.initialize_global_process_group, "_reposearcher_cpu")
