"""The RL reward: score the final answer of a multi-turn rollout against the gold entity ids.

verl (0.9.1) calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` from its reward
loop (``verl/experimental/reward_loop/reward_manager/naive.py``); ``reward.custom_reward_function.
reward_kwargs`` are merged in as keyword arguments. ``solution_str`` is the WHOLE decoded response: every
assistant turn plus the tool results between them (``<tool_response>`` blocks in user turns), decoded with
``skip_special_tokens=True`` by default, so Qwen's ``<|im_start|>`` / ``<|im_end|>`` are usually gone but
may be kept. Only the model's own final answer counts: text inside a tool result (a file that happens to
hold an answer-shaped block) never scores.

The answer is read by ``agent.parse.parse_answer`` (the one answer parser) from the final assistant turn
that calls no tool; failing that, from the last ``submit`` call the model wrote. The score is nDCG@5 of
the ranked file-qualified entity ids by default (binary gains, IDCG over min(|gold|, 5), the definitions
of ``evaluation.metrics``). The reward manager turns a dict result into per-key metrics and requires every
sample to return the same keys, so the result always holds the same float-valued keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from reposearcher_plugin.agent.parse import (
    Answer,
    hermes_tool_calls,
    load_json,
    parse_answer,
    parse_location_lines,
)
from reposearcher_plugin.evaluation.metrics import MetricError, ndcg_at, parse_metric, recall_at, score
from reposearcher_plugin.index.locations import SEPARATOR, file_of, normalize_location, unique

DATA_SOURCE = "reposearcher"
SUBMIT = "submit"

# A tool-result block ends at a ``</tool_response>`` that is followed by the next block, the next turn's
# role header, or the end of the text. A literal ``</tool_response>`` inside a tool's output (source code
# can hold anything) is followed by more output, so it does not end the block early.
_SPECIAL = re.compile(r"<\|im_end\|>|<\|im_start\|>|<\|endoftext\|>|<\|eot_id\|>")
_RESPONSE_OPEN = "<tool_response>"
_RESPONSE_END = re.compile(r"</tool_response>(?=\s*(?:<tool_response>|assistant\n|user\n|\Z))")
_ROLE_HEADER = re.compile(r"^\s*(?:assistant|user)\n")


@dataclass(frozen=True)
class RewardConfig:
    """What the score is made of; every field can be set by ``reward_kwargs`` or per row by ``extra_info``."""

    metric: str = "ndcg@5"  # any evaluation.metrics name: ndcg@k, recall@k, acc@k, precision@k, map, mrr
    file_weight: float = 0.0  # score = (1 - w) * entity metric + w * file metric
    format_penalty: float = 0.0  # subtracted when no answer can be read
    invalid_call_penalty: float = 0.0  # subtracted per unreadable / rejected tool call
    max_invalid_calls: int = 10  # the penalty stops growing here, so one bad rollout cannot swamp a batch

    @classmethod
    def from_options(cls, *sources: Mapping[str, Any] | None) -> RewardConfig:
        """Later sources win; unknown keys are ignored (extra_info carries much else)."""
        known = {item.name: item.type for item in fields(cls)}
        values: dict[str, Any] = {}
        for source in sources:
            for key, value in (source or {}).items():
                if key in known and value is not None:
                    values[key] = value
        config = cls(**values)
        try:
            parse_metric(config.metric)
        except MetricError as error:
            raise ValueError(f"reward metric: {error}") from None
        if not 0.0 <= float(config.file_weight) <= 1.0:
            raise ValueError(f"reward file_weight must be within [0, 1], got {config.file_weight}")
        return config


@dataclass
class FinalTurn:
    """What the rollout's last model turn said: its text when it called no tool, and any submit call."""

    text: str | None = None  # the final assistant turn, when it calls no tool
    submitted: list[str] | None = None  # locations of the last submit call the model wrote
    invalid_calls: int = 0  # tool-call blocks in assistant turns that could not be read
    assistant_turns: list[str] = field(default_factory=list)


def assistant_turns(solution_str: str) -> tuple[list[str], bool]:
    """The assistant turns of a decoded response, and whether it ends inside a tool result.

    Works on both decodings of Qwen's template: special tokens kept (``<|im_end|>\\n<|im_start|>user\\n``)
    or stripped (``\\nuser\\n``); they are removed first so both look alike.
    """
    text = _SPECIAL.sub("", solution_str)
    turns: list[str] = []
    position = 0
    while True:
        start = text.find(_RESPONSE_OPEN, position)
        if start < 0:
            turns.append(_strip_header(_drop_user_header(text[position:])))
            return turns, False
        turns.append(_strip_header(_drop_user_header(text[position:start])))
        end = None
        for end_match in _RESPONSE_END.finditer(text, start):
            following = text[end_match.end() :].lstrip()
            if not following.startswith(_RESPONSE_OPEN):
                end = end_match
                break
        if end is None:  # cut off inside a tool result: no final turn
            return turns, True
        position = end.end()


def _drop_user_header(segment: str) -> str:
    """The text before a tool result ends with the user turn's header (``user\\n``): not the model's."""
    stripped = segment.rstrip()
    if stripped.endswith("\nuser") or stripped == "user":
        return stripped[: -len("user")]
    return segment


def _strip_header(segment: str) -> str:
    return _ROLE_HEADER.sub("", segment, count=1).strip()


def final_turn(solution_str: str) -> FinalTurn:
    turns, truncated = assistant_turns(solution_str)
    result = FinalTurn(assistant_turns=turns)
    for number, turn in enumerate(turns):
        content, calls = hermes_tool_calls(turn)
        result.invalid_calls += sum(1 for call in calls if call.error)
        for call in calls:
            if call.name == SUBMIT and not call.error and call.arguments is not None:
                result.submitted = _submitted_locations(call.arguments)
        if number == len(turns) - 1 and not truncated and not calls:
            result.text = content
    return result


def _submitted_locations(arguments: Mapping[str, Any]) -> list[str]:
    locations = arguments.get("locations", [])
    if isinstance(locations, str):
        locations = [locations]
    return [str(item) for item in locations] if isinstance(locations, list) else []


def read_answer(text: str | None, submitted: Sequence[str] | None) -> Answer:
    """The final text's answer; failing that, the last submit call's locations."""
    answer = (
        parse_answer(text) if text is not None else Answer(problem="the rollout has no final answer turn")
    )
    if answer.empty and submitted:
        answer = parse_location_lines(submitted)
    return answer


def answer_from_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[Answer, int]:
    """The same reading on canonical OpenAI messages (a recorded trajectory): (answer, unreadable calls).

    Tool messages are never read; the final message must be an assistant turn without tool calls for its
    text to count, as in a rollout.
    """
    text: str | None = None
    submitted: list[str] | None = None
    invalid = 0
    for number, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls") or []
        for call in calls:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                arguments, problem = load_json(arguments or "{}")
                if problem:
                    invalid += 1
                    continue
            if not function.get("name") or not isinstance(arguments, Mapping):
                invalid += 1
            elif function["name"] == SUBMIT:
                submitted = _submitted_locations(arguments)
        content = str(message.get("content") or "")
        inline, inline_calls = hermes_tool_calls(content)
        invalid += sum(1 for call in inline_calls if call.error)
        if number == len(messages) - 1 and not calls and not inline_calls:
            text = inline
    return read_answer(text, submitted), invalid


def gold_items(ground_truth: Any) -> list[str]:
    """Gold as verl hands it over: a list, a numpy array, or a JSON string of a list."""
    if isinstance(ground_truth, str):
        text = ground_truth.strip()
        if text.startswith("["):
            ground_truth = json.loads(text)
        else:
            ground_truth = [item for item in re.split(r"[\n,]", text) if item.strip()]
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    if not isinstance(ground_truth, Iterable):
        raise ValueError(f"ground truth must be a list of entity ids, got {type(ground_truth).__name__}")
    return unique(normalize_location(str(item)) for item in ground_truth if str(item).strip())


def score_answer(
    answer: Answer, gold: Sequence[str], config: RewardConfig, invalid_calls: int = 0
) -> dict[str, float]:
    """The reward and its parts; every value a float, the same keys for every answer."""
    locations = unique(normalize_location(item) for item in answer.locations if SEPARATOR in item)
    files = unique([normalize_location(path) for path in answer.files] + [file_of(loc) for loc in locations])
    gold_entities = frozenset(item for item in gold if SEPARATOR in item)
    gold_files = frozenset(file_of(item) for item in gold)
    # gold that names no entity (module-level edits only) is scored at file level, else it could never pay
    entity_ranking, entity_gold = (locations, gold_entities) if gold_entities else (files, gold_files)
    entity_score = score(config.metric, entity_ranking, entity_gold, acc_needs_all=True)
    file_score = score(config.metric, files, gold_files, acc_needs_all=True)
    parsed = not answer.empty
    weight = float(config.file_weight)
    reward = (1.0 - weight) * entity_score + weight * file_score
    penalty = 0.0 if parsed else float(config.format_penalty)
    penalty += float(config.invalid_call_penalty) * min(invalid_calls, config.max_invalid_calls)
    return {
        "score": reward - penalty,
        "entity_score": float(entity_score),
        "file_score": float(file_score),
        "ndcg@5": float(ndcg_at(entity_ranking, entity_gold, 5)),
        "recall@5": float(recall_at(entity_ranking, entity_gold, 5)),
        "file_ndcg@5": float(ndcg_at(files, gold_files, 5)),
        "file_recall@5": float(recall_at(files, gold_files, 5)),
        "parsed": 1.0 if parsed else 0.0,
        "predicted": float(len(locations)),
        "invalid_calls": float(invalid_calls),
        "penalty": penalty,
    }


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward function (``reward.custom_reward_function.name=compute_score``).

    Options come from ``reward_kwargs`` (``kwargs``) and, per row, from ``extra_info["reward"]`` (a
    mapping; row options win). ``extra_info["invalid_tool_calls"]`` (what a tool adapter stores in the
    agent loop's ``extra_fields``, which verl merges into ``extra_info``) adds to the unreadable calls
    found in the text.
    """
    extra_info = extra_info or {}
    row_options = extra_info.get("reward") if isinstance(extra_info.get("reward"), Mapping) else None
    config = RewardConfig.from_options(kwargs, row_options)
    final = final_turn(solution_str)
    answer = read_answer(final.text, final.submitted)
    reported = extra_info.get("invalid_tool_calls") or 0
    try:
        reported = int(reported)
    except (TypeError, ValueError):
        reported = 0
    return score_answer(answer, gold_items(ground_truth), config, final.invalid_calls + reported)
