"""Policies: what answers the agent's messages. ``LiteLLMPolicy`` reaches any model litellm knows.

A policy takes wire messages (and tool schemas for native function calling) and returns a
:class:`Reply`. Transient failures (rate limits, timeouts, 5xx, dropped connections) are retried with
exponential backoff; errors that another try cannot fix (authentication, bad request, context window)
are raised at once as :class:`PolicyError`, which the loop records in the run's result.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from reposearcher_plugin.agent.tool_calls import ParsedCall, native_tool_calls


class PolicyError(RuntimeError):
    """The model could not be reached or refused the request, after any retries."""

    def __init__(self, message: str, *, context_window: bool = False, out_of_time: bool = False) -> None:
        super().__init__(message)
        self.context_window = context_window
        self.out_of_time = out_of_time  # the request's deadline came first


@dataclass
class Reply:
    content: str
    tool_calls: list[ParsedCall] = field(default_factory=list)  # native function calls only
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None


class Policy(Protocol):
    name: str

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        deadline: float | None = None,
        allow_calls: bool = True,
        max_tokens: int | None = None,
    ) -> Reply: ...


def import_litellm() -> Any:
    """litellm, imported so that it never reaches for the network (its cost map ships with it)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class PolicySettings(BaseModel):
    """How the localizer calls its LLM; the ``policy`` part of a :class:`LocalizerOptions`, passed to
    :class:`LiteLLMPolicy` as keywords (the model string is the options' own ``model``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    api_base: str | None = None
    """OpenAI-compatible endpoint, e.g. ``http://localhost:8000/v1``."""
    api_key: str | None = Field(default=None, repr=False)
    """The key itself; configs name its environment variable instead (``api_key_env``)."""
    temperature: float = 0.0
    max_output_tokens: int = 1024
    """Longest reply per turn. A search turn is a few calls and a short reason: small models that loop were
    seen writing 1,200+ tokens in one reply (minutes on a CPU server); raise it for models that reason at
    length."""
    retries: int = 3
    """LLM retries with backoff on transient failures."""


@dataclass
class LiteLLMPolicy:
    """A chat model through litellm: ``hosted_vllm/Qwen2.5-Coder-7B-Instruct`` with ``api_base``,
    ``anthropic/claude-...``, ``openai/gpt-...``."""

    model: str
    api_base: str | None = None
    api_key: str | None = None
    temperature: float = 0.0
    max_output_tokens: int = 4096
    retries: int = 3
    backoff_s: float = 2.0
    timeout_s: float = 300.0
    extra: dict[str, Any] = field(default_factory=dict)  # passed to litellm.completion as is
    _window: int | None = field(default=None, init=False, repr=False)
    _window_asked: bool = field(default=False, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.model

    def context_window(self) -> int | None:
        """The model's context window in tokens, asked once: an OpenAI-compatible server lists it at
        ``GET /models`` (vLLM: ``max_model_len``, llama.cpp: ``meta.n_ctx``); a hosted model's comes from
        litellm's model map.
        None when neither knows; the loop then only reacts to context-window errors."""
        if not self._window_asked:
            self._window_asked = True
            self._window = self._server_window() if self.api_base else self._known_window()
        return self._window

    def _server_window(self) -> int | None:
        import urllib.request  # here: the offline localizers import this module but never ask a server

        served = self.model.split("/", 1)[-1]
        request = urllib.request.Request(
            self.api_base.rstrip("/") + "/models",  # type: ignore[union-attr]
            headers={
                "Authorization": f"Bearer {self.api_key or os.environ.get('OPENAI_API_KEY') or 'EMPTY'}"
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                listing = json.loads(response.read())
        except (OSError, ValueError):
            return None
        models = listing.get("data") if isinstance(listing, dict) else None
        for entry in models if isinstance(models, list) else []:
            if isinstance(entry, dict) and entry.get("id") == served:
                meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
                # vLLM: max_model_len; llama.cpp's server: meta.n_ctx (the context it was started with)
                window = entry.get("max_model_len") or entry.get("context_length") or meta.get("n_ctx")
                return int(window) if isinstance(window, int) and window > 0 else None
        return None

    def _known_window(self) -> int | None:
        try:
            info = import_litellm().get_model_info(self.model)
        except Exception:  # litellm raises a bare Exception for models it does not map
            return None
        window = info.get("max_input_tokens") or info.get("max_tokens")
        return int(window) if window else None

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        deadline: float | None = None,
        allow_calls: bool = True,
        max_tokens: int | None = None,
    ) -> Reply:
        """One reply, of at most ``max_tokens`` (when given, under the policy's own cap). ``deadline`` (a
        ``time.perf_counter()`` value) bounds the request and its retries: on a slow local server one reply
        can take longer than the whole run may, and a retry after a timeout would pay the same cost again.
        ``allow_calls=False`` still sends ``tools`` (with ``tool_choice="none"``): the prompt then starts
        as the search turns' did, so a server's prefix cache serves it, and the model sees the tool list
        it was trained with."""
        litellm = import_litellm()
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": min(self.max_output_tokens, max_tokens or self.max_output_tokens),
            "timeout": self.timeout_s,
            "num_retries": 0,  # retries are ours, so that they are counted and backed off the same way
            "max_retries": 0,  # ... and not the OpenAI client's either (2 hidden retries by default)
            "drop_params": True,
        }
        if tools:
            request["tools"] = tools
            if not allow_calls:
                request["tool_choice"] = "none"
        if self.api_base:
            request["api_base"] = self.api_base
            # local OpenAI-compatible servers take any key, but the client insists on one
            request["api_key"] = self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        elif self.api_key:
            request["api_key"] = self.api_key
        request |= self.extra
        attempt = 0
        while True:
            started = time.perf_counter()
            if deadline is not None:
                left = deadline - started
                if left <= 1.0:
                    raise PolicyError(
                        "the run's time is up (--max-wall) before the model could answer", out_of_time=True
                    )
                request["timeout"] = min(self.timeout_s, left)
            try:
                response = litellm.completion(**request)
            except Exception as error:  # litellm maps every provider's errors to its own classes
                advice = _no_retry_advice(litellm, error, self.model, self.api_base)
                out_of_time = deadline is not None and time.perf_counter() >= deadline - 1.0
                if advice is not None or out_of_time or attempt >= self.retries:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    check = f" -- {advice}" if advice else ""
                    raise PolicyError(
                        f"{type(error).__name__}{tries}: {_short(error)}{check}",
                        context_window=isinstance(error, litellm.exceptions.ContextWindowExceededError),
                        out_of_time=out_of_time,
                    ) from error
                attempt += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
                continue
            return _reply(response, time.perf_counter() - started)


def _causes(error: BaseException) -> list[BaseException]:
    """The error and everything it was raised from or during (litellm wraps the client's errors)."""
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending and len(chain) < 50:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending += [current.__cause__, current.__context__]
    return chain


def _no_retry_advice(litellm: Any, error: Exception, model: str, api_base: str | None) -> str | None:
    """What to check when retrying cannot help ("" when there is nothing to add), or None for an error
    worth a retry. litellm labels a refused connection and a missing OpenAI key InternalServerError,
    which would otherwise be retried with back-off for half a minute."""
    exceptions = litellm.exceptions
    text = str(error)
    if any(isinstance(cause, ConnectionRefusedError) for cause in _causes(error)):
        where = api_base or f"the provider of {model}"
        return f"nothing is listening at {where}: is the server running, and is --api-base right?"
    auth = exceptions.AuthenticationError | exceptions.PermissionDeniedError
    if isinstance(error, auth) or "Missing credentials" in text:
        return (
            f"no usable API key for {model}: set the provider's variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, "
            "...) or name one with --api-key-env"
        )
    if "LLM Provider NOT provided" in text:
        return (
            f"{model!r} names no provider litellm knows: write provider/model, e.g. openai/gpt-4o, "
            "anthropic/claude-sonnet-4-5, or hosted_vllm/NAME with --api-base"
        )
    final = (
        exceptions.NotFoundError,
        exceptions.BadRequestError,  # context window exceeded is one
        exceptions.UnprocessableEntityError,
    )
    return "" if isinstance(error, final) else None


def _short(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 400 else text[:400] + " ..."


def _reply(response: Any, latency: float) -> Reply:
    choice = response.choices[0]
    message = choice.message
    usage = getattr(response, "usage", None)
    return Reply(
        content=message.content or "",
        tool_calls=native_tool_calls(getattr(message, "tool_calls", None)),
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        latency_s=latency,
        finish_reason=getattr(choice, "finish_reason", None),
    )
