"""A stand-in for llama.cpp's `llama-server`, for `reposearcher models serve --engine llama.cpp` tests.

`install_fake_llama_server(path)` writes an executable at `path` that runs `main()` below with the test's
python, so it takes the very command line `serve` builds. Like the real server (llama.cpp 11181) it
answers `--version`, listens at once but answers 503 "Loading model" until the model is loaded, then lists
the model under its `--alias` at `GET /v1/models` the way llama.cpp does (no `max_model_len`: the context
of one request is `data[0].meta.n_ctx`, i.e. `-c` divided by `-np`; also `GET /props`
`default_generation_settings.n_ctx`), and answers chat requests through tests/openai_stub.py with one
native tool call when the request carries `tools` (what `--jinja` gives for a template with tools).

Behaviour for failure tests, from the environment:
    FAKE_LLAMA_DELAY=SECONDS   seconds of "Loading model" (503) before it serves
    FAKE_LLAMA_FAIL=MESSAGE    print MESSAGE as the last log line and exit with status 1 (a crash)
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.openai_stub import ScriptedReply, StubServer, _Handler, error_body

N_CTX_TRAIN = 32768
VERSION = "version: 0 (fake)"


def install_fake_llama_server(path: Path, repo_root: Path) -> Path:
    """Write the fake `llama-server` executable at `path`; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/sh\nPYTHONPATH={repo_root} exec {sys.executable} -m tests.fake_llama_server "$@"\n'
    )
    path.chmod(0o755)
    return path


def _reply(body: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(tool_calls=[("search_class", {"class_name": "QuerySet"})])


class _LlamaHandler(_Handler):
    loaded: threading.Event
    n_ctx: int
    n_parallel: int

    def _loading(self) -> bool:
        if not self.loaded.is_set():
            self._send_json(
                503, {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}
            )
            return True
        return False

    def do_GET(self) -> None:
        if self._loading():
            return
        path = self.path.rstrip("/")
        slot_ctx = min(self.n_ctx // self.n_parallel, N_CTX_TRAIN)
        if path in ("/v1/models", "/models"):
            model = {
                "id": self.stub.model,
                "aliases": [self.stub.model],
                "tags": [],
                "object": "model",
                "created": int(time.time()),
                "owned_by": "llamacpp",
                "meta": {"vocab_type": 2, "n_ctx": slot_ctx, "n_ctx_train": N_CTX_TRAIN},
            }
            self._send_json(200, {"models": [{"name": self.stub.model}], "object": "list", "data": [model]})
        elif path == "/props":
            settings = {"n_ctx": slot_ctx, "params": {}}
            props = {"default_generation_settings": settings, "total_slots": self.n_parallel}
            self._send_json(200, props | {"model_alias": self.stub.model, "build_info": VERSION})
        elif path == "/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, error_body(404, f"File Not Found: {self.path}"))

    def do_POST(self) -> None:
        if not self.loaded.is_set():
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._loading()
            return
        super().do_POST()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", action="store_true")
    parser.add_argument("-m", "--model")
    parser.add_argument("--alias")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("-c", "--ctx-size", type=int, default=4096)
    parser.add_argument("-np", "--parallel", type=int, default=1)
    args, _rest = parser.parse_known_args(argv)
    if args.version:
        print(VERSION, file=sys.stderr)
        print("built with fake for tests", file=sys.stderr)
        return
    name = args.alias or Path(args.model).name
    print(f"fake llama-server: loading {args.model} as {name}", flush=True)
    if os.environ.get("FAKE_LLAMA_FAIL"):
        print(os.environ["FAKE_LLAMA_FAIL"], flush=True)
        sys.exit(1)
    loaded = threading.Event()
    stub = StubServer(_reply, model=name)
    fields = {"stub": stub, "loaded": loaded, "n_ctx": args.ctx_size, "n_parallel": args.parallel}
    handler = type("BoundLlamaHandler", (_LlamaHandler,), fields)
    httpd = ThreadingHTTPServer((args.host, args.port), handler)
    print(f"fake llama-server: listening on {args.host}:{args.port}", flush=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    time.sleep(float(os.environ.get("FAKE_LLAMA_DELAY", "0")))
    loaded.set()
    print("fake llama-server: model loaded", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
