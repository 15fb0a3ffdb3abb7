"""Rejection-sampled SFT data: sample the agent K times per issue, keep the trajectories the RL reward likes.

``sample`` runs the batch runner once per sample index into ``OUT/sample_<k>.jsonl`` (each resumable; its
trajectories in ``OUT/sample_<k>.trajectories/``). ``prepare`` scores every trajectory's final answer with
the RL reward (``rl.reward``: the same reading of the answer and the same metric), keeps those at or above
a threshold, and writes verl's multi-turn SFT parquet: ``messages`` (the canonical OpenAI messages the
agent recorded) and ``tools`` (the profile's schemas).

Two things about how verl 0.9.1 reads that parquet decide its layout (``verl/utils/dataset/
multiturn_sft_dataset.py``): it loads with ``pd.read_parquet(..., dtype_backend="pyarrow")``, where every
list of structs shares ONE struct type, so tool schemas with different parameters, and tool-call argument
objects with different keys, come back null-filled (``{"class_name": "X", "file_path": null}``), which the
chat template would then render into the training text. So ``tools`` and each call's ``arguments`` are
stored as JSON strings, and :class:`RepoSearcherSFTDataset` (verl's dataset, selected with
``data.custom_cls``) decodes them before templating. And it templates each message alone and asserts
that the concatenation equals templating the whole conversation; Qwen-style templates merge consecutive
tool results into one user turn, which per-message templating cannot, so consecutive tool results are
joined into one tool message whose text renders exactly as the merged turn (``join_tool_results``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.result import Trajectory
from reposearcher_plugin.files import jsonl_lines
from reposearcher_plugin.rl.reward import RewardConfig, answer_from_messages, gold_items, score_answer
from reposearcher_plugin.tools import openai_tools, profile_specs

HERMES_JOIN = "\n</tool_response>\n<tool_response>\n"  # what Qwen's template writes between two results
JOIN_MODES = ("hermes", "none")


def sample_path(out_dir: str | Path, k: int) -> Path:
    return Path(out_dir) / f"sample_{k}.jsonl"


def sample(
    instances: Sequence[Any],
    out_dir: str | Path,
    options: Any,
    workspace: Any,
    n: int,
    *,
    workers: int = 1,
    index_cache_dir: str | None = None,
    on_result: Callable[[int, dict[str, Any], Any], None] | None = None,
    retry_errors: bool = False,
) -> list[Any]:
    """Run the agent ``n`` times over ``instances``: sample k goes to ``OUT/sample_<k>.jsonl``.

    Each sample file is a resumable batch, so rerunning the same command finishes what a killed run left
    (and, with ``retry_errors``, runs again the instances whose run failed).
    """
    from reposearcher_plugin.evaluation.batch import run_batch

    if n < 1:
        raise ValueError("--n must be at least 1")
    summaries = []
    for k in range(n):
        callback = (lambda row, summary, k=k: on_result(k, row, summary)) if on_result else None
        summaries.append(
            run_batch(
                instances,
                sample_path(out_dir, k),
                options,
                workspace,
                workers=workers,
                index_cache_dir=index_cache_dir,
                on_result=callback,
                retry_errors=retry_errors,
            )
        )
    return summaries


# --- scoring and selection ------------------------------------------------------------------------------


@dataclass
class Scored:
    instance_id: str
    source: str  # the predictions file and line it came from
    trajectory: Trajectory | None
    reward: dict[str, float] = field(default_factory=dict)
    rejected: str | None = None  # why it is not kept


@dataclass
class PrepareReport:
    trajectories: int = 0
    kept: int = 0
    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    instances: int = 0  # instances with at least one kept trajectory

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "trajectories": self.trajectories,
            "kept": self.kept,
            "rows": self.rows,
            "instances": self.instances,
            "rejected": dict(sorted(self.rejected.items())),
        }


def read_trajectories(paths: Iterable[str | Path]) -> list[Scored]:
    """Every row of the given predictions files (or of every ``*.jsonl`` in given directories)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ValueError(f"no predictions files (*.jsonl) found under {path}: it does not exist")
        files += sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise ValueError("no predictions files (*.jsonl) found under " + ", ".join(map(str, paths)))
    found: list[Scored] = []
    for file in files:
        for line in jsonl_lines(file.read_text(encoding="utf-8")):
            if line.error is not None:
                continue  # a line cut off by a killed run: the sampler drops it on resume
            row = line.value
            source = f"{file.name}:{line.number}"
            item = Scored(str(row.get("instance_id")), source, None)
            found.append(item)
            if row.get("error"):
                item.rejected = "run failed"
                continue
            trajectory = row.get("trajectory")
            try:
                if isinstance(trajectory, str):
                    item.trajectory = Trajectory.read(file.parent / trajectory)
                elif isinstance(trajectory, dict):
                    item.trajectory = Trajectory.from_dict(trajectory)
            except (OSError, ValueError, TypeError) as error:
                item.rejected = f"unreadable trajectory ({type(error).__name__})"
                continue
            if item.trajectory is None or not item.trajectory.messages:
                item.rejected = "no trajectory"
    return found


def score_trajectories(
    items: Sequence[Scored], gold: Mapping[str, Sequence[str]], config: RewardConfig
) -> None:
    """Score each readable trajectory's final answer with the RL reward; mark what cannot be kept."""
    for item in items:
        if item.rejected or item.trajectory is None:
            continue
        if item.instance_id not in gold:
            item.rejected = "no gold"
            continue
        if item.trajectory.error:
            item.rejected = "run failed"
            continue
        if item.trajectory.tool_format == "none":
            item.rejected = "not an agent trajectory"
            continue
        answer, invalid = answer_from_messages(_last_stage(item.trajectory.messages))
        item.reward = score_answer(answer, gold_items(gold[item.instance_id]), config, invalid)
        if invalid:
            item.rejected = "unreadable tool call"  # never teach a call the tools refuse


def select(
    items: Sequence[Scored], min_reward: float, best_per_instance: bool, report: PrepareReport
) -> list[Scored]:
    kept: list[Scored] = []
    for item in items:
        report.trajectories += 1
        if item.rejected:
            report.reject(item.rejected)
        elif item.reward["score"] < min_reward:
            item.rejected = "below min reward"
            report.reject(item.rejected)
        else:
            kept.append(item)
    if best_per_instance:
        best: dict[str, Scored] = {}
        for item in kept:  # first of the best: earlier samples win ties, so reruns choose the same
            if item.instance_id not in best or item.reward["score"] > best[item.instance_id].reward["score"]:
                best[item.instance_id] = item
        for item in kept:
            if best[item.instance_id] is not item:
                item.rejected = "not the best of its instance"
                report.reject(item.rejected)
        kept = [item for item in kept if not item.rejected]
    report.kept = len(kept)
    report.instances = len({item.instance_id for item in kept})
    return kept


# --- rows ------------------------------------------------------------------------------------------------


def _stages(messages: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """A tooltrain trajectory holds two conversations one after the other, each opening with its system
    turn: each is its own training sample."""
    stages: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("role") == "system" or not stages:
            stages.append([])
        stages[-1].append(dict(message))
    return stages


def _last_stage(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return _stages(messages)[-1] if messages else []


def sft_messages(messages: Sequence[Mapping[str, Any]], join_tool_results: str = "hermes") -> list[dict]:
    """Canonical messages -> parquet rows of one fixed shape (role, content, tool_calls, tool_call_id,
    name), arguments as canonical JSON strings."""
    if join_tool_results not in JOIN_MODES:
        raise ValueError(f"unknown join mode {join_tool_results!r}; choose one of: {', '.join(JOIN_MODES)}")
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        content = str(message.get("content") or "")
        if role == "tool" and join_tool_results == "hermes" and out and out[-1]["role"] == "tool":
            out[-1]["content"] += HERMES_JOIN + content
            continue
        calls = None
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                arguments = call["function"].get("arguments") or "{}"
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                else:
                    arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
                calls.append(
                    {
                        "id": str(call.get("id") or f"call_{len(calls)}"),
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": arguments},
                    }
                )
        out.append(
            {
                "role": role,
                "content": content,
                "tool_calls": calls,
                "tool_call_id": message.get("tool_call_id") if role == "tool" else None,
                "name": message.get("name") if role == "tool" else None,
            }
        )
    return out


def sft_rows(kept: Sequence[Scored], join_tool_results: str = "hermes") -> list[dict[str, Any]]:
    rows = []
    for item in kept:
        assert item.trajectory is not None
        tools = json.dumps(openai_tools(profile_specs(item.trajectory.profile)), ensure_ascii=False)
        for stage, messages in enumerate(_stages(item.trajectory.messages)):
            rows.append(
                {
                    "messages": sft_messages(messages, join_tool_results),
                    "tools": tools,
                    "instance_id": item.instance_id,
                    "stage": stage,
                    "reward": float(item.reward["score"]),
                    "source": item.source,
                    "model": item.trajectory.model,
                }
            )
    return rows


def token_length(row: Mapping[str, Any], tokenizer: Any) -> int:
    """The row's length in tokens as verl's SFT dataset sees it: the whole conversation through the chat
    template, tools included."""
    messages = _decode_messages([dict(message) for message in row["messages"]])
    ids = tokenizer.apply_chat_template(messages, tools=_decode_tools(row["tools"]), tokenize=True)
    if isinstance(ids, Mapping):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return len(ids)


def drop_long_rows(
    rows: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, report: PrepareReport
) -> list[dict[str, Any]]:
    """Rows that fit ``max_length`` tokens. verl's ``truncation: error`` (our recipe) stops training on a
    longer one, and cutting it would teach a conversation without its answer."""
    kept = []
    for row in rows:
        row["tokens"] = token_length(row, tokenizer)
        if row["tokens"] <= max_length:
            kept.append(row)
        else:
            report.reject(f"longer than {max_length} tokens")
    return kept


def prepare(
    trajectory_paths: Iterable[str | Path],
    gold: Mapping[str, Sequence[str]],
    *,
    min_reward: float,
    best_per_instance: bool = False,
    config: RewardConfig | None = None,
    join_tool_results: str = "hermes",
    tokenizer: Any = None,
    max_length: int | None = None,
) -> tuple[list[dict[str, Any]], PrepareReport]:
    """Score, select and render trajectories as SFT rows; with a tokenizer and ``max_length``, rows
    longer than that (in the chat template's tokens) are dropped and each row records its ``tokens``."""
    items = read_trajectories(trajectory_paths)
    score_trajectories(items, gold, config or RewardConfig())
    report = PrepareReport()
    kept = select(items, min_reward, best_per_instance, report)
    rows = sft_rows(kept, join_tool_results)
    if tokenizer is not None and max_length is not None:
        rows = drop_long_rows(rows, tokenizer, max_length, report)
    report.rows = len(rows)
    return rows, report


# --- verl's dataset, reading our layout -----------------------------------------------------------------


def _decode_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    decoded = []
    for message in messages:
        message = {key: value for key, value in message.items() if value is not None}  # arrow null-fill
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                call = {key: value for key, value in call.items() if value is not None}
                function = dict(call["function"])
                if isinstance(function.get("arguments"), str):
                    function["arguments"] = json.loads(function["arguments"] or "{}")
                calls.append({**call, "function": function})
            message["tool_calls"] = calls
        else:
            message.pop("tool_calls", None)
        decoded.append(message)
    return decoded


def _decode_tools(tools: Any) -> Any:
    return json.loads(tools) if isinstance(tools, str) else tools


def _dataset_class() -> type:
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    class RepoSearcherSFTDataset(MultiTurnSFTDataset):
        """verl's ``MultiTurnSFTDataset`` over our parquet: ``tools`` and tool-call ``arguments`` are JSON
        strings there (see the module docstring); they are decoded before verl templates them, so the
        chat template sees exactly the objects a rollout would (``arguments | tojson`` gives the JSON the
        model writes)."""

        def _read_files_and_process(self) -> None:
            super()._read_files_and_process()
            if self.tools is not None:
                self.tools = [_decode_tools(tools) for tools in self.tools]
            self.messages = [_decode_messages(messages) for messages in self.messages]

        def _build_messages(self, example: dict) -> list:
            return _decode_messages(super()._build_messages(example))

    return RepoSearcherSFTDataset


def __getattr__(name: str) -> Any:
    # verl is imported only when the dataset is asked for (``data.custom_cls.name=RepoSearcherSFTDataset``),
    # so preparing data needs no verl
    if name == "RepoSearcherSFTDataset":
        cls = _dataset_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
