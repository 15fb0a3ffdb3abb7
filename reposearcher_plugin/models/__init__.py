"""Real local models with no API key: fetch Qwen2.5-Coder GGUFs, convert them, serve them with vLLM.

`registry` (what is known and its digests), `cache` (where things go), `weights` (fetch, verify,
convert), `server` (the vLLM venv and server processes). The `reposearcher models` command drives them.
"""

from reposearcher_plugin.models.cache import ModelCache
from reposearcher_plugin.models.registry import MODELS, ModelError, ModelSpec, Part, load_registry, resolve

__all__ = ["MODELS", "ModelCache", "ModelError", "ModelSpec", "Part", "load_registry", "resolve"]
