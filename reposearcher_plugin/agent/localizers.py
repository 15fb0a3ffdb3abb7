"""Every way of localizing behind one interface, chosen by a model string.

``retrieval`` (the default: no LLM, offline) and ``bm25`` (its plain-BM25 baseline) rank with the
index alone; any other string is a litellm model driving the search loop. Options are a plain frozen
dataclass so that batch workers in other processes can rebuild the same localizer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from reposearcher_plugin.agent.loop import Agent, AgentConfig
from reposearcher_plugin.agent.policy import LiteLLMPolicy
from reposearcher_plugin.agent.result import LocalizationResult, Trajectory
from reposearcher_plugin.index import RepoIndex

RETRIEVAL_MODELS = {"retrieval": False, "bm25": True}  # name -> plain BM25 (no boosts, no graph)
DEFAULT_MODEL = "retrieval"


class Localizer(Protocol):
    name: str

    def localize(
        self, index: RepoIndex, issue: str, instance_id: str = "issue", repo: str = ""
    ) -> LocalizationResult: ...


@dataclass(frozen=True)
class LocalizerOptions:
    model: str = DEFAULT_MODEL
    api_base: str | None = None
    api_key: str | None = None
    profile: str = "default"
    tool_format: str = "native"
    max_turns: int = 20
    max_tokens: int = 400_000
    max_wall_s: float = 900.0
    max_calls_per_turn: int = 8
    temperature: float = 0.0
    # a search turn is a few calls and a short reason: small models that loop were seen writing 1,200+
    # tokens in one reply (minutes on a CPU server); raise it for models that reason at length
    max_output_tokens: int = 1024
    retries: int = 3
    top_k: int = 5
    hints: int = 0  # agent: the retrieval default's top N definitions shown in the first prompt
    max_locations: int = 50  # how many ranked entities a retrieval localizer returns
    prompts: str | None = None  # agent: a directory of prompt templates overriding the packaged ones

    @property
    def uses_llm(self) -> bool:
        return self.model not in RETRIEVAL_MODELS


class RankingLocalizer:
    """The embedded default (``retrieval``) or plain BM25 (``bm25``) in the result format of the agent."""

    def __init__(self, model: str = DEFAULT_MODEL, max_locations: int = 50) -> None:
        if model not in RETRIEVAL_MODELS:
            raise ValueError(f"not a retrieval model: {model!r}")
        self.name = model
        self.plain = RETRIEVAL_MODELS[model]
        self.max_locations = max_locations

    def localize(
        self, index: RepoIndex, issue: str, instance_id: str = "issue", repo: str = ""
    ) -> LocalizationResult:
        from reposearcher_plugin.rank import RetrievalLocalizer as Ranker

        started = time.perf_counter()
        ranking = Ranker(index, plain=self.plain).rank(issue, max_locations=self.max_locations)
        wall = round(time.perf_counter() - started, 3)
        trajectory = Trajectory(
            instance_id=instance_id,
            model=self.name,
            profile="retrieval",
            tool_format="none",
            issue=issue,
            repo=repo,
            answer="\n".join(ranking.locations),
            evidence=ranking.evidence,
            wall_s=wall,
        )
        return LocalizationResult(
            instance_id=instance_id,
            model=self.name,
            files=ranking.files,
            locations=ranking.locations,
            usage={"prompt_tokens": 0, "completion_tokens": 0, "turns": 0, "tool_calls": 0, "wall_s": wall},
            trajectory=trajectory,
        )


class AgentLocalizer:
    """The RepoSearcher agent with an LLM policy."""

    def __init__(self, options: LocalizerOptions) -> None:
        policy = LiteLLMPolicy(
            options.model,
            api_base=options.api_base,
            api_key=options.api_key,
            temperature=options.temperature,
            max_output_tokens=options.max_output_tokens,
            retries=options.retries,
        )
        config = AgentConfig(
            profile=options.profile,
            tool_format=options.tool_format,
            max_turns=options.max_turns,
            max_tokens=options.max_tokens,
            max_wall_s=options.max_wall_s,
            max_calls_per_turn=options.max_calls_per_turn,
            top_k=options.top_k,
            hints=options.hints,
            prompts=options.prompts,
        )
        self.agent = Agent(policy, config)
        self.name = options.model

    def localize(
        self, index: RepoIndex, issue: str, instance_id: str = "issue", repo: str = ""
    ) -> LocalizationResult:
        return self.agent.localize(index, issue, instance_id=instance_id, repo=repo)


def build_localizer(options: LocalizerOptions) -> Localizer:
    if options.uses_llm:
        return AgentLocalizer(options)
    return RankingLocalizer(options.model, options.max_locations)
