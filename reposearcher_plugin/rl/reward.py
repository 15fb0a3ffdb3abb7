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

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reposearcher_plugin.agent.parse import Answer, parse_answer, parse_location_lines
from reposearcher_plugin.agent.tool_calls import hermes_tool_calls, load_json
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
_NEXT_RESPONSE = re.compile(r"\s*<tool_response>")
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
    def from_options(cls, *sources: Mapping[str, Any] | None, prefixes: Sequence[str] = ()) -> RewardConfig:
        """Later sources win; unknown keys are ignored (extra_info carries much else). A bad value is a
        ValueError naming its field: ``prefixes`` (one per source, e.g. ``extra_info.reward.``) say where
        each source came from."""
        values: dict[str, Any] = {}
        for number, source in enumerate(sources):
            prefix = prefixes[number] if number < len(prefixes) else "reward "
            if source is None:
                continue
            if not isinstance(source, Mapping):
                where = prefix.rstrip(". ") or "reward options"
                raise ValueError(f"{where} must be a mapping of reward options, got {_shown(source)}")
            for key, value in source.items():
                if key in _OPTION_READERS and value is not None:
                    values[key] = _OPTION_READERS[key](f"{prefix}{key}", value)
        return cls(**values)


def _metric_option(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a metric name such as ndcg@5, got {_shown(value)}")
    try:
        parse_metric(value)
    except MetricError as error:
        raise ValueError(f"{name}: {error}") from None
    return value


def _number_option(name: str, value: Any) -> float:
    # numeric strings pass (command-line overrides); bools do not: True is no weight anyone meant
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ValueError(f"{name} must be a number, got {_shown(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be a number, got {_shown(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {_shown(value)}")
    return number


def _weight_option(name: str, value: Any) -> float:
    number = _number_option(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {_shown(value)}")
    return number


def _count_option(name: str, value: Any) -> int:
    number = _number_option(name, value)
    if number < 0 or not number.is_integer():
        raise ValueError(f"{name} must be a whole number, 0 or more, got {_shown(value)}")
    return int(number)


_OPTION_READERS = {
    "metric": _metric_option,
    "file_weight": _weight_option,
    "format_penalty": _number_option,
    "invalid_call_penalty": _number_option,
    "max_invalid_calls": _count_option,
}


def _shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short (a dataset cell can be megabytes)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


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
            # the next block of the same user turn, matched in place: a copy of the rest of the text
            # per tool result made this quadratic in the number of results
            if not _NEXT_RESPONSE.match(text, end_match.end()):
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


def gold_items(ground_truth: Any, name: str = "ground truth") -> list[str]:
    """Gold as verl hands it over: a list, a numpy array, or a JSON string of a list. Anything else is a
    ValueError that says what is wrong with the field ``name``."""
    if hasattr(ground_truth, "tolist"):  # a numpy array (a 0-d one holds a plain value)
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, str):
        text = ground_truth.strip()
        if text.startswith("["):
            ground_truth, problem = load_json(text)
            if problem:
                raise ValueError(f"{name} is not a JSON list of entity ids ({problem})")
        else:
            ground_truth = [item for item in re.split(r"[\n,]", text) if item.strip()]
    if isinstance(ground_truth, (Mapping, bytes)) or not isinstance(ground_truth, Iterable):
        raise ValueError(f"{name} must be a list of entity ids, got {type(ground_truth).__name__}")
    items: list[str] = []
    for number, item in enumerate(ground_truth):
        if not isinstance(item, str):
            raise ValueError(f"{name}[{number}] must be an entity id (a string), got {_shown(item)}")
        if item.strip():
            items.append(normalize_location(item))
    return unique(items)


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
    found in the text. A malformed row (its ground truth, its reward options) is a ValueError that names
    the row (``extra_info`` index, split and instance id) and the field.
    """
    if extra_info is None:
        extra_info = {}
    if not isinstance(extra_info, Mapping):
        raise ValueError(f"reward: extra_info must be a mapping, got {_shown(extra_info)}")
    try:
        config = RewardConfig.from_options(
            kwargs, extra_info.get("reward"), prefixes=("reward_kwargs.", "extra_info.reward.")
        )
        gold = gold_items(ground_truth, "reward_model.ground_truth")
    except ValueError as error:
        # a dataset error: say which row, so that it can be found and fixed
        raise ValueError(f"reward for {_row_label(extra_info)}: {error}") from None
    final = final_turn(solution_str)
    answer = read_answer(final.text, final.submitted)
    return score_answer(answer, gold, config, final.invalid_calls + _reported_calls(extra_info))


def _row_label(extra_info: Mapping[str, Any]) -> str:
    """``row 12 of train (django__django-11099)`` from what the dataset builder put in extra_info."""
    values = (extra_info.get(key) for key in ("index", "split", "instance_id"))
    index, split, instance = ("" if value is None else str(value) for value in values)
    label = f"row {index[:40]}" if index else "a row without extra_info.index"
    if split:
        label += f" of {split[:40]}"
    if instance:
        label += f" ({instance[:100]})"
    return label


def _reported_calls(extra_info: Mapping[str, Any]) -> int:
    """``extra_info["invalid_tool_calls"]`` as a count; what is not one (or is negative) counts 0, and a
    count past any rollout's (10**6) counts that much, so that it stays a float."""
    reported = extra_info.get("invalid_tool_calls")
    try:
        return min(max(0, int(reported or 0)), 10**6)
    except (TypeError, ValueError, OverflowError):  # an array's truth value; int(float("inf"))
        return 0
