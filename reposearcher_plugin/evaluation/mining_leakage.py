"""The leakage rules of docs/mining.md: the excluded evaluation instances (read from datasets, gold files
and id lists) and, per repository, the checks that drop a commit which is, or is beside, an excluded fix.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import unidiff

from reposearcher_plugin.evaluation.diffs import DiffError, diff_paths, parse_diff
from reposearcher_plugin.evaluation.gold import GoldError, explain_patch, labels_of
from reposearcher_plugin.evaluation.instances import DatasetError, load_instances
from reposearcher_plugin.evaluation.locations import SEPARATOR, normalize_location
from reposearcher_plugin.evaluation.mining_gold import CommitTree, ParseMemo
from reposearcher_plugin.evaluation.mining_rules import MIN_TELLING_CHARACTERS
from reposearcher_plugin.workspace.history import BlobReader, existing_commits

_PULL_REFERENCE = re.compile(r"\(#(\d+)\)|\bpull request #(\d+)|\bPR #(\d+)", re.IGNORECASE)


@dataclass
class ExcludedInstance:
    instance_id: str
    repo: str
    base_commit: str = ""
    patch: str = ""
    gold: set[str] = field(default_factory=set)  # entity ids from gold files (and derived, per repository)


def repo_and_number(instance_id: str) -> tuple[str, int | None]:
    """``django__django-11099`` -> (``django/django``, 11099): SWE-bench ids name the repository and
    the pull request."""
    head, _, tail = instance_id.rpartition("-")
    owner, separator, name = head.partition("__")
    repo = f"{owner}/{name}" if separator and owner and name else ""
    return repo, int(tail) if tail.isdigit() else None


def read_excluded(sources: Iterable[str]) -> list[ExcludedInstance]:
    """The instances named by ``sources``: datasets (files, or hub names), gold files
    ``{instance_id: [locations]}`` (Loc-Bench's ``gold_functions.json``), JSON lists of ids, or text
    files of ids (one per line). Rows, gold and ids of one instance id are merged."""
    found: dict[str, ExcludedInstance] = {}

    def entry(instance_id: str, repo: str = "") -> ExcludedInstance:
        if instance_id not in found:
            found[instance_id] = ExcludedInstance(instance_id, repo or repo_and_number(instance_id)[0])
        return found[instance_id]

    for source in sources:
        path = Path(source)
        if path.is_file() and path.suffix in (".txt", ".ids", ""):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    entry(line.strip())
            continue
        if path.is_file() and path.suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise DatasetError(f"--exclude {source}: cannot read it: {error}") from None
            if isinstance(data, list) and all(isinstance(item, str) for item in data):
                for instance_id in data:
                    entry(instance_id)
                continue
            if isinstance(data, dict) and all(isinstance(items, list) for items in data.values()):
                for instance_id, items in data.items():
                    gold = {normalize_location(item) for item in items if isinstance(item, str)}
                    entry(instance_id).gold |= {item for item in gold if SEPARATOR in item}
                continue
        try:
            instances = load_instances(source)
        except DatasetError as error:
            raise DatasetError(f"--exclude {source}: {error}") from None
        for instance in instances:
            excluded = entry(instance.instance_id, instance.repo)
            excluded.repo, excluded.base_commit, excluded.patch = (
                instance.repo,
                instance.base_commit,
                instance.patch,
            )
    return list(found.values())


@dataclass
class _Touched:
    """What an excluded gold patch changes in one file: spans of base lines, for the overlap rule."""

    instance_id: str
    spans: list[tuple[int, int]]


@dataclass
class RepoExclusions:
    """The excluded instances that concern one repository, indexed for the per-commit checks."""

    bases: dict[str, str] = field(default_factory=dict)  # base commit -> instance id
    pulls: dict[int, str] = field(default_factory=dict)  # pull request number -> instance id
    by_path: dict[str, list[_Touched]] = field(default_factory=dict)
    line_counts: dict[str, int] = field(default_factory=dict)  # instance id -> its changed lines
    by_line: dict[str, list[str]] = field(default_factory=dict)  # changed line -> instance ids
    entities: dict[str, str] = field(default_factory=dict)  # gold entity id -> instance id
    instances: int = 0
    gold_errors: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        excluded: Sequence[ExcludedInstance],
        repo: str,
        git_dir: Path,
        blobs: BlobReader,
        parses: ParseMemo,
    ) -> RepoExclusions:
        """An excluded instance concerns the repository when it names it, or when its base commit is
        in it (a mirror under another name, such as a fork, holds the same commits)."""
        present = existing_commits(git_dir, [item.base_commit for item in excluded if item.base_commit])
        found = cls()
        for item in excluded:
            if item.repo != repo and item.base_commit not in present:
                continue
            found.instances += 1
            if item.base_commit:
                found.bases[item.base_commit] = item.instance_id
            number = repo_and_number(item.instance_id)[1]
            if number is not None:
                found.pulls[number] = item.instance_id
            gold = set(item.gold)
            if item.patch:
                gold |= found._add_patch(item, present, blobs, parses)
            for entity in gold:
                found.entities.setdefault(entity, item.instance_id)
        return found

    def _add_patch(
        self, item: ExcludedInstance, present: set[str], blobs: BlobReader, parses: ParseMemo
    ) -> set[str]:
        try:
            patch = parse_diff(item.patch)
        except DiffError as error:
            self.gold_errors.append(f"{item.instance_id}: {error}")
            return set()
        lines = changed_lines(patch)
        if lines:
            self.line_counts[item.instance_id] = len(lines)
            for line in lines:
                self.by_line.setdefault(line, []).append(item.instance_id)
        for patched in patch:
            old_path, _ = diff_paths(patched)
            spans = _changed_spans(patched)
            if spans:
                self.by_path.setdefault(old_path, []).append(_Touched(item.instance_id, spans))
        if item.base_commit not in present:
            return set()
        try:  # the gold of the patch at its own base, read out of this repository
            tree = CommitTree(blobs, item.base_commit, parses)
            labels = labels_of(explain_patch(item.instance_id, patch, tree))
        except GoldError as error:
            self.gold_errors.append(str(error))
            return set()
        return {label for label in labels if SEPARATOR in label}

    def fix_of(self, statement: str) -> str | None:
        """The excluded instance whose pull request the message names, if any."""
        for match in _PULL_REFERENCE.finditer(statement):
            number = int(next(group for group in match.groups() if group))
            if number in self.pulls:
                return self.pulls[number]
        return None

    def content_of(self, lines: frozenset[str]) -> str | None:
        """The excluded instance half or more of whose telling changed lines (two at least, when it
        has two) the commit changes too."""
        shared: Counter[str] = Counter()
        for line in lines:
            shared.update(self.by_line.get(line, ()))
        for instance_id, count in shared.items():
            theirs = self.line_counts[instance_id]
            if 2 * count >= theirs and count >= min(2, theirs):
                return instance_id
        return None

    def overlapping(self, patch: Iterable[unidiff.PatchedFile]) -> str | None:
        for patched in patch:
            touched = self.by_path.get(diff_paths(patched)[0])
            if not touched:
                continue
            ours = _changed_spans(patched)
            for item in touched:
                if any(start <= end2 and start2 <= end for start, end in ours for start2, end2 in item.spans):
                    return item.instance_id
        return None

    def sharing(self, labels: Iterable[str]) -> str | None:
        return next((self.entities[label] for label in labels if label in self.entities), None)


def _changed_spans(patched: unidiff.PatchedFile) -> list[tuple[int, int]]:
    """Per hunk, the first and last base line its changes touch (an insertion touches the base line it
    comes before)."""
    spans = []
    for hunk in patched:
        touched: list[int] = []
        old_line = hunk.source_start if hunk.source_length else hunk.source_start + 1
        for line in hunk:
            if line.is_removed:
                touched.append(line.source_line_no or old_line)
                old_line += 1
            elif line.is_added:
                touched.append(old_line)
            elif line.is_context:
                old_line += 1
        if touched:
            spans.append((min(touched), max(touched)))
    return spans


def changed_lines(patch: Iterable[unidiff.PatchedFile]) -> frozenset[str]:
    """The telling lines a diff adds or removes, marked with their side, whitespace stripped: what
    identifies a change wherever it landed. Short lines (``else:``, ``return None``, ``@property``) and
    imports recur in unrelated commits, so they do not count."""
    found = set()
    for patched in patch:
        for hunk in patched:
            for line in hunk:
                text = line.value.strip()
                if (line.is_added or line.is_removed) and _is_telling(text):
                    found.add(("+" if line.is_added else "-") + text)
    return frozenset(found)


def _is_telling(text: str) -> bool:
    return len(text) >= MIN_TELLING_CHARACTERS and not text.startswith(("import ", "from "))
