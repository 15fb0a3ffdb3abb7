"""Optional dependencies: which extra of the distribution brings which import, and the one message a
missing one gets. Used by every layer (it imports nothing of ours), so a missing package is one line
naming the extra, never a traceback."""

from __future__ import annotations

DISTRIBUTION = "reposearcher-plugin"
# top-level import name -> the extra that installs it (pyproject.toml [project.optional-dependencies])
EXTRA_OF_MODULE: dict[str, str] = {
    "litellm": "llm",
    "mcp": "mcp",
    "minisweagent": "mini-swe-agent",
    "datasets": "eval",
    "matplotlib": "eval",
    "swebench": "eval",
    "docker": "docker",
    "verl": "rl",
    "pandas": "rl",
    "pyarrow": "rl",
    "torch": "rl",
    "transformers": "models",
    "gguf": "models",
    "sentencepiece": "models",
}


def install_hint(extra: str) -> str:
    """How to add an extra; the distribution is not on PyPI, so name what works from a clone and a wheel."""
    return (
        f"pip install -e '.[{extra}]' from a clone of RepoSearcher, "
        f"or pip install 'reposearcher_plugin-<version>-py3-none-any.whl[{extra}]' from a wheel"
        + ("; install torch from its CPU wheel first (pip install torch==2.13.0)" if extra == "rl" else "")
    )


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """The message for an import of an optional dependency that is not installed, else None (a missing
    module we do not know is a real bug and keeps its traceback)."""
    top = (error.name or "").split(".", 1)[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return f"this needs {top}, from the '{extra}' extra: {install_hint(extra)}"
