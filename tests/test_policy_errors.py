"""Errors that no retry can fix end at once, with what to check (issue 13, item 7): litellm labels a
refused connection and a missing OpenAI key InternalServerError, which used to be retried with back-off
for 20-36 s."""

from __future__ import annotations

import socket

import pytest

from reposearcher_plugin.agent.policy import LiteLLMPolicy, PolicyError

MESSAGES = [{"role": "user", "content": "hi"}]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on exit: nothing listens there


def _failure(policy: LiteLLMPolicy) -> str:
    with pytest.raises(PolicyError) as caught:
        policy.complete(MESSAGES, None)
    return str(caught.value)


def test_refused_connection_is_not_retried():
    base = f"http://127.0.0.1:{_closed_port()}/v1"
    message = _failure(LiteLLMPolicy("openai/served", api_base=base, retries=3, backoff_s=30.0))
    assert "tries" not in message  # one attempt: a retry would have slept 15-45 s first
    assert f"nothing is listening at {base}: is the server running" in message


def test_missing_api_key_is_not_retried(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    message = _failure(LiteLLMPolicy("openai/gpt-4o", retries=3, backoff_s=30.0))
    assert "tries" not in message
    assert "no usable API key for openai/gpt-4o" in message and "--api-key-env" in message


@pytest.mark.parametrize("model", ["nonsense", "foo/bar"])
def test_unknown_provider_says_how_to_name_a_model(model):
    message = _failure(LiteLLMPolicy(model, retries=3, backoff_s=30.0))
    assert "tries" not in message
    assert f"{model!r} names no provider litellm knows: write provider/model" in message
