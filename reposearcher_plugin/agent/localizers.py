"""Every way of localizing behind one interface, chosen by a model string.

The offline localizers rank with the index alone (``docs/ranker.md``): ``retrieval`` (the default),
``retrieval-rules`` (the hand-set weights), ``retrieval-ltr`` (the learned ranker shipped in the package),
``ranker:PATH`` (a learned ranker trained with ``reposearcher ranker train``) and ``bm25`` (the plain-BM25
baseline). Any other string is a litellm model driving the search loop. Options are a frozen pydantic
model (picklable, hashable) so that batch workers in other processes can rebuild the same localizer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.fields import FieldInfo

from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.agent.loop import Agent
from reposearcher_plugin.agent.offline import (
    DEFAULT_MODEL,
    LEARNED,
    PLAIN,
    RANKER_FILE_PREFIX,
    RETRIEVAL_MODELS,
)
from reposearcher_plugin.agent.policy import LiteLLMPolicy, PolicySettings
from reposearcher_plugin.agent.result import LocalizationResult, Trajectory
from reposearcher_plugin.index import RepoIndex
from reposearcher_plugin.tools.paths import quoted

if TYPE_CHECKING:
    from reposearcher_plugin.rank.history import ChangeHistory

MAX_MODEL_CHARS = 200  # litellm model strings are well under 100 characters


def check_model(model: str) -> str:
    """``model`` when some localizer can have it, else ValueError saying what a model string is. A model
    string is echoed in every answer (MCP's `localize` takes it from the client): a megabyte of it, or one
    with a newline, names no model and must not come back four times over."""
    if model in RETRIEVAL_MODELS:
        return model
    if 0 < len(model) <= MAX_MODEL_CHARS and model.isprintable() and not any(c.isspace() for c in model):
        return model
    raise ValueError(
        "model must be 'retrieval', 'bm25' or a litellm model string such as "
        f"hosted_vllm/Qwen2.5-Coder-7B-Instruct (at most {MAX_MODEL_CHARS} characters, no blanks), "
        f"got {quoted(model, 60)}"
    )


def is_retrieval_model(model: str) -> bool:
    """Whether ``model`` names an offline localizer rather than an LLM."""
    return model in RETRIEVAL_MODELS or model.startswith(RANKER_FILE_PREFIX)


class Localizer(Protocol):
    name: str

    def localize(
        self,
        index: RepoIndex,
        issue: str,
        instance_id: str = "issue",
        repo: str = "",
        history: ChangeHistory | None = None,
    ) -> LocalizationResult: ...


class LocalizerOptions(BaseModel):
    """Which localizer, and its settings: ``agent`` for the search loop, ``policy`` for the LLM calls.

    Flat keys are accepted and read as well: ``LocalizerOptions(max_turns=3)`` (and ``max_turns: 3`` in a
    YAML config) sets ``agent.max_turns``, and ``options.max_turns`` reads it, since every field name is
    unique across the parts. The nested form (``agent: {max_turns: 3}``) is accepted too; one field given
    both ways is refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: str = DEFAULT_MODEL
    """``retrieval`` (offline, no LLM), ``retrieval-rules`` (its hand-set weights), ``retrieval-ltr`` (the
    packaged learned ranker), ``ranker:PATH`` (a learned ranker file), ``bm25`` (the plain-BM25
    baseline), or a litellm model string driving the RepoSearcher agent, e.g.
    ``hosted_vllm/Qwen2.5-Coder-7B-Instruct``."""
    max_locations: int = 50
    """How many ranked entities a retrieval localizer returns."""
    agent: AgentConfig = AgentConfig()
    """The search loop's settings (LLM localizers only)."""
    policy: PolicySettings = PolicySettings()
    """The LLM calls' settings (LLM localizers only)."""

    @field_validator("model")
    @classmethod
    def _known_form(cls, model: str) -> str:
        return check_model(model)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for part, names in _PART_FIELDS.items():
            flat = {name: data.pop(name) for name in names if name in data}
            if not flat:
                continue
            given = data.get(part)
            if isinstance(given, BaseModel):
                given = dict(given)
            elif given is None:  # this class's default part: a subclass may change its defaults
                given = dict(cls.model_fields[part].get_default())
            elif isinstance(given, dict):
                twice = sorted(set(flat) & set(given))
                if twice:
                    raise ValueError(f"{', '.join(twice)} given both flat and under {part}")
            else:
                return data  # not a mapping: pydantic names the type error
            data[part] = {**given, **flat}
        return data

    def __getattr__(self, name: str) -> Any:
        part = _PART_OF.get(name)
        if part is None:
            return super().__getattr__(name)  # type: ignore[misc]
        return getattr(getattr(self, part), name)

    @property
    def uses_llm(self) -> bool:
        return not is_retrieval_model(self.model)


# the nested parts of LocalizerOptions and the flat names that reach into them
_PART_FIELDS: dict[str, tuple[str, ...]] = {
    "agent": tuple(AgentConfig.model_fields),
    "policy": tuple(PolicySettings.model_fields),
}
_PART_OF = {name: part for part, names in _PART_FIELDS.items() for name in names}
OPTION_PARTS = tuple(_PART_FIELDS)
_CLASHES = (set(AgentConfig.model_fields) & set(PolicySettings.model_fields)) | (
    set(_PART_OF) & set(LocalizerOptions.model_fields)
)
assert not _CLASHES, f"flat localizer option names must be unique: {_CLASHES}"


def option_field(name: str) -> FieldInfo:
    """The declaration of a flat option name, in whichever part of LocalizerOptions it lives."""
    part = _PART_OF.get(name)
    model: type[BaseModel] = PolicySettings if part == "policy" else AgentConfig if part else LocalizerOptions
    return model.model_fields[name]


def flat_option_names(options: type[LocalizerOptions] = LocalizerOptions) -> list[str]:
    """Every key a flat config may set: the options' own fields (less the parts) and the parts' fields."""
    own = [name for name in options.model_fields if name not in _PART_FIELDS]
    return own + list(_PART_OF)


class RankingLocalizer:
    """An offline localizer (``retrieval``, ``retrieval-rules``, ``retrieval-ltr``, ``ranker:PATH``,
    ``bm25``) in the result format of the agent. A learned model is loaded here, once, so that a bad
    model file fails before the first issue."""

    def __init__(self, model: str = DEFAULT_MODEL, max_locations: int = 50) -> None:
        from reposearcher_plugin.rank.learned import LearnedRanker, packaged_ranker

        if not is_retrieval_model(model):
            raise ValueError(f"not a retrieval model: {model!r}")
        self.name = model
        kind = RETRIEVAL_MODELS.get(model, LEARNED)
        self.plain = kind == PLAIN
        self.ranker: LearnedRanker | None = None
        if model.startswith(RANKER_FILE_PREFIX):
            self.ranker = LearnedRanker.load(model[len(RANKER_FILE_PREFIX) :])
        elif kind == LEARNED:
            self.ranker = packaged_ranker()
        self.max_locations = max_locations

    def localize(
        self,
        index: RepoIndex,
        issue: str,
        instance_id: str = "issue",
        repo: str = "",
        history: ChangeHistory | None = None,
    ) -> LocalizationResult:
        from reposearcher_plugin.rank import RetrievalLocalizer as Ranker

        started = time.perf_counter()
        ranking = Ranker(index, plain=self.plain, ranker=self.ranker, history=history).rank(
            issue, max_locations=self.max_locations
        )
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
        policy = LiteLLMPolicy(options.model, **options.policy.model_dump())
        self.agent = Agent(policy, options.agent)
        self.name = options.model

    def localize(
        self,
        index: RepoIndex,
        issue: str,
        instance_id: str = "issue",
        repo: str = "",
        history: ChangeHistory | None = None,
    ) -> LocalizationResult:
        return self.agent.localize(index, issue, instance_id=instance_id, repo=repo, history=history)


def build_localizer(options: LocalizerOptions) -> Localizer:
    if options.uses_llm:
        return AgentLocalizer(options)
    return RankingLocalizer(options.model, options.max_locations)
