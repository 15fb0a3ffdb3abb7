"""Where RepoSearcher keeps what it caches: one folder for every layer's cache (the index's parse cache,
the workspace's snapshots, the demo's sources, the hosts' grammar checks). Imports nothing of ours: every
layer may use it, so no layer imports another only to find this folder."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$REPOSEARCHER_CACHE``, else ``reposearcher`` under ``$XDG_CACHE_HOME`` (default ``~/.cache``)."""
    configured = os.environ.get("REPOSEARCHER_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reposearcher"
