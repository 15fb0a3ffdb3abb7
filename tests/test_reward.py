"""The RL reward: only the model's final answer counts, scored like the evaluation; and verl calls it."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from reposearcher_plugin.rl.reward import (
    RewardConfig,
    answer_from_messages,
    assistant_turns,
    compute_score,
)

GOLD = ["shop/pricing.py::total", "shop/cart.py::Cart.checkout"]
BOTH = "```\nshop/pricing.py\nfunction: total\nshop/cart.py\nfunction: Cart.checkout\n```"
WRONG = "```\nshop/shipping.py\nfunction: shipping_cost\n```"
SECOND_ONLY = "```\nshop/shipping.py\nfunction: shipping_cost\nshop/cart.py\nfunction: Cart.checkout\n```"
CALL = '<tool_call>\n{"name": "search_function", "arguments": {"function_name": "total"}}\n</tool_call>'
OBSERVATION = "shop/pricing.py::total (lines 1-2)\ndef total(items): ..."


def stripped(*turns: str) -> str:
    """A rollout as verl decodes it by default (skip_special_tokens=True): alternating assistant turns and
    tool-result turns; the first assistant header is in the prompt."""
    parts = []
    for number, turn in enumerate(turns):
        if number % 2:
            parts.append(f"\nuser\n<tool_response>\n{turn}\n</tool_response>\nassistant\n")
        else:
            parts.append(turn)
    return "".join(parts)


def kept(*turns: str) -> str:
    """The same rollout decoded with Qwen's special tokens kept."""
    parts = []
    for number, turn in enumerate(turns):
        if number % 2:
            parts.append(
                f"<|im_end|>\n<|im_start|>user\n<tool_response>\n{turn}\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n"
            )
        else:
            parts.append(turn)
    return "".join(parts) + "<|im_end|>"


@pytest.mark.parametrize("render", [stripped, kept])
def test_gold_wrong_partial(render):
    assert compute_score("reposearcher", render(f"Looking.\n{CALL}", OBSERVATION, BOTH), GOLD)["score"] == 1.0
    assert (
        compute_score("reposearcher", render(f"Looking.\n{CALL}", OBSERVATION, WRONG), GOLD)["score"] == 0.0
    )
    partial = compute_score("reposearcher", render(f"Looking.\n{CALL}", OBSERVATION, SECOND_ONLY), GOLD)
    # one hit at rank 2 of 2 gold: (1/log2 3) / (1 + 1/log2 3)
    assert partial["score"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert partial["recall@5"] == 0.5 and partial["file_recall@5"] == 0.5 and partial["parsed"] == 1.0


def test_single_turn_answer_and_result_keys():
    result = compute_score("reposearcher", f"<think>maybe {WRONG}</think>\n{BOTH}", GOLD)
    assert result["score"] == 1.0  # reasoning that quotes a rejected candidate is not the answer
    assert set(result) == set(compute_score("reposearcher", "", GOLD))  # verl needs the same keys every time
    assert all(isinstance(value, float) for value in result.values())


@pytest.mark.parametrize("render", [stripped, kept])
def test_an_answer_inside_a_tool_result_never_counts(render):
    # the rollout ended on a tool result whose text is a perfect answer (a file holding one, say)
    response = render(f"Looking.\n{CALL}", BOTH)
    assert compute_score("reposearcher", response, GOLD)["score"] == 0.0
    # ... and a final turn with no answer does not inherit it
    assert (
        compute_score("reposearcher", render(f"Looking.\n{CALL}", BOTH, "I give up."), GOLD)["parsed"] == 0.0
    )
    # ... nor does a result cut off by the response length
    cut = render(f"Looking.\n{CALL}", OBSERVATION, f"More.\n{CALL}", BOTH).rsplit("</tool_response>", 1)[0]
    assert compute_score("reposearcher", cut, GOLD)["score"] == 0.0
    # a literal </tool_response> inside a tool's output does not end the result early
    sneaky = render(f"Looking.\n{CALL}", f"x = '</tool_response>'\n{BOTH}")
    assert compute_score("reposearcher", sneaky, GOLD)["score"] == 0.0
    turns, truncated = assistant_turns(render(f"Looking.\n{CALL}", OBSERVATION, BOTH))
    assert len(turns) == 2 and turns[1] == BOTH and not truncated


def test_submit_call_is_an_answer_and_penalties():
    submit = '<tool_call>\n{"name": "submit", "arguments": {"locations": ["shop/pricing.py::total"]}}\n</tool_call>'
    response = stripped(submit, "Submitted.", "Done.")
    assert compute_score("reposearcher", response, ["shop/pricing.py::total"])["score"] == 1.0
    nothing = compute_score("reposearcher", "I could not find it.", GOLD, format_penalty=0.2)
    assert nothing["score"] == -0.2 and nothing["parsed"] == 0.0
    broken = stripped(
        '<tool_call>\n{"name": "search_function", "arguments": {oops}\n</tool_call>', "bad JSON", BOTH
    )
    result = compute_score(
        "reposearcher", broken, GOLD, extra_info={"invalid_tool_calls": 2}, invalid_call_penalty=0.1
    )
    assert result["invalid_calls"] == 3.0 and result["score"] == pytest.approx(0.7)


def test_options_ground_truth_forms_and_file_weight():
    wrong_function_right_file = "```\nshop/pricing.py\nfunction: subtotal\n```"
    half = compute_score("r", wrong_function_right_file, ["shop/pricing.py::total"], file_weight=0.5)
    assert half["score"] == 0.5 and half["file_score"] == 1.0
    row_options = {"reward": {"metric": "recall@1"}}
    as_json = json.dumps(GOLD)
    assert compute_score("r", SECOND_ONLY, as_json, extra_info=row_options)["score"] == 0.0
    assert compute_score("r", SECOND_ONLY, np.array(GOLD, dtype=object))["recall@5"] == 0.5
    # gold naming only a file (module-level edit) is scored at file level
    assert compute_score("r", BOTH, ["shop/cart.py"])["score"] == pytest.approx(1 / np.log2(3))
    with pytest.raises(ValueError, match="unknown metric"):
        RewardConfig.from_options({"metric": "ndcg"})


ROW = {"index": 3, "split": "train", "instance_id": "shop__shop-1"}


@pytest.mark.parametrize(
    "ground_truth, field",
    [
        ("[not json", "reward_model.ground_truth is not a JSON list"),
        pytest.param("[" * 5000, "nested too deeply", id="deep-json"),
        ('["shop/cart.py::Cart", 7]', r"reward_model.ground_truth\[1\] must be an entity id"),
        ({"shop/cart.py::Cart": 1}, "reward_model.ground_truth must be a list of entity ids, got dict"),
        (7, "got int"),
        (np.array(7), "got int"),
        ([["shop/cart.py::Cart"]], r"ground_truth\[0\] must be an entity id"),
    ],
)
def test_malformed_ground_truth_names_the_row_and_the_field(ground_truth, field):
    """A dataset error names its row and field; before, it was a bare JSONDecodeError, RecursionError,
    or a dict's keys were taken for gold without a word (issue 12, item 10)."""
    with pytest.raises(ValueError, match=field) as raised:
        compute_score("reposearcher", BOTH, ground_truth, extra_info=ROW)
    assert str(raised.value).startswith("reward for row 3 of train (shop__shop-1): ")


@pytest.mark.parametrize(
    "options, field",
    [
        ({"file_weight": "heavy"}, "extra_info.reward.file_weight must be a number, got 'heavy'"),
        ({"file_weight": 2}, r"extra_info.reward.file_weight must be within \[0, 1\], got 2"),
        ({"file_weight": float("nan")}, "file_weight must be a finite number"),
        ({"file_weight": True}, "file_weight must be a number, got True"),
        ({"format_penalty": [0.1]}, r"format_penalty must be a number, got \[0.1\]"),
        ({"max_invalid_calls": "many"}, "max_invalid_calls must be a number"),
        ({"max_invalid_calls": 2.5}, "max_invalid_calls must be a whole number, 0 or more, got 2.5"),
        ({"metric": 5}, "extra_info.reward.metric must be a metric name such as ndcg@5, got 5"),
        ({"metric": "ndcg"}, "extra_info.reward.metric: unknown metric 'ndcg'"),
    ],
)
def test_malformed_reward_options_name_the_row_and_the_field(options, field):
    """Before: TypeError from ``min(calls, "many")``, ValueError from ``float("heavy")`` with no field
    named, a bool weight taken as 1.0, NaN accepted (issue 12, item 10)."""
    with pytest.raises(ValueError, match=field) as raised:
        compute_score("reposearcher", BOTH, GOLD, extra_info={**ROW, "reward": options})
    assert "row 3 of train (shop__shop-1)" in str(raised.value)
    with pytest.raises(ValueError, match=field.replace("extra_info.reward.", "reward_kwargs.")):
        compute_score("reposearcher", BOTH, GOLD, extra_info=ROW, **options)


def test_reward_options_that_are_not_a_mapping_or_rows_without_an_index():
    with pytest.raises(
        ValueError, match=r"extra_info\.reward must be a mapping of reward options, got 'ndcg@5'"
    ):
        compute_score("reposearcher", BOTH, GOLD, extra_info={"reward": "ndcg@5"})
    with pytest.raises(ValueError, match=r"^reward for a row without extra_info\.index: "):
        compute_score("reposearcher", BOTH, "[", extra_info={})
    with pytest.raises(ValueError, match="extra_info must be a mapping"):
        compute_score("reposearcher", BOTH, GOLD, extra_info=["index", 3])
    # numeric strings (command-line overrides) and whole floats still read
    config = RewardConfig.from_options({"file_weight": "0.5", "max_invalid_calls": 4.0})
    assert config.file_weight == 0.5 and config.max_invalid_calls == 4
    assert compute_score("reposearcher", BOTH, np.array("shop/pricing.py::total"))["recall@5"] == 1.0


@pytest.mark.parametrize(
    "reported",
    [float("inf"), float("nan"), -4, "x", np.array([1, 2]), pytest.param(10**400, id="10**400")],
)
def test_a_bad_invalid_call_count_counts_nothing_or_is_bounded(reported):
    """int(float("inf")) raised OverflowError, a negative count was a bonus, 10**400 overflowed float()."""
    result = compute_score("reposearcher", BOTH, GOLD, extra_info={"invalid_tool_calls": reported})
    assert 0.0 <= result["invalid_calls"] <= 1e6 and result["score"] == 1.0


def test_messages_and_text_agree():
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": f"issue; format: {WRONG}"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "search_function", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": WRONG},
        {"role": "assistant", "content": SECOND_ONLY},
    ]
    answer, invalid = answer_from_messages(messages)
    assert (
        answer.locations == ["shop/shipping.py::shipping_cost", "shop/cart.py::Cart.checkout"] and not invalid
    )
    answer, _ = answer_from_messages(messages[:4])  # ends on a tool result: nothing
    assert answer.empty


# --- verl's own reward path ----------------------------------------------------------------------------


def _rollout_batch(tokenizer, responses: list[str], gold: list, extra: list[dict]):
    """A DataProto shaped like the agent loop's output: left-padded prompts, right-padded responses."""
    import torch
    from verl import DataProto

    prompt_ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "find the bug"}], add_generation_prompt=True, tokenize=True
    )
    prompt_ids = list(prompt_ids["input_ids"] if hasattr(prompt_ids, "keys") else prompt_ids)
    encoded = [tokenizer.encode(text, add_special_tokens=False) for text in responses]
    width = max(map(len, encoded)) + 3
    pad = tokenizer.pad_token_id
    prompts = torch.tensor([[pad] * 2 + prompt_ids] * len(responses))
    response = torch.tensor([ids + [pad] * (width - len(ids)) for ids in encoded])
    prompt_mask = torch.tensor([[0] * 2 + [1] * len(prompt_ids)] * len(responses))
    response_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded])
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": response,
            "input_ids": torch.cat([prompts, response], dim=1),
            "attention_mask": torch.cat([prompt_mask, response_mask], dim=1),
        },
        non_tensors={
            "data_source": np.array(["reposearcher"] * len(responses), dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": g} for g in gold], dtype=object),
            "extra_info": np.array(extra, dtype=object),
        },
    )


def test_verl_reward_loop_calls_compute_score(tmp_path):
    """The trainer's path in verl 0.9.1: RewardLoopWorker -> load_reward_manager -> get_custom_reward_fn
    (reward_kwargs merged) -> the registered ``naive`` manager's run_single, then the manager's merge of
    the per-sample dicts into rm_scores and reward_extra_info (which needs the same keys every time)."""
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    from tests.tiny_tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(tmp_path / "tok")
    responses = [
        kept(f"Looking.\n{CALL}", OBSERVATION, BOTH),  # right: 1
        kept(f"Looking.\n{CALL}", BOTH),  # the answer only inside a tool result: 0 - format penalty
        kept(f"Looking.\n{CALL}", OBSERVATION, SECOND_ONLY),  # partial
    ]
    gold = [GOLD, json.dumps(GOLD), np.array(GOLD, dtype=object)]
    data = _rollout_batch(tokenizer, responses, gold, [{"index": i} for i in range(3)])
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {"model": {"path": str(tmp_path / "tok"), "tokenizer_path": None}},
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://reposearcher_plugin.rl.reward",
                    "name": "compute_score",
                    "reward_kwargs": {"format_penalty": 0.1},
                },
                "reward_manager": {"source": "register", "name": "naive"},
                "reward_model": {"enable": False},
            },
        }
    )

    async def score_all():
        worker = RewardLoopWorker(config)  # built inside the loop it will use, as in its Ray actor
        return await worker.compute_score_batch(data)

    outputs = asyncio.run(score_all())
    scores = [output["reward_score"] for output in outputs]
    assert scores[0] == 1.0 and scores[1] == pytest.approx(-0.1) and 0.0 < scores[2] < 1.0
    infos = [output["reward_extra_info"] for output in outputs]
    assert all(info.keys() == infos[0].keys() for info in infos) and infos[1]["parsed"] == 0.0
    rm_scores = resolve_reward_manager_cls(config).assemble_rm_scores(data, scores)
    last = data.batch["attention_mask"][:, data.batch["prompts"].shape[1] :].sum(dim=1) - 1
    assert rm_scores[0, last[0]] == 1.0 and rm_scores.sum().item() == pytest.approx(sum(scores))
