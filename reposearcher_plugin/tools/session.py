"""One conversation's use of the tools: the texts a model gets back, whoever runs the conversation.

The agent loop, verl's tool adapter and the MCP server all run calls through a :class:`ToolSession`, so a
model trained with RL reads at inference exactly the observations, notes and errors it was trained on:

- a call whose arguments could not be read gets :func:`invalid_call_text`;
- a call identical to an earlier successful one in the same conversation is not run again and gets
  :data:`REPEATED_NOTE` (the earlier result is still in the conversation; a caller that drops an old
  observation calls :meth:`ToolSession.forget`, so its call runs afresh);
- an observation longer than the session's limit is cut, with a note saying how much was left out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reposearcher_plugin.tools.profiles import FINAL_TOOLS, ToolBox

logger = logging.getLogger(__name__)

MAX_OBSERVATION_CHARS = 16_000  # ~4-5k tokens: a long class or a big search result, not a whole module
# A repeated call gets this note alone, not its earlier result again: weak models that repeat whole
# turns of calls would otherwise grow the prompt by thousands of tokens a turn for nothing (measured
# with a 0.5B on llama.cpp: three turns of the same nine calls took the prompt from 4k to 11k tokens).
REPEATED_NOTE = (
    "[Not run again: you already made this exact call, and its result is unchanged in the conversation "
    "above. Repeating a call brings nothing new: call another tool or other arguments, or give your "
    "final answer.]"
)


def invalid_call_text(problem: str) -> str:
    """The observation of a call whose arguments could not be read (``problem`` says why)."""
    return f"Error: {problem}. Write the call again as valid JSON."


def clip_observation(text: str, limit: int | None = MAX_OBSERVATION_CHARS) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... observation cut: {len(text) - limit} more characters; ask for less]"


def call_key(name: str, arguments: Any, raw_arguments: str = "") -> str:
    """Identity of a call for spotting repeats: its name plus its canonical arguments (or, when they
    cannot be written canonically, the text the model sent)."""
    if arguments is not None:
        try:
            return f"{name}\0{json.dumps(arguments, sort_keys=True)}"
        except (RecursionError, TypeError, ValueError):  # nested near the decoder's limit, or not JSON
            pass
    return f"{name}\0{raw_arguments}"


@dataclass(frozen=True)
class SessionObservation:
    text: str
    ok: bool  # False when the call was refused or failed; the text says why
    repeated: bool = False  # a repeat of an earlier successful call: not run, answered with the note
    key: str = ""  # the call's identity (call_key), remembered when the call succeeded


class ToolSession:
    """A profile's tool box, plus what one conversation has already been told.

    ``memo`` holds the identities of the successful calls whose observations the model still has; pass a
    set to share it across objects that serve one conversation (verl's adapter has one tool object per
    tool name), or ``remember_calls=False`` for a server whose clients may rightly ask again (MCP)."""

    def __init__(
        self,
        box: ToolBox,
        max_observation_chars: int | None = MAX_OBSERVATION_CHARS,
        memo: set[str] | None = None,
        remember_calls: bool = True,
    ) -> None:
        self.box = box
        self.max_observation_chars = max_observation_chars
        self.memo: set[str] | None = (memo if memo is not None else set()) if remember_calls else None

    def call(
        self, name: str, arguments: Mapping[str, Any] | None, raw_arguments: str = ""
    ) -> SessionObservation:
        key = call_key(name, arguments, raw_arguments)
        if self.memo is not None and key in self.memo and name not in FINAL_TOOLS:
            return SessionObservation(REPEATED_NOTE, ok=True, repeated=True, key=key)
        try:
            observation = self.box.call(name, arguments)
        except Exception as error:  # ToolBox.call never raises by contract; a bug must not end the run
            # the message is not shown: it may carry the server's absolute paths
            logger.exception("%s(%r) failed", name, arguments)
            return SessionObservation(f"Error: {name} failed ({type(error).__name__}).", ok=False, key=key)
        if observation.ok and self.memo is not None and name not in FINAL_TOOLS:
            self.memo.add(key)
        return SessionObservation(
            clip_observation(observation.text, self.max_observation_chars), observation.ok, key=key
        )

    def forget(self, key: str) -> None:
        """The model no longer has this call's observation (it was dropped): the call may run again."""
        if self.memo is not None:
            self.memo.discard(key)
