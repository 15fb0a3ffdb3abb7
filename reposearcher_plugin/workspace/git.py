"""Running git on a repository we only read from, and reading objects out of it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from reposearcher_plugin.workspace.errors import WorkspaceError

FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    # A missing GitHub repository answers with a credential prompt; fail instead of hanging on it.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_ASKPASS", "true")
    # Messages are matched in tests and quoted in errors: keep them in English.
    env["LC_ALL"] = "C"
    return env


def git(
    git_dir: Path | None,
    *args: str,
    input: bytes | None = None,
    check: bool = True,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git [--git-dir=git_dir] args``. Mirrors made by another user (read-only shared mirrors) would
    be refused as "dubious ownership"; we only run read-only plumbing on them, which runs no hooks and no
    configured commands, so ownership checks are waived for these calls."""
    command = ["git", "-c", "safe.directory=*"]
    if git_dir is not None:
        command.append(f"--git-dir={git_dir}")
    command.extend(args)
    try:
        result = subprocess.run(
            command, input=input, capture_output=True, timeout=timeout, env=git_env(), cwd=cwd
        )
    except FileNotFoundError:
        raise WorkspaceError("git is not installed (it is needed to read repository snapshots)") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"git {' '.join(args[:3])} did not finish within {timeout} s") from None
    if check and result.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed in {git_dir}: {last_line(result.stderr)}")
    return result


def last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no message)"


def is_git_dir(path: Path) -> bool:
    """A git directory (bare repository or a work tree's .git): HEAD and objects/ are always there; a
    linked work tree's (``.git/worktrees/<name>``) has HEAD and names the common one in ``commondir``."""
    if not (path / "HEAD").is_file():
        return False
    if (path / "objects").is_dir():
        return True
    try:
        common = (path / "commondir").read_text(errors="replace").strip()
    except OSError:
        return False
    return bool(common) and (path / common / "objects").is_dir()


def resolve_commit(git_dir: Path, commit: str) -> str | None:
    """The full id of ``commit`` (a full or abbreviated id, or a ref) in ``git_dir``, or None."""
    result = git(
        git_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}^{{commit}}", check=False
    )
    if result.returncode != 0:
        return None
    return result.stdout.decode().strip()


def read_head(git_dir: Path) -> str | None:
    """The commit ``HEAD`` names, read from the files (no git process: a fifth of a warm localization's
    history cost): a detached ``HEAD`` holds the id; ``ref: refs/heads/x`` is looked up as a loose ref,
    then in ``packed-refs``, in the repository's common directory for a linked work tree. None when not
    found that way (a reftable repository, a damaged file): then ask ``resolve_commit``."""
    try:
        head = (git_dir / "HEAD").read_text(errors="replace").strip()
        common_file = git_dir / "commondir"
        common = (
            (git_dir / common_file.read_text(errors="replace").strip()) if common_file.is_file() else git_dir
        )
    except OSError:
        return None
    for _ in range(5):  # symbolic refs may chain; git itself stops at 5
        if FULL_SHA.fullmatch(head.lower()):
            return head.lower()
        if not head.startswith("ref:"):
            return None
        ref = head[len("ref:") :].strip()
        if not ref.startswith("refs/") or ".." in ref.split("/"):
            return None
        loose = next((base / ref for base in (git_dir, common) if (base / ref).is_file()), None)
        if loose is None:
            return _packed_ref(common, ref)
        try:
            head = loose.read_text(errors="replace").strip()
        except OSError:
            return None
    return None


def _packed_ref(git_dir: Path, ref: str) -> str | None:
    try:
        lines = (git_dir / "packed-refs").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(("#", "^")):
            continue
        sha, _, name = line.partition(" ")
        if name.strip() == ref and FULL_SHA.fullmatch(sha.lower()):
            return sha.lower()
    return None


def promisor_remote(git_dir: Path) -> str | None:
    """The remote a partial clone fetches missing objects from, or None for a complete repository.
    Older git records it as ``extensions.partialClone``, newer as ``remote.<name>.promisor = true``."""
    result = git(git_dir, "config", "--get", "extensions.partialclone", check=False)
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.decode().strip()
    result = git(git_dir, "config", "--bool", "--get-regexp", r"^remote\..*\.promisor$", check=False)
    for line in result.stdout.decode().splitlines():
        key, _, value = line.partition(" ")
        if value.strip() == "true":
            return key[len("remote.") : -len(".promisor")]
    return None


def missing_objects(git_dir: Path, commit: str) -> list[str]:
    """Objects of ``commit``'s tree that a partial clone has not fetched yet (no fetching here)."""
    result = git(git_dir, "rev-list", "--objects", "--missing=print", "--no-walk", commit)
    return [line[1:] for line in result.stdout.decode().splitlines() if line.startswith("?")]


def fetch_objects(git_dir: Path, remote: str, oids: Sequence[str], timeout: float | None) -> None:
    """Fetch the given objects from a partial clone's promisor remote in one request (what git itself does
    when it lazily fetches; one blob at a time would be one round trip each)."""
    git(
        git_dir,
        "-c",
        "fetch.negotiationAlgorithm=noop",
        "fetch",
        remote,
        "--no-tags",
        "--no-write-fetch-head",
        "--recurse-submodules=no",
        "--filter=blob:none",
        "--stdin",
        input="".join(f"{oid}\n" for oid in oids).encode(),
        timeout=timeout,
    )
