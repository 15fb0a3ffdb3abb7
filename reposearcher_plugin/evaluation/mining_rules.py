"""Which commits become instances: the rules of docs/mining.md that look at a commit alone (its message,
its changed files), the thresholds of every rule, and the table of verdicts in the order they are tried.
The leakage rules are ``mining_leakage.py``; the driver that applies them in this order is ``mining.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reposearcher_plugin.index import DOCS, TEST, path_role
from reposearcher_plugin.index.languages import module_for
from reposearcher_plugin.workspace.history import FileChange

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
_WORD = re.compile(r"[^\W\d_]{2,}")
_DOC_SUFFIXES = (".rst", ".md", ".txt", ".rst.txt", ".adoc", ".html", ".ipynb")
_DOC_NAMES = ("changes", "changelog", "history", "news", "authors", "contributors", "readme", "license")
_REGULAR_FILE_MODES = ("100644", "100755")


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


def message_verdict(statement: str) -> str | None:
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


def files_verdict(changes: Sequence[FileChange], max_files: int) -> str | None:
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
