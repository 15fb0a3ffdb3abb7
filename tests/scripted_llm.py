"""A scripted chat model behind litellm's real request path (a ``litellm.CustomLLM`` provider).

``scripted_model(replies)`` registers a provider and returns the model string to hand to
``LiteLLMPolicy``; every request litellm makes is recorded for assertions. A reply is a string
(assistant text), a dict ``{"content": ..., "tool_calls": [(name, arguments), ...]}`` (arguments a dict
or a raw, possibly malformed, JSON string), or an exception instance to raise.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

_names = itertools.count()


@dataclass
class ScriptedLLM(litellm.CustomLLM):
    replies: list[Any]
    requests: list[dict[str, Any]] = field(default_factory=list)
    # None: every reply reports 100 prompt tokens; a number: the request's characters over it, as a
    # tokenizer would count (for tests of context budgeting)
    chars_per_token: float | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def completion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        options = kwargs.get("optional_params") or {}
        self.requests.append(
            {
                "messages": kwargs["messages"],
                "tools": options.get("tools"),
                "tool_choice": options.get("tool_choice"),
                "max_tokens": options.get("max_tokens"),
            }
        )
        if not self.replies:
            raise litellm.exceptions.BadRequestError(
                "script exhausted", model="scripted", llm_provider="scripted"
            )
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, str):
            reply = {"content": reply}
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
        calls = reply.get("tool_calls") or []
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"native_{number}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                    },
                }
                for number, (name, arguments) in enumerate(calls)
            ]
        prompt_tokens = 100
        if self.chars_per_token:
            chars = len(json.dumps(kwargs["messages"])) + len(json.dumps(options.get("tools") or []))
            prompt_tokens = int(chars / self.chars_per_token)
        return litellm.ModelResponse(
            choices=[{"message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 10,
                "total_tokens": prompt_tokens + 10,
            },
        )


def scripted_model(replies: list[Any], chars_per_token: float | None = None) -> tuple[str, ScriptedLLM]:
    """Register a fresh scripted provider; returns (model string, the handler holding the requests)."""
    handler = ScriptedLLM(list(replies), chars_per_token=chars_per_token)
    provider = f"scripted{next(_names)}"
    litellm.custom_provider_map = [
        entry for entry in litellm.custom_provider_map if not entry["provider"].startswith("scripted")
    ] + [{"provider": provider, "custom_handler": handler}]
    litellm.utils.custom_llm_setup()
    return f"{provider}/test-model", handler
