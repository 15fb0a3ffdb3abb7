"""A run's limits: its budgets (model turns, tokens, wall time) and the model's context window (the
prompt budget, the size of a request, and the dropping of old observations before a conversation
outgrows it).

Sizes are estimates: characters times the tokens per character the server's last reply measured (a
cautious third before the first), with a margin for the estimate's error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from reposearcher_plugin.agent import chat
from reposearcher_plugin.agent.policy import Policy

DROPPED_OBSERVATION = (
    "[This earlier observation was removed to fit the model's context window; call the tool again if "
    "you still need it.]"
)
LOW_WATER = 0.75  # share of the context budget a request is trimmed down to once it outgrows it
MARGIN = 1.1  # the estimate is a ratio of characters; keep room for its error


class Budget:
    """Model turns per stage, tokens and wall time over a run (from its start), and when each request
    must have returned."""

    def __init__(self, max_turns: int, max_tokens: int, max_wall_s: float) -> None:
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.max_wall_s = max_wall_s
        self.started = time.perf_counter()
        self.tokens = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def spend(self, tokens: int) -> None:
        self.tokens += tokens

    def spent(self, turns: int) -> str | None:
        """Why the stage's search is over (said to the model), or None while it may go on."""
        if turns >= self.max_turns - 1:  # the last turn is kept for the answer
            return f"You have used {turns} turns, the most allowed."
        if self.tokens >= self.max_tokens:
            return f"You have used {self.tokens} tokens, the most allowed."
        if self.elapsed() >= self.max_wall_s:
            return "The time for this search is up."
        return None

    def deadline(self, searching: bool) -> float:
        """When a request must have returned: a search turn by the end of the wall budget (then the answer
        turn comes), the answer turns within a grace after it (a run out of time still gets its answer,
        but not a second budget's worth). The grace is never under 5 s: below that a loaded machine
        cannot even send the request."""
        if searching:
            return self.started + self.max_wall_s
        grace = min(120.0, max(5.0, 0.2 * self.max_wall_s))
        return self.started + self.max_wall_s + grace


class ContextWindow:
    """The window of the model behind ``policy`` (``configured`` tokens, or what the server says)."""

    def __init__(self, policy: Policy, configured: int | None) -> None:
        self.policy = policy
        self.configured = configured
        self.window: int | bool | None = False  # False: not asked yet
        self.tokens_per_char = 1 / 3  # a cautious start; measured from each reply's prompt tokens

    def budget(self) -> int | None:
        """Prompt tokens a request may carry: the window less the reply's room, or None if unknown."""
        if self.window is False:
            self.window = self.configured
            ask = getattr(self.policy, "context_window", None)
            if self.window is None and callable(ask):
                self.window = ask()
        if not self.window:
            return None
        reply_room = int(getattr(self.policy, "max_output_tokens", 0) or 0)
        return int(self.window) - min(reply_room, int(self.window) // 2) - 64

    def tokens(self, chars: int) -> float:
        """The estimated tokens of ``chars`` characters of a request, with the margin."""
        return MARGIN * self.tokens_per_char * chars

    def measure(
        self, prompt_tokens: int, wire: Sequence[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> None:
        """Learn the tokens per character from a reply's prompt tokens for the request ``wire``."""
        if prompt_tokens > 0:
            self.tokens_per_char = prompt_tokens / max(1, wire_chars(wire, tools))

    def fit(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_format: str,
        everything: bool,
    ) -> list[dict[str, Any]]:
        """Drop the oldest observations of ``messages`` (one stage's) when the request would not fit;
        returns the tool messages whose observation was dropped.

        Once over the budget, observations go until the request is down to ``LOW_WATER`` of it: every
        drop changes the prompt's prefix and so throws away the server's prompt cache from the first
        dropped message on, and dropping just enough would do that again on every following turn (a
        0.5B on two cores re-read 9k tokens, two minutes, per turn). The newest turn's observations stay
        (the model is answering them). ``everything`` drops all the older ones regardless of the
        estimate: the server said the request did not fit."""
        budget = self.budget()
        if budget is None and not everything:
            return []
        newest = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        size = self.tokens(wire_chars(chat.to_wire(messages, tool_format), tools))
        if not everything and (budget is None or size <= budget):
            return []
        target = None if budget is None else LOW_WATER * budget
        dropped = []
        for message in messages[:newest]:
            if not everything and (target is None or size <= target):
                break
            if message["role"] != "tool" or message["content"] == DROPPED_OBSERVATION:
                continue
            size -= self.tokens(len(message["content"]) - len(DROPPED_OBSERVATION))
            message["content"] = DROPPED_OBSERVATION
            dropped.append(message)
        return dropped


def wire_chars(messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    """The size of a request in characters: its messages and its tool schemas."""
    size = sum(len(message.get("content") or "") + 16 for message in messages)
    size += sum(len(json.dumps(message["tool_calls"])) for message in messages if message.get("tool_calls"))
    return size + (len(json.dumps(tools)) if tools else 0)
