"""The loopback vLLM-like stub server, driven through litellm as the agent drives a real server."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before the import, or it goes online

import litellm

from tests.openai_stub import ScriptedReply, StubServer

litellm.suppress_debug_info = True  # its "Give Feedback" banner on every exception

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_class",
            "description": "Find a class by name.",
            "parameters": {
                "type": "object",
                "properties": {"class_name": {"type": "string"}},
                "required": ["class_name"],
            },
        },
    }
]
MESSAGES = [{"role": "user", "content": "Where is QuerySet.union defined?"}]
MODELS = ["openai/stub-model", "hosted_vllm/stub-model"]


def complete(server: StubServer, model: str = "openai/stub-model", **kwargs):
    kwargs.setdefault("messages", MESSAGES)
    kwargs.setdefault("num_retries", 0)
    return litellm.completion(model=model, api_base=server.base_url, api_key="x", **kwargs)


@pytest.mark.parametrize("model", MODELS)
def test_native_mode_returns_tool_calls(model: str) -> None:
    calls = [("search_class", {"class_name": "QuerySet"}), ("search_class", '{"class_name": ')]
    with StubServer(
        [ScriptedReply("Let me look.", calls, prompt_tokens=120, completion_tokens=30)]
    ) as server:
        response = complete(server, model, tools=TOOLS)

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look."
    first, second = choice.message.tool_calls
    assert first.type == "function" and first.id.startswith("chatcmpl-tool-")
    assert first.function.name == "search_class"
    assert json.loads(first.function.arguments) == {"class_name": "QuerySet"}
    assert second.function.arguments == '{"class_name": '  # malformed arguments arrive untouched
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (120, 30)
    # litellm strips the provider prefix, passes tools through as given, and does not stream by itself
    (request,) = server.requests
    assert request["model"] == "stub-model"
    assert request["tools"] == TOOLS
    assert "stream" not in request


@pytest.mark.parametrize("model", MODELS)
def test_hermes_mode_returns_tool_calls_as_text(model: str) -> None:
    calls = [("search_class", {"class_name": "QuerySet"}), ("view", '{"path": "a.py"')]
    with StubServer([ScriptedReply("Let me look.", calls)], mode="hermes") as server:
        response = complete(server, model)

    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert choice.message.content == (
        "Let me look.\n"
        '<tool_call>\n{"name": "search_class", "arguments": {"class_name": "QuerySet"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "view", "arguments": {"path": "a.py"}\n</tool_call>'
    )


def test_hermes_server_rejects_tools_like_vllm_without_a_tool_parser() -> None:
    with StubServer([ScriptedReply("unused")], mode="hermes") as server:
        with pytest.raises(litellm.BadRequestError, match="enable-auto-tool-choice"):
            complete(server, "hosted_vllm/stub-model", tools=TOOLS)
        # tool_choice="none" is accepted, and the refusal consumed no reply
        assert complete(server, tools=TOOLS, tool_choice="none").choices[0].message.content == "unused"


def test_native_server_leaves_tool_calls_as_text_when_the_request_has_no_tools() -> None:
    with StubServer([ScriptedReply(tool_calls=[("search_class", {"class_name": "Q"})])]) as server:
        message = complete(server).choices[0].message
    assert not message.tool_calls
    assert message.content.startswith("<tool_call>\n")


@pytest.mark.parametrize("model", MODELS)
def test_streaming_reassembles_to_the_same_reply(model: str) -> None:
    reply = ScriptedReply(
        "A longer piece of text, sent in several chunks.", [("search_class", {"class_name": "Q"})]
    )
    with StubServer([reply]) as server:
        stream = complete(server, model, tools=TOOLS, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert server.requests[0]["stream"] is True
    assert len(chunks) > 3
    response = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    message = response.choices[0].message
    assert message.content == reply.content
    assert [(call.function.name, json.loads(call.function.arguments)) for call in message.tool_calls] == [
        ("search_class", {"class_name": "Q"})
    ]
    assert response.choices[0].finish_reason == "tool_calls"
    assert response.usage.prompt_tokens == 11 and response.usage.completion_tokens == 7


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("status", "error"), [(500, litellm.InternalServerError), (429, litellm.RateLimitError)]
)
def test_scripted_failures_raise_litellm_exceptions(model: str, status: int, error: type[Exception]) -> None:
    with StubServer([ScriptedReply(status=status, error_message="boom"), ScriptedReply("ok")]) as server:
        with pytest.raises(error, match="boom"):
            complete(server, model)
        assert len(server.requests) == 1  # num_retries=0: no retry by litellm or the openai SDK
        assert complete(server, model).choices[0].message.content == "ok"


def test_exhausted_script_answers_500_with_a_clear_message() -> None:
    with StubServer([ScriptedReply("only one")]) as server:
        complete(server)
        with pytest.raises(litellm.InternalServerError, match="stub script exhausted"):
            complete(server)


def test_unknown_model_is_404_like_vllm() -> None:
    with StubServer([ScriptedReply("ok")]) as server:
        with pytest.raises(litellm.NotFoundError, match="does not exist"):
            complete(server, "openai/other-model")
        assert complete(server).choices[0].message.content == "ok"  # the 404 consumed no reply


def test_callable_script_sees_each_request_and_multi_turn_history_is_sent() -> None:
    def reply(body: dict) -> ScriptedReply:
        turns = sum(message["role"] == "tool" for message in body["messages"])
        if turns == 0:
            return ScriptedReply(tool_calls=[("search_class", {"class_name": "QuerySet"})])
        return ScriptedReply(f"done after {turns} tool result(s)")

    with StubServer(reply) as server:
        first = complete(server, tools=TOOLS).choices[0].message
        call = first.tool_calls[0]
        history = [
            *MESSAGES,
            first.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "class QuerySet: ..."},
        ]
        second = complete(server, tools=TOOLS, messages=history).choices[0].message
    assert second.content == "done after 1 tool result(s)"
    assistant, tool = server.requests[1]["messages"][1:]
    assert assistant["tool_calls"][0]["function"] == {
        "name": "search_class",
        "arguments": call.function.arguments,
    }
    assert tool == {"role": "tool", "tool_call_id": call.id, "content": "class QuerySet: ..."}


def test_models_endpoint_and_lifecycle() -> None:
    with StubServer([], model="my-model") as server:
        base_url = server.base_url
        with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
            listing = json.load(response)
    assert [model["id"] for model in listing["data"]] == ["my-model"]
    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with pytest.raises(ValueError, match="mode"):
        StubServer([], mode="xml")


def test_a_slow_reply_does_not_hold_up_concurrent_requests() -> None:
    release = threading.Event()

    def reply(body: dict) -> ScriptedReply:
        if "slow" in body["messages"][0]["content"]:
            release.wait(10)
        return ScriptedReply("answered")

    with StubServer(reply) as server:
        slow = threading.Thread(
            target=complete, args=(server,), kwargs={"messages": [{"role": "user", "content": "slow"}]}
        )
        slow.start()
        started = time.monotonic()
        assert complete(server).choices[0].message.content == "answered"
        assert time.monotonic() - started < 5
        release.set()
        slow.join(10)
    assert len(server.requests) == 2
