"""Local model servers: one process handling (start detached, health, status, stop) for both engines,
vLLM and llama.cpp (`vllm_cpu.py` and `llama_cpp.py` make each engine's program and its command line;
`processes.py` tells live processes and stops process groups).

One state file per server (`<models dir>/servers/<name>.json`) records its engine, pid (also its process
group: it is started in a session of its own, so stopping it also stops vLLM's engine and worker
processes), port, model and log. Only servers with a state file are ever stopped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reposearcher_plugin.files import write_json
from reposearcher_plugin.models import llama_cpp, vllm_cpu
from reposearcher_plugin.models.cache import ModelCache, read_json
from reposearcher_plugin.models.processes import pid_alive, terminate_group
from reposearcher_plugin.models.registry import ModelError

HOST = llama_cpp.HOST
LOG_TAIL_LINES = 25
VLLM = "vllm"
LLAMA_CPP = "llama.cpp"
ENGINES = (VLLM, LLAMA_CPP)

Progress = Callable[[int, int], None] | None
Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# --- state ---------------------------------------------------------------------------------------------


@dataclass
class ServerState:
    name: str  # the served model name
    pid: int  # also the process group id
    port: int
    model_dir: str  # what it serves: a Hugging Face folder (vLLM) or a GGUF file (llama.cpp)
    log: str
    command: list[str]
    max_model_len: int  # the context of one request
    started_at: float
    ready_s: float | None = None  # start-up time, once healthy
    engine: str = VLLM  # state files written before there were two engines are vLLM's

    @property
    def api_base(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def litellm_model(self) -> str:
        # litellm's `hosted_vllm/` and `openai/` both speak the OpenAI API to `api_base`.
        return f"hosted_vllm/{self.name}" if self.engine == VLLM else f"openai/{self.name}"


def load_state(cache: ModelCache, name: str) -> ServerState | None:
    data = read_json(cache.server_state(name))
    try:
        return ServerState(**data) if isinstance(data, dict) else None
    except TypeError:
        return None


def all_states(cache: ModelCache) -> list[ServerState]:
    if not cache.servers.is_dir():
        return []
    states = (load_state(cache, path.stem) for path in sorted(cache.servers.glob("*.json")))
    return [state for state in states if state is not None]


def _save_state(cache: ModelCache, state: ServerState) -> None:
    write_json(cache.server_state(state.name), asdict(state))


def _forget(cache: ModelCache, name: str) -> None:
    cache.server_state(name).unlink(missing_ok=True)


# --- is it ours -------------------------------------------------------------------------------------------


def is_our_server(state: ServerState) -> bool:
    """Whether `state.pid` is still the process we started (a pid can be reused once it exits).

    Reads /proc where there is one; elsewhere a live pid is taken as ours."""
    if not pid_alive(state.pid):
        return False
    cmdline = Path(f"/proc/{state.pid}/cmdline")
    if not cmdline.parent.exists():
        return True
    try:
        arguments = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return state.name.encode() in arguments and str(state.port).encode() in arguments


# --- health --------------------------------------------------------------------------------------------

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def served_models(port: int, timeout: float = 2.0) -> list[str] | None:
    """The model ids `GET /v1/models` lists on the port, or None when nothing answers it."""
    try:
        with _DIRECT.open(f"http://{HOST}:{port}/v1/models", timeout=timeout) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return [str(model.get("id")) for model in data or [] if isinstance(model, dict)]


def healthy(state: ServerState, timeout: float = 2.0) -> bool:
    return state.name in (served_models(state.port, timeout) or [])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log (progress-bar carriage returns folded), for error messages."""
    try:
        with path.open("rb") as source:
            source.seek(0, os.SEEK_END)
            source.seek(max(0, source.tell() - 64 * 1024))
            text = source.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    kept = [line.rsplit("\r", 1)[-1] for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "(the log is empty)"


# --- serve / stop --------------------------------------------------------------------------------------


@dataclass
class ServeRequest:
    name: str
    model: Path  # vLLM: a Hugging Face folder; llama.cpp: a GGUF file
    program: Path  # vLLM: a python that imports vllm; llama.cpp: a llama-server binary
    engine: str = VLLM
    port: int = 8000
    max_model_len: int = 16384  # the context of one request (vLLM --max-model-len, llama.cpp -c per slot)
    timeout_s: float = 600.0
    kv_cache_gib: float = 4.0  # vLLM only
    threads: int = 2  # llama.cpp only
    parallel: int = 1  # llama.cpp only: slots, i.e. requests decoded at once
    cache_reuse: int = 0  # llama.cpp only: --cache-reuse (0: off)

    def command(self) -> list[str]:
        if self.engine == LLAMA_CPP:
            return llama_cpp.server_command(
                self.program,
                self.model,
                self.name,
                self.port,
                self.max_model_len,
                self.threads,
                self.parallel,
                self.cache_reuse,
            )
        return vllm_cpu.server_command(self.program, self.model, self.name, self.port, self.max_model_len)

    def env(self) -> dict[str, str]:
        return vllm_cpu.server_env(self.kv_cache_gib) if self.engine == VLLM else dict(os.environ)


def serve(
    request: ServeRequest, cache: ModelCache, progress: Progress = None, log: Log = _quiet
) -> tuple[ServerState, bool]:
    """Start the server unless it is already serving; returns its state and whether it was running."""
    if request.engine not in ENGINES:
        raise ModelError(f"unknown engine {request.engine!r} (known: {', '.join(ENGINES)})")
    running = _running(request, cache, progress, log)
    if running is not None:
        return running, True
    _check_can_start(request, cache)
    log_path = cache.server_log(request.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = request.command()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=request.env(),
            cwd=cache.root,
            start_new_session=True,  # survives this command, and can be stopped as one group
        )
    state = ServerState(
        name=request.name,
        pid=process.pid,
        port=request.port,
        model_dir=str(request.model),
        log=str(log_path),
        command=command,
        max_model_len=request.max_model_len,
        started_at=time.time(),
        engine=request.engine,
    )
    _save_state(cache, state)
    log(f"started {request.name} (pid {process.pid}); waiting for {state.api_base}/models, log {log_path}")
    _wait_healthy(state, cache, request.timeout_s, progress, exited=process.poll)
    return state, False


def _running(request: ServeRequest, cache: ModelCache, progress: Progress, log: Log) -> ServerState | None:
    """The state of a server of this name that is up (or coming up), waiting for it; None when none is."""
    state = load_state(cache, request.name)
    if state is None:
        return None
    if not is_our_server(state):
        log(f"forgetting {request.name}: its process {state.pid} is gone")
        _forget(cache, request.name)
        return None
    if (state.engine, state.port, state.max_model_len) != (
        request.engine,
        request.port,
        request.max_model_len,
    ):
        log(
            f"{request.name} is already running ({state.engine}) on port {state.port} with a context of "
            f"{state.max_model_len}; `reposearcher models stop {request.name}` first to change them"
        )
    if not healthy(state):
        log(f"{request.name} (pid {state.pid}) is starting; waiting for it")
        _wait_healthy(state, cache, request.timeout_s, progress, exited=lambda: None, own=False)
    return state


def _check_can_start(request: ServeRequest, cache: ModelCache) -> None:
    if request.engine == LLAMA_CPP:
        llama_cpp.check_inputs(request.program, request.model)
    elif not request.program.exists():
        raise ModelError(
            f"no python at {request.program}: run `reposearcher models setup-server` "
            "(or pass --venv/--python)"
        )
    elif not (request.model / "config.json").is_file():
        raise ModelError(f"{request.model} is not a Hugging Face model folder (no config.json)")
    for other in all_states(cache):
        if other.port == request.port and other.name != request.name and is_our_server(other):
            raise ModelError(f"port {request.port} is used by {other.name}: pick another --port")
    if port_in_use(request.port):
        listed = served_models(request.port)
        what = f"a server of {', '.join(listed) or 'no models'}" if listed is not None else "something"
        raise ModelError(f"port {request.port} on {HOST} is already in use by {what}: pick another --port")


def _wait_healthy(
    state: ServerState,
    cache: ModelCache,
    timeout_s: float,
    progress: Progress,
    exited: Callable[[], int | None],
    own: bool = True,
) -> None:
    """Poll `GET /v1/models` until it lists the model; on death, or on timeout of a server this call
    started (`own`), stop it and report the log tail."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if progress:
            progress(int(elapsed), int(timeout_s))
        if healthy(state, timeout=2.0):
            state.ready_s = round(time.time() - state.started_at, 1)
            _save_state(cache, state)
            return
        status = exited()
        if status is not None or not pid_alive(state.pid):
            _forget(cache, state.name)
            terminate_group(state.pid, grace_s=5)  # children it may have left behind
            code = f" with status {status}" if status is not None else ""
            raise ModelError(
                f"the server of {state.name} exited{code} while starting; the end of {state.log}:\n"
                + log_tail(Path(state.log))
            )
        if elapsed > timeout_s and not own:
            raise ModelError(f"{state.name} (pid {state.pid}) is still not healthy; see {state.log}")
        if elapsed > timeout_s:
            terminate_group(state.pid)
            _forget(cache, state.name)
            raise ModelError(
                f"the server of {state.name} was not healthy after {timeout_s:g} s, so it was stopped "
                f"(raise --timeout on a slow machine); the end of {state.log}:\n" + log_tail(Path(state.log))
            )
        time.sleep(0.25 if elapsed < 5 else 1.0)  # quick for what starts fast, gentle for vLLM's ~100 s


def stop(cache: ModelCache, name: str | None = None, grace_s: float = 30.0) -> list[ServerState]:
    """Stop the named server (every recorded one when `name` is None); returns those that were running."""
    states = all_states(cache) if name is None else [s for s in [load_state(cache, name)] if s]
    stopped = []
    for state in states:
        if is_our_server(state):
            terminate_group(state.pid, grace_s)
            stopped.append(state)
        _forget(cache, state.name)
    return stopped


def describe(state: ServerState) -> dict[str, Any]:
    """What `models status` shows of one server."""
    alive = is_our_server(state)
    return {
        "name": state.name,
        "engine": state.engine,
        "pid": state.pid,
        "state": ("serving" if healthy(state) else "starting") if alive else "gone",
        "api_base": state.api_base,
        "model": state.litellm_model,
        "model_dir": state.model_dir,
        "max_model_len": state.max_model_len,
        "ready_s": state.ready_s,
        "uptime_s": round(time.time() - state.started_at) if alive else None,
        "log": state.log,
    }
