"""The RL dataset: one verl row per training issue, its prompt rendered by the one chat format.

verl 0.9.1's RL schema (``verl/utils/dataset/rl_dataset.py``, ``experimental/agent_loop/tool_agent_loop.py``):
``data_source``, ``prompt`` (chat messages), ``ability``, ``reward_model{style, ground_truth}``,
``extra_info{index, tools_kwargs, ...}`` and ``agent_name``. The tool agent loop passes the tool schemas of
its tool config to the chat template itself (``apply_chat_template(messages, tools=...)``), so the prompt
is rendered as for ``tool_format="native"``: no tools block of our own in the system turn, or the model
would see the tools twice. The prompt is the agent's with profile ``rl_profile(profile)`` (``default-rl``,
``tooltrain-rl``), built by ``chat.first_turns`` over the repository at the instance's base commit: a
model trained on these rows is served with that profile and sees what it was trained on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent import chat
from reposearcher_plugin.evaluation.gold import GoldError, derive_gold
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.index.locations import normalize_location, unique
from reposearcher_plugin.index.names import utf8_value
from reposearcher_plugin.rl.reward import DATA_SOURCE
from reposearcher_plugin.tools import RepoTools, profile_specs, rl_profile
from reposearcher_plugin.workspace import Workspace, WorkspaceError

ABILITY = "localization"
AGENT_NAME = "tool_agent"
TOP_K = 5
Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    """What happened to every instance asked for: kept, or why not."""

    kept: int = 0
    no_gold: list[str] = field(default_factory=list)  # gold empty (patch touches no indexed source)
    excluded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # instance id -> error
    longest_prompt_chars: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "no_gold": len(self.no_gold),
            "excluded": len(self.excluded),
            "failed": len(self.failed),
            "failures": dict(list(self.failed.items())[:20]),
            "longest_prompt_chars": self.longest_prompt_chars,
        }


def prompt_messages(
    instance: Instance, tools: RepoTools, profile: str, prompts: chat.Prompts | None = None
) -> list[dict[str, str]]:
    """The first two turns of the agent's conversation, as the tool agent loop will template them:
    exactly what the agent serves with profile ``rl_profile(profile)`` (one stage; verl's loop cannot
    run the official two), rendered by the one function that renders them for inference."""
    specs = profile_specs(rl_profile(profile))
    issue = instance.problem_statement
    return chat.first_turns("search", issue, tools, specs, "native", TOP_K, prompts=prompts)


def build_row(
    instance: Instance,
    gold: Sequence[str],
    tools: RepoTools,
    profile: str,
    index: int,
    prompts: chat.Prompts | None = None,
) -> dict:
    create_kwargs = {"repo": instance.repo, "base_commit": instance.base_commit}
    tools_kwargs = {spec.name: {"create_kwargs": dict(create_kwargs)} for spec in profile_specs(profile)}
    if "exit" in tools_kwargs:  # the agent asks for the answer inside exit's observation, so does RL
        answer_prompt = chat.answer_format("search", TOP_K, prompts)
        tools_kwargs["exit"]["create_kwargs"]["answer_prompt"] = answer_prompt
    return {
        "data_source": DATA_SOURCE,
        "prompt": prompt_messages(instance, tools, profile, prompts),
        "ability": ABILITY,
        # a list, never empty (such instances are dropped): pyarrow writes it as list<string>
        "reward_model": {"style": "rule", "ground_truth": list(gold)},
        "extra_info": {
            "index": index,
            "instance_id": instance.instance_id,
            "repo": instance.repo,
            "base_commit": instance.base_commit,
            "tools_kwargs": tools_kwargs,
            "inference_profile": rl_profile(profile),  # what to serve the trained model with
        },
        "agent_name": AGENT_NAME,
    }


def build_rows(
    instances: Sequence[Instance],
    workspace: Workspace,
    *,
    gold: Mapping[str, Sequence[str]] | None = None,
    profile: str = "default",
    cache: ParseCache | None = None,
    report: BuildReport | None = None,
    progress: Progress | None = None,
    prompts: chat.Prompts | None = None,
) -> list[dict[str, Any]]:
    """One row per instance with non-empty gold; gold from ``gold`` or derived from the patch at the
    instance's base commit (the same index serves the overview). Failures are reported, not raised.
    ``prompts``: the templates the agent will be served with (default: the packaged ones)."""
    profile_specs(profile)
    report = report if report is not None else BuildReport()
    cache = cache or ParseCache()
    rows: list[dict[str, Any]] = []
    if progress:
        progress(0, len(instances))
    for done, instance in enumerate(instances, start=1):
        try:
            labels = _row_for(instance, workspace, gold, profile, cache, rows, prompts)
            if labels is None:
                report.no_gold.append(instance.instance_id)
        except (WorkspaceError, GoldError, OSError, ValueError) as error:
            report.failed[instance.instance_id] = str(error).splitlines()[0][:300]
        if progress:
            progress(done, len(instances))
    report.kept += len(rows)
    for row in rows:
        report.longest_prompt_chars = max(
            report.longest_prompt_chars, sum(len(message["content"]) for message in row["prompt"])
        )
    return rows


def _row_for(
    instance: Instance,
    workspace: Workspace,
    gold: Mapping[str, Sequence[str]] | None,
    profile: str,
    cache: ParseCache,
    rows: list[dict[str, Any]],
    prompts: chat.Prompts | None = None,
) -> list[str] | None:
    if gold is not None and not gold.get(instance.instance_id):
        return None  # no gold in the file: nothing to reward, and no need to check the repository out
    with workspace.hold(instance.repo, instance.base_commit, allow_missing=True) as tree:
        index = build_index(tree, cache=cache, workers=1)
        labels = gold[instance.instance_id] if gold is not None else derive_gold(instance, index)
        labels = unique(normalize_location(item) for item in labels if item.strip())
        if not labels:
            return None
        rows.append(build_row(instance, labels, RepoTools(index), profile, len(rows), prompts))
    return labels


def split_rows(
    rows: list[dict[str, Any]], test_size: int, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded random hold-out of ``test_size`` rows (by instance)."""
    if test_size < 0:
        raise ValueError("--test-size must not be negative")
    if test_size >= len(rows) and rows:
        raise ValueError(f"--test-size {test_size} leaves no training rows (there are {len(rows)})")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:test_size])
    train = [row for number, row in enumerate(rows) if number not in held]
    test = [row for number, row in enumerate(rows) if number in held]
    return renumber(train, "train"), renumber(test, "test")


def renumber(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    for number, row in enumerate(rows):
        row["extra_info"]["index"] = number
        row["extra_info"]["split"] = split
    return rows


def write_parquet(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise ValueError(f"no rows to write to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # pyarrow refuses a lone surrogate (model-written text): write it as its \\uXXXX escape (index/names.py)
    pq.write_table(pa.Table.from_pylist([utf8_value(dict(row)) for row in rows]), path)
    return path


def default_test_size(rows: int) -> int:
    """10 % of the rows, at most 100 and at least one while two or more rows exist."""
    return 0 if rows < 2 else max(1, min(100, rows // 10))
