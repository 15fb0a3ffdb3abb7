"""The search loop's settings (:class:`AgentConfig`), the ``agent`` part of a ``LocalizerOptions``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from reposearcher_plugin.agent import chat
from reposearcher_plugin.tools import profile_specs
from reposearcher_plugin.tools.session import MAX_OBSERVATION_CHARS


class AgentConfig(BaseModel):
    """The search loop's settings; the ``agent`` part of a :class:`LocalizerOptions`. Frozen and hashable:
    batch workers in other processes get the same configuration pickled."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    profile: str = "default"
    """``default`` (our tools, one stage), ``tooltrain`` (the official two-stage flow), or ``default-rl`` /
    ``tooltrain-rl`` (one stage, the last reply is the answer: the conversation RL trains)."""
    tool_format: str = "native"
    """``native`` function calling, or ``hermes`` ``<tool_call>`` text (servers without a tool parser)."""
    max_turns: int = 20
    """Model turns per stage, the final answer turn included."""
    max_tokens: int = 400_000
    """Prompt + completion tokens over the whole run."""
    max_wall_s: float = 900.0
    """Seconds per run."""
    max_calls_per_turn: int = 8
    """Tool calls run per reply; the rest get a note."""
    max_observation_chars: int = MAX_OBSERVATION_CHARS
    """Longest observation shown to the model; longer ones are clipped with a note."""
    top_k: int = 5
    """How many locations the prompts ask for."""
    hints: int = 0
    """Default profile: show the retrieval default's top N definitions in the first prompt."""
    max_stalled_turns: int = 2
    """Consecutive turns with no new, successful call end the search."""
    context_window: int | None = None
    """The model's window in tokens; None: ask the policy (the server)."""
    fallback: bool = True
    """No readable answer: rank the locations the tools returned."""
    prompts: str | None = None
    """A directory of prompt templates (``<name>.jinja``) overriding the packaged ones by name."""

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, profile: str) -> str:
        profile_specs(profile)  # raises on an unknown profile
        return profile

    @field_validator("tool_format")
    @classmethod
    def _known_tool_format(cls, tool_format: str) -> str:
        if tool_format not in chat.TOOL_FORMATS:
            raise ValueError(f"unknown tool format {tool_format!r}; choose one of: native, hermes")
        return tool_format

    @field_validator("max_turns")
    @classmethod
    def _at_least_one_turn(cls, max_turns: int) -> int:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        return max_turns

    @field_validator("prompts")
    @classmethod
    def _readable_prompts(cls, prompts: str | None) -> str | None:
        if prompts is not None:
            chat.Prompts(prompts)  # raises on a missing directory or an unknown template name
        return prompts
