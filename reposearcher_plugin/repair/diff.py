"""The patch of a set of edited files, as ``git diff`` writes it in a temporary one-commit repository, so
it has real blob ids and is exactly what the SWE-bench harness's ``git apply`` takes."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from reposearcher_plugin.repair.files import ENCODING
from reposearcher_plugin.workspace.git import git


def git_diff(originals: Mapping[str, bytes | None], changed: Mapping[str, str]) -> str:
    """The diff from ``originals`` (``None``: the file did not exist) to ``changed``."""
    with tempfile.TemporaryDirectory(prefix="reposearcher-patch-") as directory:
        root = Path(directory)
        for path, raw in originals.items():
            if raw is not None:
                target = root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(raw)
        config = [
            "-c", "user.name=reposearcher", "-c", "user.email=reposearcher@localhost",
            "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null",
        ]  # fmt: skip
        git(None, "init", "-q", cwd=root)
        git(None, *config, "add", "-A", "-f", cwd=root)
        git(None, *config, "commit", "-q", "--no-verify", "--allow-empty", "-m", "base", cwd=root)
        for path, text in changed.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode(*ENCODING))
        git(None, *config, "add", "-A", "-f", cwd=root)
        # plain settings whatever the user's git config says: the harness applies it with `git apply`
        diff = git(
            None, *config, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-renames",
            "--src-prefix=a/", "--dst-prefix=b/", cwd=root,
        )  # fmt: skip
        return diff.stdout.decode(*ENCODING)
