"""The verl recipes against verl 0.9.1 itself, on CPU.

- The GRPO, smoke and SFT recipes compose with verl's own entry points (``--cfg job``: Hydra prints the
  composed config and exits before any Ray, GPU or model) and hold our settings.
- The launch scripts parse and name files that exist.
- One whole trajectory through verl's ``ToolAgentLoop``: the only scripted part is the model (a server
  manager that returns the token ids of fixed assistant texts); verl's loop, its continuous-token prompt
  builder, its hermes parser, our ``RepoSearcherTool`` on a real git repository, and verl's naive reward
  manager calling our ``compute_score`` are all real.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

RECIPES = Path(__file__).resolve().parents[1] / "verl_recipes"
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HYDRA_FULL_ERROR": "1"}


def cfg_job_command(module: str, config_name: str, *overrides: str) -> list[str]:
    """verl's own entry point with ``--cfg job``: Hydra prints the composed config and exits before any
    training code runs."""
    command = [sys.executable, "-m", module, "--config-path", str(RECIPES), "--config-name", config_name]
    return [*command, *overrides, "--cfg", "job"]


class Jobs:
    """Every ``--cfg job`` run of this module, started at once (each spends ~7 s importing verl)."""

    def __init__(self, launch_dir: Path) -> None:
        self.launch_dir = launch_dir
        grpo_script = [str(RECIPES / "run_grpo.sh")]
        script_env = {**ENV, "DRY_RUN": "1", "DATA_DIR": "data"}
        specs: dict[str, tuple[list[str], dict[str, str]]] = {
            "grpo": (cfg_job_command("verl.trainer.main_ppo", "reposearcher_grpo"), ENV),
            "smoke": (cfg_job_command("verl.trainer.main_ppo", "reposearcher_grpo_smoke"), ENV),
            "sft": (
                cfg_job_command(
                    "verl.trainer.sft_trainer", "reposearcher_sft", "data.train_files=/abs/t.parquet"
                ),
                ENV,
            ),
            # launched from another directory: every path must still come out absolute and right
            "script": (grpo_script, {**script_env, "SMOKE": "0"}),
            "script-smoke": (grpo_script, {**script_env, "SMOKE": "1"}),
            "sft-script": ([str(RECIPES / "run_sft.sh")], script_env),
            "sft-script-cpu": ([str(RECIPES / "run_sft.sh")], {**script_env, "DEVICE": "cpu"}),
        }
        self.processes = {
            name: subprocess.Popen(
                command, cwd=launch_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for name, (command, env) in specs.items()
        }

    def config(self, name: str) -> dict[str, Any]:
        stdout, stderr = self.processes[name].communicate(timeout=300)
        assert self.processes[name].returncode == 0, stderr[-3000:]
        return yaml.safe_load(stdout)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Jobs:
    return Jobs(tmp_path_factory.mktemp("launch"))


def composed(config_name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


@pytest.fixture(scope="module")
def grpo(jobs: Jobs) -> dict[str, Any]:
    return jobs.config("grpo")


def test_grpo_recipe_composes_with_our_settings(grpo: dict[str, Any]) -> None:
    rollout = grpo["actor_rollout_ref"]["rollout"]
    assert grpo["algorithm"]["adv_estimator"] == "grpo"
    assert grpo["algorithm"]["use_kl_in_reward"] is False
    assert grpo["actor_rollout_ref"]["actor"]["use_kl_loss"] is False
    assert grpo["actor_rollout_ref"]["actor"]["optim"]["lr"] == pytest.approx(1e-6)
    assert grpo["data"]["train_batch_size"] == 128 and rollout["n"] == 16
    assert rollout["name"] == "vllm" and rollout["agent"]["default_agent_loop"] == "tool_agent"
    multi_turn = rollout["multi_turn"]
    assert multi_turn["enable"] is True and multi_turn["format"] == "hermes"
    assert multi_turn["max_assistant_turns"] == 10
    assert multi_turn["max_tool_response_length"] >= 16_000 + 500  # above the tool's own cut + exit prompt
    assert multi_turn["max_parallel_calls"] == 8
    assert multi_turn["tool_config_path"] == "verl_recipes/tool_config_default.yaml"
    assert (RECIPES.parent / multi_turn["tool_config_path"]).is_file()
    reward = grpo["reward"]
    assert reward["custom_reward_function"] == {
        "path": "pkg://reposearcher_plugin.rl.reward",
        "name": "compute_score",
    }
    assert reward["reward_manager"]["name"] == "naive"
    assert grpo["data"]["max_prompt_length"] + grpo["data"]["max_response_length"] == 32768


def test_grpo_recipe_passes_verls_validation_and_loads_the_reward() -> None:
    """What ``main_ppo.main`` checks before starting Ray, and the reward function verl would load."""
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    from reposearcher_plugin.rl import reward

    config = composed("reposearcher_grpo")
    with pytest.warns(UserWarning, match="Disabled critic"):  # verl's note that GRPO trains no critic
        assert not need_reference_policy(config) and not need_critic(config)  # GRPO without KL: actor only
    with contextlib.redirect_stdout(io.StringIO()):
        validate_config(config, use_reference_policy=False, use_critic=False)
    multi_turn = omega_conf_to_dataclass(config.actor_rollout_ref.rollout).multi_turn
    assert multi_turn.max_assistant_turns == 10 and multi_turn.format == "hermes"
    fn = get_custom_reward_fn(config)
    assert fn.args[0] is reward.compute_score  # functools.partial(_call_with_kwargs, raw_fn, reward_kwargs)


def test_smoke_recipe_is_the_full_recipe_made_small(jobs: Jobs) -> None:
    smoke = jobs.config("smoke")
    rollout = smoke["actor_rollout_ref"]["rollout"]
    assert smoke["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert smoke["data"]["train_batch_size"] == 4 and rollout["n"] == 2
    assert smoke["trainer"]["n_gpus_per_node"] == 1 and rollout["tensor_model_parallel_size"] == 1
    # everything else is inherited from the full recipe
    assert smoke["algorithm"]["adv_estimator"] == "grpo"
    assert rollout["agent"]["default_agent_loop"] == "tool_agent"
    assert smoke["reward"]["custom_reward_function"]["path"] == "pkg://reposearcher_plugin.rl.reward"
    assert rollout["multi_turn"]["max_assistant_turns"] == 10


def test_sft_recipe_composes_with_the_multiturn_dataset_settings(jobs: Jobs) -> None:
    sft = jobs.config("sft")
    data = sft["data"]
    assert data["messages_key"] == "messages" and data["tools_key"] == "tools"
    assert data["custom_cls"] == {
        "path": "pkg://reposearcher_plugin.rl.sft",
        "name": "RepoSearcherSFTDataset",
    }
    # the class verl's create_sft_dataset would load is verl's multi-turn dataset, with our decoding
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
    from verl.utils.import_utils import load_extern_object

    dataset_cls = load_extern_object(data["custom_cls"]["path"], data["custom_cls"]["name"])
    assert issubclass(dataset_cls, MultiTurnSFTDataset)
    assert data["train_files"] == "/abs/t.parquet" and data["max_length"] == 32768
    assert "hf_model" in sft["checkpoint"]["save_contents"]  # what run_grpo.sh's MODEL_PATH points at


def test_scripts_parse_and_name_files_that_exist(tmp_path: Path) -> None:
    for script in ("run_grpo.sh", "run_sft.sh"):
        path = RECIPES / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True)
        text = path.read_text()
        for name in re.findall(r"--config-name \"?\$?\{?(\w+)", text):
            if name not in ("CONFIG_NAME",):
                assert (RECIPES / f"{name}.yaml").is_file(), name
        for referenced in re.findall(r"\$HERE/([\w./-]+)", text):
            assert (RECIPES / referenced).exists(), referenced
    assert "reposearcher_grpo_smoke" in (RECIPES / "run_grpo.sh").read_text()
    for name in ("reposearcher_grpo", "reposearcher_grpo_smoke", "reposearcher_sft"):
        assert (RECIPES / f"{name}.yaml").is_file()


@pytest.mark.parametrize("job", ["script", "script-smoke"])
def test_run_grpo_dry_run_passes_absolute_paths(jobs: Jobs, job: str) -> None:
    config = jobs.config(job)
    tool_config = config["actor_rollout_ref"]["rollout"]["multi_turn"]["tool_config_path"]
    assert tool_config == str(RECIPES / "tool_config_default.yaml")
    assert config["data"]["train_files"] == str(jobs.launch_dir / "data" / "train.parquet")
    assert config["trainer"]["n_gpus_per_node"] == (1 if job == "script-smoke" else 8)
    assert config["trainer"]["default_local_dir"].startswith("/")


@pytest.mark.parametrize("job", ["sft-script", "sft-script-cpu"])
def test_run_sft_dry_run_gpu_and_cpu_modes(jobs: Jobs, job: str) -> None:
    """run_sft.sh's default (GPU) mode is the recipe as it stands; DEVICE=cpu adds what verl needs on CPU
    (tests/test_sft_cpu.py trains with it)."""
    config = jobs.config(job)
    assert config["data"]["train_files"] == str(jobs.launch_dir / "data" / "train.parquet")
    assert config["trainer"]["default_local_dir"].startswith("/")
    if job == "sft-script":
        assert config["trainer"]["device"] == "cuda" and config["trainer"]["n_gpus_per_node"] == 8
        assert config["engine"]["strategy"] == "fsdp" and config["model"]["use_remove_padding"] is True
        assert config["model"]["override_config"] == {}
        return
    assert config["trainer"]["device"] == "cpu" and config["trainer"]["n_gpus_per_node"] == 1
    assert config["engine"]["strategy"] == "fsdp2" and config["engine"]["use_torch_compile"] is False
    assert config["model"]["use_remove_padding"] is False
    assert config["model"]["override_config"] == {"attn_implementation": "sdpa"}
    assert config["data"]["num_workers"] == 0
    assert config["data"]["use_dynamic_bsz"] is False and config["data"]["micro_batch_size_per_gpu"] == 1


# --- one trajectory through verl's ToolAgentLoop ------------------------------------------------------

PRICING = "def total(items):\n    return sum(price * quantity for price, quantity in items)\n"
CART = "from shop.pricing import total\n\n\nclass Cart:\n    def checkout(self):\n        return total(self.items)\n"
GOLD = ["shop/pricing.py::total"]
ANSWER = "The total ignores discounts.\n```\nshop/pricing.py\nfunction: total\n```"


def tool_call(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


SCRIPT = [
    "Let me look at the cart first.\n" + tool_call("search_class", {"class_name": "Cart"}),
    tool_call("search_function", {"function_name": "total"}),
    ANSWER,
]


class ScriptedServer:
    """verl's server manager interface (``generate(request_id, prompt_ids, sampling_params, ...)``) with a
    fixed script for a model: each call returns the next reply's token ids, ended by ``<|im_end|>`` as a
    chat model's generation is. Records the prompts it was sent."""

    def __init__(self, tokenizer: Any, replies: list[str]) -> None:
        self.tokenizer = tokenizer
        self.replies = list(replies)
        self.prompts: list[list[int]] = []

    async def generate(self, *, request_id: str, prompt_ids: list[int], sampling_params: dict, **_: Any):
        from verl.workers.rollout.replica import TokenOutput

        self.prompts.append(list(prompt_ids))
        text = self.replies.pop(0)
        ids = [*self.tokenizer.encode(text, add_special_tokens=False), self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, stop_reason="completed")


@pytest.fixture(scope="module")
def shop_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from tests.conftest import git, write_tree

    repos = tmp_path_factory.mktemp("repos")
    root = repos / "acme+shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_tree(root, {"shop/__init__.py": "", "shop/pricing.py": PRICING, "shop/cart.py": CART})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "shop")
    return repos, git(root, "rev-parse", "HEAD").strip()


def test_tool_agent_loop_runs_a_whole_trajectory_and_the_reward_scores_it(shop_repo, tmp_path) -> None:
    pytest.importorskip("reposearcher_plugin.rl.datasets")
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    from verl.tools.tool_registry import initialize_tools_from_config
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from reposearcher_plugin.evaluation.instances import Instance
    from reposearcher_plugin.index import ParseCache, build_index
    from reposearcher_plugin.rl.datasets import build_row
    from reposearcher_plugin.rl.verl_tools import write_tool_config
    from reposearcher_plugin.tools import RepoTools, ToolBox
    from reposearcher_plugin.workspace import Workspace
    from tests.tiny_tokenizer import build_tiny_tokenizer

    repos, commit = shop_repo
    tool_config = write_tool_config(
        tmp_path / "tools.yaml",
        repos_dir=str(repos),
        snapshot_dir=str(tmp_path / "snapshots"),
        index_cache_dir=str(tmp_path / "parse-cache"),
    )
    # the recipe itself, with only the tool config swapped for one pointing at the test repository
    config = composed(
        "reposearcher_grpo", f"actor_rollout_ref.rollout.multi_turn.tool_config_path={tool_config}"
    )
    tokenizer = build_tiny_tokenizer()
    instance = Instance("acme__shop-1", "acme/shop", commit, "Cart.checkout ignores discounts in the total.")
    reference = build_index(
        Workspace(repos, tmp_path / "ref", online=False).checkout("acme/shop", commit),
        cache=ParseCache(tmp_path / "ref-cache"),
        workers=1,
    )
    row = build_row(instance, GOLD, RepoTools(reference), "default", 0)
    assert row["agent_name"] == config.actor_rollout_ref.rollout.agent.default_agent_loop

    with contextlib.redirect_stdout(io.StringIO()):  # BaseTool.__init__ prints every schema
        tools = initialize_tools_from_config(config.actor_rollout_ref.rollout.multi_turn.tool_config_path)
    server = ScriptedServer(tokenizer, SCRIPT)

    async def rollout():
        loop = ToolAgentLoop(
            trainer_config=DictConfigWrap(config),
            server_manager=server,
            tokenizer=tokenizer,
            processor=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data),
            tools=ToolListWrap(tools),
        )
        # the keyword arguments AgentLoopWorker passes: the dataset row's fields (RLHFDataset puts
        # extra_info.tools_kwargs under tools_kwargs and the messages under raw_prompt)
        return await loop.run(
            {"temperature": 1.0},
            raw_prompt=row["prompt"],
            tools_kwargs=row["extra_info"]["tools_kwargs"],
            extra_info=row["extra_info"],
            index=0,
        )

    output = asyncio.run(rollout())
    assert not server.replies  # all three turns were asked for
    assert output.num_turns == 1 + 3 + 2  # prompt, three assistant turns, two tool-result turns

    # the observations in the trajectory are exactly what our tools say at inference
    box = ToolBox(reference, "default")
    response = tokenizer.decode(output.response_ids, skip_special_tokens=False)
    for name, arguments in (
        ("search_class", {"class_name": "Cart"}),
        ("search_function", {"function_name": "total"}),
    ):
        observation = box.call(name, arguments)
        assert observation.ok
        assert f"<tool_response>\n{observation.text}\n</tool_response>" in response
    assert "Error executing tool" not in response and "Unknown function" not in response
    assert response.rstrip().endswith(ANSWER + "<|im_end|>")
    # model tokens are trained on, tool-result tokens are not
    mask = output.response_mask
    assert len(mask) == len(output.response_ids) and 0 < sum(mask) < len(mask)
    model_text = tokenizer.decode([t for t, m in zip(output.response_ids, mask, strict=True) if m])
    assert "<tool_response>" not in model_text and "function: total" in model_text
    # the first prompt the model saw is the recipe's chat template output with our tool schemas in it
    first_prompt = tokenizer.decode(server.prompts[0], skip_special_tokens=False)
    assert '"name": "search_function"' in first_prompt and "Cart.checkout ignores discounts" in first_prompt

    # verl's reward manager, loaded from the recipe, scores the padded batch as the trainer hands it over
    async def score(ground_truth: list[str]) -> dict[str, Any]:
        manager = load_reward_manager(config, tokenizer)  # binds the running event loop, as in verl's worker
        return await manager.run_single(padded_batch(output, tokenizer, config, row, ground_truth))

    gold = asyncio.run(score(GOLD))
    assert gold["reward_score"] == 1.0 and gold["reward_extra_info"]["score"] == 1.0
    assert asyncio.run(score(["shop/cart.py::Cart.checkout"]))["reward_score"] == 0.0


def padded_batch(output: Any, tokenizer: Any, config: DictConfig, row: dict, ground_truth: list[str]):
    """One trajectory as ``AgentLoopWorker._agent_loop_postprocess`` lays it out: prompt left-padded to
    rollout.prompt_length, response right-padded to rollout.response_length, attention mask over both."""
    from verl import DataProto

    rollout = config.actor_rollout_ref.rollout
    prompt_length = OmegaConf.select(config, "data.max_prompt_length")
    response_length = OmegaConf.select(config, "data.max_response_length")
    assert rollout.prompt_length == prompt_length and rollout.response_length == response_length
    pad = tokenizer.pad_token_id
    prompt, response = list(output.prompt_ids), list(output.response_ids)
    prompts = torch.tensor([[pad] * (prompt_length - len(prompt)) + prompt])
    responses = torch.tensor([response + [pad] * (response_length - len(response))])
    attention = torch.tensor(
        [
            [0] * (prompt_length - len(prompt))
            + [1] * (len(prompt) + len(response))
            + [0] * (response_length - len(response))
        ]
    )
    extra_info = dict(row["extra_info"])
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": attention},
        non_tensors={
            "data_source": np.array([row["data_source"]], dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": ground_truth}], dtype=object),
            "extra_info": np.array([extra_info], dtype=object),
            "__num_turns__": np.array([output.num_turns], dtype=object),
        },
    )
