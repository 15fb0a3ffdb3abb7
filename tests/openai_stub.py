"""A loopback OpenAI-compatible chat server that answers from a script, shaped like vLLM's.

Agent tests drive the real client stack (litellm -> openai SDK -> httpx) against it, so request shapes,
tool-call parsing, streaming and error mapping are exercised end to end without a model.

    with StubServer([ScriptedReply(tool_calls=[("search_class", {"class_name": "QuerySet"})])]) as server:
        litellm.completion(model="openai/stub-model", api_base=server.base_url, api_key="x", ...)
        assert server.requests[0]["tools"]

Two server configurations, as vLLM is deployed:

- ``mode="native"``: started with ``--enable-auto-tool-choice --tool-call-parser ...``. Scripted tool calls
  come back as ``message.tool_calls`` with ``finish_reason="tool_calls"``, but only when the request
  carries ``tools`` (vLLM applies the parser only then); otherwise they stay text, as ``hermes`` renders.
- ``mode="hermes"``: no tool parser. Tool calls are written into ``message.content`` as
  ``<tool_call>{...}</tool_call>`` blocks, ``finish_reason="stop"``. Like vLLM, such a server rejects a
  request that carries ``tools`` (with ``tool_choice`` absent or ``"auto"``) with a 400: a hermes client
  must describe its tools in the prompt instead.

A request for a model other than ``model`` gets vLLM's 404 and consumes no reply; neither does the 400
above. An exhausted script answers 500.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ToolCall = tuple[str, dict[str, Any] | str]

_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
}
_HERMES_TOOLS_REJECTED = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)


@dataclass
class ScriptedReply:
    content: str | None = None  # assistant text
    tool_calls: Sequence[ToolCall] = ()  # (name, arguments as a dict, or a raw JSON string, maybe malformed)
    status: int = 200  # anything else answers an OpenAI error body with this status (500, 429, ...)
    prompt_tokens: int = 11
    completion_tokens: int = 7
    error_message: str = "scripted failure"  # the error body's message when status != 200
    delay_s: float = 0.0  # a slow server: wait this long before answering


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> dict[str, Any]:
    """vLLM's error JSON (OpenAI's shape, which the openai SDK turns into typed exceptions)."""
    kind = _ERROR_TYPES.get(status, "InternalServerError" if status >= 500 else "BadRequestError")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def raw_arguments(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def hermes_text(reply: ScriptedReply) -> str:
    """What a hermes-template model writes: its text, then one ``<tool_call>`` block per call.

    Raw-string arguments are pasted in verbatim, so a malformed script yields malformed text, as a model's
    would."""
    blocks = [
        f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {raw_arguments(arguments)}}}\n</tool_call>'
        for name, arguments in reply.tool_calls
    ]
    return "\n".join(part for part in [reply.content or "", *blocks] if part)


def assistant_message(reply: ScriptedReply, native: bool) -> tuple[dict[str, Any], str]:
    """The response's ``message`` and ``finish_reason``."""
    if native:
        calls = [
            {
                "id": f"chatcmpl-tool-{uuid.uuid4().hex[:16]}",
                "type": "function",
                "function": {"name": name, "arguments": raw_arguments(arguments)},
            }
            for name, arguments in reply.tool_calls
        ]
        # vLLM with a tool parser always sends the list, empty when the model called nothing.
        message = {"role": "assistant", "content": reply.content, "tool_calls": calls}
        return message, "tool_calls" if calls else "stop"
    return {"role": "assistant", "content": hermes_text(reply)}, "stop"


class StubServer:
    """Serve ``replies`` (consumed in order, or computed per request body) on 127.0.0.1 in a thread."""

    def __init__(
        self,
        replies: Sequence[ScriptedReply] | Callable[[dict[str, Any]], ScriptedReply],
        *,
        mode: str = "native",
        model: str = "stub-model",
        max_model_len: int | None = None,  # listed by GET /v1/models, as vLLM does, when set
        n_ctx: int | None = None,  # listed as meta.n_ctx, as llama.cpp's server does, when set
    ) -> None:
        if mode not in ("native", "hermes"):
            raise ValueError(f"mode must be 'native' or 'hermes', not {mode!r}")
        self.mode = mode
        self.model = model
        self.max_model_len = max_model_len
        self.n_ctx = n_ctx
        self.requests: list[dict[str, Any]] = []  # every chat request body, in arrival order
        self._replies = replies if callable(replies) else list(replies)
        self._answered = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> StubServer:
        handler = type("BoundHandler", (_Handler,), {"stub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True  # a client's idle keep-alive connection must not block close()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="openai-stub", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the stub server is not running (use it as a context manager)")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- behaviour ---------------------------------------------------------------------------------------

    def next_reply(self, body: dict[str, Any]) -> ScriptedReply:
        """Record ``body`` and pick its reply; raises HTTPError for what vLLM would refuse."""
        with self._lock:
            self.requests.append(body)
            if body.get("model") != self.model:
                raise HTTPError(404, f"The model `{body.get('model')}` does not exist.")
            if self.mode == "hermes" and body.get("tools") and body.get("tool_choice", "auto") == "auto":
                raise HTTPError(400, _HERMES_TOOLS_REJECTED)
            if not callable(self._replies):
                return self._scripted()
        return self._replies(body)  # outside the lock: a slow reply must not hold up the others

    def _scripted(self) -> ScriptedReply:
        """The next scripted reply (called under the lock)."""
        assert not callable(self._replies)
        if self._answered >= len(self._replies):
            raise HTTPError(
                500,
                f"stub script exhausted: {len(self._replies)} replies were scripted and all were used; "
                f"this is chat request #{len(self.requests)}",
            )
        self._answered += 1
        return self._replies[self._answered - 1]

    def completion(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        native = self.mode == "native" and bool(body.get("tools"))
        message, finish_reason = assistant_message(reply, native)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage(reply),
        }

    def chunks(self, body: dict[str, Any], reply: ScriptedReply) -> Iterator[dict[str, Any]]:
        """The same completion as ``completion``, as vLLM streams it: role, text, one delta per tool call
        (id and name first, then the arguments), the finish reason, then usage if asked for."""
        whole = self.completion(body, reply)
        message, finish_reason = whole["choices"][0]["message"], whole["choices"][0]["finish_reason"]
        base = {"id": whole["id"], "object": "chat.completion.chunk", "created": whole["created"]}
        base["model"] = self.model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }

        yield chunk({"role": "assistant", "content": ""})
        text = message.get("content") or ""
        for start in range(0, len(text), 16):  # several pieces, so clients must concatenate
            yield chunk({"content": text[start : start + 16]})
        for index, call in enumerate(message.get("tool_calls", [])):
            head = {"index": index, "id": call["id"], "type": "function"}
            yield chunk({"tool_calls": [head | {"function": {"name": call["function"]["name"]}}]})
            yield chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]}
            )
        yield chunk({}, finish_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": whole["usage"]}


def usage(reply: ScriptedReply) -> dict[str, int]:
    total = reply.prompt_tokens + reply.completion_tokens
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": total,
    }


class _Handler(BaseHTTPRequestHandler):
    stub: StubServer  # set on the per-server subclass
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects of a real server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": self.stub.model, "object": "model", "created": 0, "owned_by": "vllm"}
            if self.stub.max_model_len is not None:
                model["max_model_len"] = self.stub.max_model_len
            if self.stub.n_ctx is not None:
                model["meta"] = {"n_ctx": self.stub.n_ctx, "n_ctx_train": 32768}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, error_body(404, f"no route GET {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)  # read before any early answer, or the next keep-alive request breaks
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, error_body(404, f"no route POST {self.path}"))
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as error:
            self._send_json(400, error_body(400, f"request body is not JSON: {error}"))
            return
        try:
            reply = self.stub.next_reply(body)
        except HTTPError as error:
            self._send_json(error.status, error_body(error.status, error.message))
            return
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            if reply.status != 200:
                self._send_json(reply.status, error_body(reply.status, reply.error_message))
            elif body.get("stream"):
                self._send_stream(self.stub.chunks(body, reply))
            else:
                self._send_json(200, self.stub.completion(body, reply))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a delayed reply past its timeout)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: Iterator[dict[str, Any]]) -> None:
        # Server-sent events over chunked transfer encoding, which is how uvicorn delivers vLLM's stream.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
        for event in events:
            data = event.encode()
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
