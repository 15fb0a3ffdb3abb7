"""Localization instances mined from a repository's history: query = a commit message, gold = the
definitions its diff edits (the gold-from-patch rules of ``gold.py``), base = its parent.

Rules and their order, leakage rules included, are documented in docs/mining.md; this module is their
implementation. The work per repository, linear in the length of its history:

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

import hashlib
import json
import re
import resource
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import unidiff

from reposearcher_plugin.evaluation.diffs import DiffError, diff_paths, parse_diff
from reposearcher_plugin.evaluation.gold import GoldError, explain_patch, labels_of
from reposearcher_plugin.evaluation.instances import DatasetError, load_instances
from reposearcher_plugin.evaluation.locations import SEPARATOR, normalize_location
from reposearcher_plugin.files import append_row, json_line, parse_jsonl, write_json
from reposearcher_plugin.index import DOCS, TEST, Entity, ParseCache, path_role
from reposearcher_plugin.index.build import parse_row
from reposearcher_plugin.index.languages import module_for
from reposearcher_plugin.index.model import decode_parse
from reposearcher_plugin.index.repo_index import content_key
from reposearcher_plugin.workspace.history import (
    BlobReader,
    CommitRecord,
    FileChange,
    commit_patches,
    existing_commits,
    read_history,
)
from reposearcher_plugin.workspace.sources import slug

# A fix or feature edits a few definitions: SWE-bench Lite's gold has at most 4 (median 1), Loc-Bench's
# at most 10 (median 1, 99th percentile 9). Past 10 a commit is a refactoring or a sweep, not one issue.
DEFAULT_MAX_DEFINITIONS = 10
# Library source files a commit may modify or delete; checked before any diff is read, since a commit
# over it would almost always edit more than DEFAULT_MAX_DEFINITIONS definitions anyway.
DEFAULT_MAX_FILES = 20
MASS_RENAME_FILES = 20  # renamed files that make a mass rename on their own
MIN_MESSAGE_WORDS = 3
MIN_TELLING_CHARACTERS = 16  # changed lines shorter than this do not identify a fix (leak_fix_content)

KEPT = "kept"
# Every verdict, in the order the rules are tried; a commit is counted under the first it fails.
FILTERS: tuple[tuple[str, str], ...] = (
    ("merge", "a merge commit (more than one parent)"),
    ("root", "a root commit (no parent to be the base)"),
    ("leak_base_parent", "its parent is the base commit of an excluded instance"),
    ("leak_fix_reference", "its message names an excluded instance's pull request: (#N), pull request #N"),
    ("revert", "a revert (Revert ... subject, or 'This reverts commit')"),
    ("trivial_message", f"an empty or trivial message (under {MIN_MESSAGE_WORDS} words, 'wip', 'fix typo')"),
    ("release", "a release or version bump (Release 2.1, Bump version, v2.1.0, Bump x from 1 to 2)"),
    (
        "mass_rename",
        f"a mass rename (>= 3 files renamed and half the files or more, or >= {MASS_RENAME_FILES})",
    ),
    ("test_only", "changes test files only"),
    ("docs_only", "changes documentation only (docs, examples, *.rst, *.md, changelogs)"),
    ("no_source_file", "modifies or deletes no library source file the index parses"),
    ("too_many_files", "modifies or deletes more than --max-files library source files"),
    ("leak_fix_content", "holds half or more of the telling changed lines of an excluded gold patch"),
    (
        "leak_line_overlap",
        "changes lines of a file that an excluded gold patch changes, in overlapping spans",
    ),
    ("gold_error", "its diff cannot be read or does not apply to the parent's files"),
    ("no_definition_change", "its gold holds no definition (class, function, method)"),
    ("too_many_definitions", "its gold holds more than --max-definitions definitions"),
    ("leak_entity_overlap", "its gold shares a definition with an excluded instance's gold"),
)
VERDICTS = (KEPT, *(name for name, _ in FILTERS))

_TRAILER = re.compile(
    r"^(signed-off-by|co-authored-by|reviewed-by|acked-by|tested-by|reported-by|suggested-by|helped-by|"
    r"cc|change-id|reviewed-on|backport-of):.*$|^\(cherry picked from commit [0-9a-f]+\)$",
    re.IGNORECASE | re.MULTILINE,
)
_REVERT = re.compile(r"^\s*(\[[^\]]*\]\s*)?revert\b|\bthis reverts commit\b", re.IGNORECASE | re.MULTILINE)
_TRIVIAL_SUBJECT = re.compile(
    r"^(wip\b|fixup!|squash!|amend!|oops\b|(fix(ed|es)?\s+)?typos?\b|(minor\s+)?(cleanup|clean-up|"
    r"clean up|whitespace|formatting|pep8|flake8|lint|linting)\b)",
    re.IGNORECASE,
)
_RELEASE = re.compile(
    r"""^(
        v?\d+(\.\d+)+([-.]?[a-z0-9]+)*\.?$
      | (release[ds]?|releasing|tag(ged|ging)?|prepare[ds]?|preparing|bump(ed|ing|s)?|version|
         (update[ds]?\s+)?changelog|start(ed|ing)?\s+(the\s+)?(next|new))\b.*\d+\.\d+
      | (bump(ed|ing|s)?|increment(ed)?|set)\s+(the\s+)?version\b
      | (version|release)\s+bump\b
      | back\s+to\s+development\b
      | post[-\s]release\b
      | bump(ed|s)?\s+\S+\s+from\s+\S+\s+to\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_PULL_REFERENCE = re.compile(r"\(#(\d+)\)|\bpull request #(\d+)|\bPR #(\d+)", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")
_DOC_SUFFIXES = (".rst", ".md", ".txt", ".rst.txt", ".adoc", ".html", ".ipynb")
_DOC_NAMES = ("changes", "changelog", "history", "news", "authors", "contributors", "readme", "license")
_REGULAR_FILE_MODES = ("100644", "100755")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MineOptions:
    since: str | None = None
    until: str | None = None
    limit: int | None = None  # only the newest N commits
    max_definitions: int = DEFAULT_MAX_DEFINITIONS
    max_files: int = DEFAULT_MAX_FILES
    exclude: tuple[str, ...] = ()  # the --exclude sources, as named on the command line

    def fingerprint(self) -> dict[str, Any]:
        """What decides every verdict: a rerun may resume only a run made with the same."""
        return {**asdict(self), "exclude": list(self.exclude), "rules": hashlib.sha1(_RULES_TEXT).hexdigest()}


# the rule texts and patterns: a resumed run must not mix verdicts of two versions of the rules
_RULES_TEXT = json.dumps(
    [
        FILTERS,
        _TRAILER.pattern,
        _REVERT.pattern,
        _TRIVIAL_SUBJECT.pattern,
        _RELEASE.pattern,
        MIN_MESSAGE_WORDS,
        MIN_TELLING_CHARACTERS,
    ]
).encode()


# --- the message -----------------------------------------------------------------------------------------


def problem_statement(message: str) -> str:
    """The commit message as the issue text: subject and body, without sign-off and similar trailers."""
    text = _TRAILER.sub("", message.replace("\r\n", "\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _message_verdict(statement: str) -> str | None:
    subject = statement.split("\n", 1)[0].strip()
    has_body = "\n" in statement
    if _REVERT.search(statement):
        return "revert"
    if len(_WORD.findall(statement)) < MIN_MESSAGE_WORDS or (
        _TRIVIAL_SUBJECT.match(subject) and not has_body
    ):
        return "trivial_message"
    if _RELEASE.match(re.sub(r"^\[[^\]]*\]\s*", "", subject)):
        return "release"
    return None


# --- the changed files -----------------------------------------------------------------------------------


def _base_path(change: FileChange) -> str:
    return change.old_path or change.new_path


def _is_docs(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return path_role(path) == DOCS or name.endswith(_DOC_SUFFIXES) or name.split(".", 1)[0] in _DOC_NAMES


def _is_library_source(change: FileChange) -> bool:
    """A library file (not a test, not documentation) that exists at the base, is a regular file and
    is parsed by the index: what gold can label."""
    path = change.old_path
    return (
        change.status != "A"
        and change.old_mode in _REGULAR_FILE_MODES
        and module_for(path) is not None
        and path_role(path) not in (TEST, DOCS)
    )


def _files_verdict(changes: Sequence[FileChange], max_files: int) -> str | None:
    renamed = sum(change.status == "R" for change in changes)
    if renamed >= MASS_RENAME_FILES or (renamed >= 3 and 2 * renamed >= len(changes)):
        return "mass_rename"
    if changes and all(path_role(_base_path(change)) == TEST for change in changes):
        return "test_only"
    if changes and all(_is_docs(_base_path(change)) for change in changes):
        return "docs_only"
    sources = sum(_is_library_source(change) for change in changes)
    if sources == 0:
        return "no_source_file"
    if sources > max_files:
        return "too_many_files"
    return None


# --- excluded instances (leakage) ------------------------------------------------------------------------


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
        lines = _changed_lines(patch)
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


def _changed_lines(patch: Iterable[unidiff.PatchedFile]) -> frozenset[str]:
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


# --- parsing file versions -------------------------------------------------------------------------------


class ParseMemo:
    """Definitions of file versions by content: the last few in memory (the version a commit writes is
    the base of the next commit that edits the file), then the index's parse cache, then tree-sitter.
    New parses go to the cache in batches, so later index builds of these commits reuse them."""

    def __init__(self, cache: ParseCache | None, keep: int = 1024, batch: int = 256) -> None:
        self.cache = cache
        self.keep = keep
        self.batch = batch
        self._recent: OrderedDict[str, tuple[Entity, ...]] = OrderedDict()
        self._pending: list[tuple[str, bytes, str, bytes]] = []
        self.parsed = self.from_cache = self.from_memory = 0

    def definitions(self, path: str, data: bytes) -> tuple[Entity, ...]:
        module = module_for(path)
        if module is None:
            return ()
        key = content_key(module, hashlib.sha1(data).hexdigest())
        entities = self._recent.get(key)
        if entities is not None:
            self._recent.move_to_end(key)
            self.from_memory += 1
            return entities
        cached = self.cache.get_parse(key) if self.cache is not None else None
        if cached is not None:
            entities = decode_parse(cached[0]).entities
            self.from_cache += 1
        else:
            parse, blob, names, words = parse_row(module, path, data)
            entities = parse.entities
            self.parsed += 1
            if self.cache is not None:
                self._pending.append((key, blob, names, words))
                if len(self._pending) >= self.batch:
                    self.flush()
        self._recent[key] = entities
        if len(self._recent) > self.keep:
            self._recent.popitem(last=False)
        return entities

    def flush(self) -> None:
        if self.cache is not None and self._pending:
            self.cache.put_parses(self._pending)
        self._pending = []


class CommitTree:
    """A ``gold.BaseTree`` of one commit, read out of git: no checkout."""

    def __init__(self, blobs: BlobReader, commit: str, parses: ParseMemo) -> None:
        self.blobs = blobs
        self.commit = commit
        self.parses = parses
        self.where = f"commit {commit[:12]}"

    def read(self, path: str) -> bytes | None:
        return self.blobs.read(self.commit, path)

    def definitions(self, path: str, data: bytes) -> tuple[Entity, ...]:
        return self.parses.definitions(path, data)


# --- resuming --------------------------------------------------------------------------------------------


def commits_log_path(out: Path) -> Path:
    return out.with_name(out.name + ".commits.jsonl")


def summary_path(out: Path) -> Path:
    return out.with_name(out.name + ".summary.json")


class MiningError(ValueError):
    """An output that cannot be resumed, or a repository that cannot be mined."""


class MiningState:
    """The output rows and the commit log of a run, opened for appending: what earlier runs of the same
    command decided (``verdicts``) and the files new rows and verdicts go to."""

    def __init__(self, out: Path, options: MineOptions, *, overwrite: bool = False) -> None:
        self.out = out
        self.log = commits_log_path(out)
        self.verdicts: dict[tuple[str, str], str] = {}  # (repo, commit) -> verdict
        fingerprint = options.fingerprint()
        if overwrite or not (out.exists() or self.log.exists()):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("", encoding="utf-8")
            self.log.write_text(json_line({"options": fingerprint}), encoding="utf-8")
        else:
            self._resume(fingerprint)
        self.rows: TextIO = out.open("a", encoding="utf-8")
        self.commits: TextIO = self.log.open("a", encoding="utf-8")

    def _resume(self, fingerprint: dict[str, Any]) -> None:
        if not self.log.exists() or not self.out.exists():
            missing = self.log if not self.log.exists() else self.out
            raise MiningError(f"{missing} is missing, so {self.out} cannot be resumed: pass --overwrite")
        logged = parse_jsonl(_without_cut_line(self.log), str(self.log))
        if not logged or logged[0].get("options") != fingerprint:
            raise MiningError(
                f"{self.out} was mined with other options or rules; pass --overwrite or another --out"
            )
        for entry in logged[1:]:
            self.verdicts[(entry["repo"], entry["commit"])] = entry["verdict"]
        rows = {
            (row["repo"], row["commit"]) for row in parse_jsonl(_without_cut_line(self.out), str(self.out))
        }
        for key, verdict in list(self.verdicts.items()):
            if verdict == KEPT and key not in rows:  # the row was lost with a cut line: mine it again
                del self.verdicts[key]
        unlogged = [key for key in rows if key not in self.verdicts]  # killed between row and verdict
        with self.log.open("a", encoding="utf-8") as log:
            for repo, commit in unlogged:
                log.write(json_line({"repo": repo, "commit": commit, "verdict": KEPT}))
                self.verdicts[(repo, commit)] = KEPT

    def record(self, repo: str, commit: str, verdict: str, row: dict[str, Any] | None = None) -> None:
        """The row first, then the verdict: a kill between the two leaves a row the next run keeps."""
        if row is not None:
            append_row(self.rows, row)
        self.commits.write(json_line({"repo": repo, "commit": commit, "verdict": verdict}))
        self.verdicts[(repo, commit)] = verdict

    def close(self) -> None:
        self.commits.flush()
        self.rows.close()
        self.commits.close()


def _without_cut_line(path: Path) -> str:
    """The text of a JSONL file that a writer may have been killed in, its unfinished last line cut off
    the file too, so that appending goes on after the last whole line."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
    return data[:end].decode("utf-8")


# --- mining ----------------------------------------------------------------------------------------------


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
    return _message_verdict(statement) or _files_verdict(record.changes, options.max_files)


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
    if exclusions.by_line and exclusions.content_of(_changed_lines(source)) is not None:
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
