"""A stand-in for `python -m vllm.entrypoints.openai.api_server`, for `reposearcher models serve` tests.

`install_fake_vllm(dir)` writes a package `vllm.entrypoints.openai.api_server` under `dir` whose module
runs `main()` below, so with `dir` on PYTHONPATH the very command line `serve` builds starts this instead
of vLLM. It takes vLLM's arguments (and ignores those it does not need), prints the environment variables
`serve` must set (so tests can read them in the log), then answers like vLLM with a tool parser, through
tests/openai_stub.py: `GET /v1/models` lists the served name, and every chat request carrying `tools`
gets one native tool call.

Behaviour for failure tests, from the environment:
    FAKE_VLLM_DELAY=SECONDS   sleep before listening (a slow start-up)
    FAKE_VLLM_FAIL=MESSAGE    print MESSAGE as the last log line and exit with status 3 (a crash)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.openai_stub import ScriptedReply, StubServer, _Handler

ENV_SHOWN = ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND")


def install_fake_vllm(root: Path) -> Path:
    """Write the fake `vllm` package under `root`; returns `root` (to put on PYTHONPATH)."""
    package = root / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True, exist_ok=True)
    for directory in (root / "vllm", root / "vllm" / "entrypoints", package):
        (directory / "__init__.py").write_text("")
    (package / "api_server.py").write_text("from tests.fake_vllm_server import main\n\nmain()\n")
    return root


def _reply(body: dict) -> ScriptedReply:
    return ScriptedReply(tool_calls=[("search_class", {"class_name": "QuerySet"})])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, _rest = parser.parse_known_args(argv)
    for name in ENV_SHOWN:
        print(f"{name}={os.environ.get(name)}")
    print(f"fake vLLM: loading {args.served_model_name}", flush=True)
    if os.environ.get("FAKE_VLLM_FAIL"):
        print(os.environ["FAKE_VLLM_FAIL"], flush=True)
        sys.exit(3)
    time.sleep(float(os.environ.get("FAKE_VLLM_DELAY", "0")))
    stub = StubServer(_reply, model=args.served_model_name)
    handler = type("BoundHandler", (_Handler,), {"stub": stub})
    httpd = ThreadingHTTPServer((args.host, args.port), handler)
    print(f"fake vLLM: serving on {args.host}:{args.port}", flush=True)
    httpd.serve_forever()
