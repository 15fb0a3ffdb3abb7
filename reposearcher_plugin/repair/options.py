"""The repair patcher's settings: the model, sampling, and how much localized code the prompt shows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PatchOptions:
    model: str | None = None  # litellm model; required by the repair patcher
    api_base: str | None = None
    api_key: str | None = None
    model_name: str | None = None  # model_name_or_path of the rows (default: the model, or "gold")
    temperature: float = 0.0  # raised to 0.8 when samples > 1 and left at 0 (identical samples vote nothing)
    samples: int = 1
    top_functions: int = 5
    top_files: int = 3  # used when no localized entity resolves in the index
    context_lines: int = 10
    max_snippet_lines: int = 300  # per entity or file: a class or a module can be huge
    retries_on_fail: int = 2
    max_output_tokens: int = 4096
    request_retries: int = 3  # transient API errors, inside one attempt (LiteLLMPolicy backoff)
    index_cache_dir: str | None = None
