"""Localization instances mined from a repository's history: query = a commit message, gold = the
definitions its diff edits (the gold-from-patch rules of ``gold.py``), base = its parent.

Rules and their order, leakage rules included, are documented in docs/mining.md; this module applies
them (the commit rules are ``mining_rules.py``, the leakage rules ``mining_leakage.py``, the gold of a
commit ``mining_gold.py``, resuming ``mining_state.py``). The work per repository, linear in the length
of its history:

1. one ``git log --raw`` pass reads every commit's message and changed files; the filters that need no
   diff (merges, reverts, release bumps, test-only or docs-only commits, ...) decide most commits here;
2. one ``git diff-tree --stdin`` process writes the diffs of the commits left, which are split into
   ``patch`` (every file but tests) and ``test_patch``;
3. gold is derived from ``patch`` against blobs read out of git at the parent (one ``git cat-file
   --batch`` process; nothing is checked out), each file version parsed once and kept in the parse
   cache the index uses, which is keyed by content.

Rows are SWE-bench-style, readable by ``instances.load_instances``. They are appended and flushed one at
a time, and every examined commit's verdict goes to ``<out>.commits.jsonl``, so a rerun of the same
command skips what was examined and ends with the same output and summary as an uninterrupted run.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import unidiff

from reposearcher_plugin.evaluation.diffs import DiffError, diff_paths, parse_diff
from reposearcher_plugin.evaluation.gold import explain_patch, labels_of
from reposearcher_plugin.evaluation.locations import SEPARATOR
from reposearcher_plugin.evaluation.mining_gold import CommitTree, ParseMemo
from reposearcher_plugin.evaluation.mining_leakage import ExcludedInstance, RepoExclusions, changed_lines
from reposearcher_plugin.evaluation.mining_rules import (
    FILTERS,
    KEPT,
    MineOptions,
    files_verdict,
    message_verdict,
    problem_statement,
)
from reposearcher_plugin.evaluation.mining_state import MiningState, summary_path
from reposearcher_plugin.files import write_json
from reposearcher_plugin.index import TEST, ParseCache, path_role
from reposearcher_plugin.workspace.history import (
    BlobReader,
    CommitRecord,
    commit_patches,
    read_history,
)
from reposearcher_plugin.workspace.sources import slug

Progress = Callable[[int, int], None]


@dataclass
class RepoSummary:
    repo: str
    commits: int = 0  # examined: in this run or an earlier one of the same command
    resumed: int = 0  # decided by an earlier run
    verdicts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process and its git processes: comparable on a shared machine
    parsed: int = 0  # file versions parsed by tree-sitter in this run
    parses_reused: int = 0  # ... taken from memory or the parse cache
    excluded_instances: int = 0  # excluded instances that concern this repository
    excluded_gold_errors: list[str] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "commits": self.commits,
            "kept": self.verdicts[KEPT],
            "filtered": {name: self.verdicts[name] for name, _ in FILTERS},
            "resumed": self.resumed,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "parsed": self.parsed,
            "parses_reused": self.parses_reused,
            "excluded_instances": self.excluded_instances,
            "excluded_gold_errors": self.excluded_gold_errors[:20],
            "interrupted": self.interrupted,
        }


def instance_id_for(repo: str, commit: str) -> str:
    return f"{slug(repo, '__')}-{commit[:12]}"


def mine_repository(
    git_dir: Path,
    repo: str,
    options: MineOptions,
    state: MiningState,
    *,
    excluded: Sequence[ExcludedInstance] = (),
    cache: ParseCache | None = None,
    progress: Progress | None = None,
) -> RepoSummary:
    """Mine one repository into ``state``; Ctrl-C stops it with every decided commit recorded."""
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    summary = RepoSummary(repo)
    parses = ParseMemo(cache)
    try:
        with BlobReader(git_dir) as blobs:
            exclusions = RepoExclusions.build(excluded, repo, git_dir, blobs, parses)
            summary.excluded_instances = exclusions.instances
            summary.excluded_gold_errors = exclusions.gold_errors
            _mine(git_dir, repo, options, state, exclusions, blobs, parses, summary, progress)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        parses.flush()
        summary.parsed = parses.parsed
        summary.parses_reused = parses.from_cache + parses.from_memory
        summary.seconds = time.perf_counter() - started
        summary.cpu_seconds = _cpu_seconds() - cpu_started
    return summary


def _cpu_seconds() -> float:
    """User and system time of this process and of its children that have ended (the git processes of
    a repository end before its summary is taken)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _mine(
    git_dir: Path,
    repo: str,
    options: MineOptions,
    state: MiningState,
    exclusions: RepoExclusions,
    blobs: BlobReader,
    parses: ParseMemo,
    summary: RepoSummary,
    progress: Progress | None,
) -> None:
    history = read_history(git_dir, since=options.since, until=options.until, limit=options.limit)
    candidates: dict[str, tuple[CommitRecord, str]] = {}  # commit -> (record, problem statement)
    for record in history:
        summary.commits += 1
        known = state.verdicts.get((repo, record.sha))
        if known is not None:
            summary.resumed += 1
            summary.verdicts[known] += 1
            continue
        statement = problem_statement(record.message)
        verdict = _cheap_verdict(record, statement, exclusions, options)
        if verdict is None:
            candidates[record.sha] = (record, statement)
        else:
            state.record(repo, record.sha, verdict)
            summary.verdicts[verdict] += 1
    state.commits.flush()
    done = summary.commits - len(candidates)
    if progress:
        progress(done, summary.commits)
    for commit, text in commit_patches(git_dir, list(candidates)):
        record, statement = candidates[commit]
        verdict, row = _diff_verdict(repo, record, statement, text, exclusions, blobs, parses, options)
        state.record(repo, commit, verdict, row)
        summary.verdicts[verdict] += 1
        done += 1
        if progress:
            progress(done, summary.commits)
    state.commits.flush()


def _cheap_verdict(
    record: CommitRecord, statement: str, exclusions: RepoExclusions, options: MineOptions
) -> str | None:
    """The verdict of the rules that need no diff; None when the commit goes on to its diff."""
    if len(record.parents) > 1:
        return "merge"
    if not record.parents:
        return "root"
    if record.parents[0] in exclusions.bases:
        return "leak_base_parent"
    if exclusions.fix_of(statement) is not None:
        return "leak_fix_reference"
    return message_verdict(statement) or files_verdict(record.changes, options.max_files)


def _diff_verdict(
    repo: str,
    record: CommitRecord,
    statement: str,
    text: str,
    exclusions: RepoExclusions,
    blobs: BlobReader,
    parses: ParseMemo,
    options: MineOptions,
) -> tuple[str, dict[str, Any] | None]:
    try:
        patch = parse_diff(text)
    except DiffError:
        return "gold_error", None
    tests = [patched for patched in patch if path_role(_patched_path(patched)) == TEST]
    source = [patched for patched in patch if path_role(_patched_path(patched)) != TEST]
    if exclusions.by_line and exclusions.content_of(changed_lines(source)) is not None:
        return "leak_fix_content", None
    if exclusions.by_path and exclusions.overlapping(source) is not None:
        return "leak_line_overlap", None
    instance_id = instance_id_for(repo, record.sha)
    parent = record.parents[0]
    try:
        labels = labels_of(explain_patch(instance_id, source, CommitTree(blobs, parent, parses)))
    except Exception:  # GoldError, or a grammar failing on one file: it ends this commit only
        return "gold_error", None
    definitions = [label for label in labels if SEPARATOR in label]
    if not definitions:
        return "no_definition_change", None
    if len(definitions) > options.max_definitions:
        return "too_many_definitions", None
    if exclusions.sharing(definitions) is not None:
        return "leak_entity_overlap", None
    row = {
        "instance_id": instance_id,
        "repo": repo,
        "base_commit": parent,
        "problem_statement": statement,
        "patch": "".join(str(patched) for patched in source),
        "test_patch": "".join(str(patched) for patched in tests),
        "created_at": record.authored,
        "hints_text": "",
        "version": "",
        "FAIL_TO_PASS": "[]",
        "PASS_TO_PASS": "[]",
        "environment_setup_commit": "",
        "commit": record.sha,
        "gold": labels,
    }
    return KEPT, row


def _patched_path(patched: unidiff.PatchedFile) -> str:
    old_path, new_path = diff_paths(patched)
    return new_path if patched.is_added_file else old_path


# --- the whole run ---------------------------------------------------------------------------------------


def write_summary(out: Path, options: MineOptions, summaries: Sequence[RepoSummary]) -> dict[str, Any]:
    """``<out>.summary.json``: per repository and in total, commits examined, kept, and per filter."""
    total: Counter[str] = Counter()
    for summary in summaries:
        total.update(summary.verdicts)
    payload = {
        "out": str(out),
        "options": asdict(options) | {"exclude": list(options.exclude)},
        "filters": dict(FILTERS),
        "repositories": [summary.to_dict() for summary in summaries],
        "total": {
            "commits": sum(summary.commits for summary in summaries),
            "kept": total[KEPT],
            "filtered": {name: total[name] for name, _ in FILTERS},
            "seconds": round(sum(summary.seconds for summary in summaries), 1),
            "cpu_seconds": round(sum(summary.cpu_seconds for summary in summaries), 1),
        },
    }
    write_json(summary_path(out), payload)
    return payload


def verdict_counts(rows: Mapping[str, int]) -> str:
    """One line: the non-zero counts of a ``filtered`` mapping."""
    return ", ".join(f"{name} {count}" for name, count in rows.items() if count)
