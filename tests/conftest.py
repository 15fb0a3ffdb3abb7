from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

from reposearcher_plugin.index import ParseCache, RepoIndex, build_index

# time budgets are a benchmark's job (eval/), never a test's: hypothesis' 200 ms per-example deadline only
# makes property tests fail on a loaded machine
settings.register_profile("reposearcher", deadline=None)
settings.load_profile("reposearcher")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# a clone without ../shared beside it (a newcomer's checkout) skips these and says why, instead of failing
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"needs the offline evaluation data at {SHARED_DATA} (the project's ../shared/data beside the clone)",
)


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (path -> text, dedented, or raw bytes) under ``root``."""
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_all(root: Path, message: str = "v1") -> str:
    """Commit everything under ``root`` (making it a repository first if need be); returns the commit id."""
    if not (root / ".git").exists():
        git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def cache(tmp_path: Path) -> ParseCache:
    return ParseCache(tmp_path / "cache")


@pytest.fixture
def make_index(tmp_path: Path, cache: ParseCache):
    """Build a repository from a dict of files and index it with a private cache."""

    def make(files: dict[str, str | bytes], name: str = "repo") -> RepoIndex:
        root = write_tree(tmp_path / name, files)
        return build_index(root, cache=cache, workers=1)

    return make
