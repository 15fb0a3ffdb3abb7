"""The retrieval localizer: the default when no LLM is configured, and the plain-BM25 baseline.

The default ranks definitions in two stages, so that every number it uses can be shown and tuned:

1. **Signals** (:meth:`RetrievalLocalizer.signals`, needs the index). From the issue text it extracts
   code-like identifiers, dotted names, file and module paths and traceback frames, and resolves them
   to the repository's files and definitions. It scores every definition with BM25 (the same entity
   documents ``search_code`` uses) and keeps a candidate set: the best BM25 matches plus everything a
   mention, a frame or a graph edge (class <-> method, import) reaches. Each candidate gets a row of
   named features.
2. **Scores** (:func:`score_signals`, pure). A weighted sum of those features (:class:`Weights`),
   times a path-role prior (tests, docs, examples demoted); files rank by their best definitions plus
   file-level evidence; a definition's final score adds a share of its file's score, because a
   definition in the right file is more likely right than an equally good match elsewhere.

``plain=True`` is the baseline: the same documents and query tokens, BM25 alone, files ranked by their
best definition.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from reposearcher_plugin.index import CLASS, METHOD, Entity, RepoIndex, entity_id
from reposearcher_plugin.index.locations import normalize_path, unique
from reposearcher_plugin.tools.repo_tools import RepoTools
from reposearcher_plugin.tools.search_index import STOPWORDS, EntitySearch, query_tokens


@dataclass
class Ranking:
    files: list[str]  # ranked repo-relative paths
    locations: list[str]  # ranked entity ids "path.py::Class.method" / "path.py::func" / "path.py::Class"
    evidence: dict[str, Any]  # JSON-able: extracted mentions, traceback frames, top scores


@dataclass(frozen=True)
class Weights:
    """Every constant of the default ranking. Features are scaled to [0, 1], so weights compare
    directly. Set by coordinate ascent on 66 SWE-bench Lite test instances (all 12 repositories),
    rounded, and kept only where the other 234 instances agreed; priors were held at 0.1 or more so
    that nothing is ever dropped, only demoted."""

    # BM25 of the whole issue, divided by the best score of the query: topical match, the signal that
    # every issue has; alone it is the baseline, so everything below is measured against it.
    bm25: float = 1.7
    # BM25 of the title (first line) alone: a title states the problem in a few words, so its matches
    # are more precise than the body's, which quotes user code and logs. Nearly as strong as the body.
    bm25_title: float = 1.5
    # The issue names the definition with its qualified name (``QuerySet.union``,
    # ``django.db.models.query.QuerySet``): close to a direct pointer, the strongest signal.
    qualified_mention: float = 4.0
    # The issue names it by its simple name in a code-like way (``union()``, ``get_queryset``);
    # divided by sqrt(how many definitions share the name) so ``save`` means little. Weak: issues
    # name much of what the reproduction touches, not only the culprit.
    name_mention: float = 0.25
    # The title names it (qualified or code-like simple name): titles name the culprit more often.
    title_mention: float = 0.5
    # A traceback frame ran in it; the deepest in-repository frame scores 1, each frame above it
    # FRAME_DECAY times less: the deepest frame is where the failure surfaced. Small on its own because
    # a frame also counts as a mention of its file and of its function's name (both above).
    traceback: float = 0.2
    # Its class is mentioned (a method of ``QuerySet`` when the issue says ``QuerySet``): it only
    # breaks ties among a mentioned class's methods, which BM25 orders; more floods the top with them.
    owner_mention: float = 0.05
    # A method of this class is mentioned: the class is context (and gold when its body changes).
    member_mention: float = 0.2
    # Its file is mentioned (a path, a module path, or a traceback file): gold files are named often.
    file_mention: float = 0.75
    # The owner class's BM25: a method of a class that matches the issue well is a better bet.
    owner_bm25: float = 0.2
    # The issue quotes an error message that this definition's code holds literally. Kept small: the
    # code that raises what the user saw is often not the code that needs the fix (measured neutral).
    message: float = 0.5
    # Multipliers by path role: gold locations are almost never tests, docs or examples.
    test_prior: float = 0.3
    docs_prior: float = 0.3
    # A class's document is only its header, and classes are gold far less often than methods.
    class_prior: float = 0.3
    # Share of the mention weights a class gets: issues name the classes users touch (``QuerySet``,
    # ``URLField``) while the fix lands in a method.
    class_mention_share: float = 0.5
    # An exception class that the issue names is the symptom the user saw, rarely the place to fix.
    exception_prior: float = 0.5
    # Files: the best definition plus a share of the next ones (a file with several matching
    # definitions is more likely the one to change than a file with one lucky hit).
    file_breadth: float = 0.2
    file_breadth_count: int = 2
    # A file that a mentioned file imports: one step along the import graph.
    file_import: float = 0.1
    # Share of the file's score added to each of its definitions: the right file first, then the
    # right definition in it.
    file_context: float = 0.15


DEFAULT_WEIGHTS = Weights()

# Frames above the deepest in-repository frame weigh FRAME_DECAY ** distance.
FRAME_DECAY = 0.6
# Candidates from BM25 alone; mentions and frames add theirs. Enough that the weighted sum can
# reorder well beyond the top 50 returned.
BM25_CANDIDATES = 400
# Evidence lists this many of the best definitions with their features.
EVIDENCE_TOP = 10
# Ranking reads at most this many characters of an issue, its head; the evidence says when it was cut.
# The longest issue in SWE-bench Lite and Loc-Bench has 56 K; beyond this an issue is pasted logs, whose
# head holds the report. Every step is linear, so the cap bounds the time (a fraction of a second here),
# for the CLI, MCP `localize`, the OpenHands hook (the user's whole prompt) and batch runs alike.
MAX_RANKED_ISSUE_CHARS = 200_000

FEATURES = (
    "bm25",
    "bm25_title",
    "qualified_mention",
    "name_mention",
    "title_mention",
    "traceback",
    "owner_mention",
    "member_mention",
    "file_mention",
    "owner_bm25",
    "message",
)

_MENTIONS = frozenset({"qualified_mention", "name_mention", "title_mention"})
_EXCEPTION = re.compile(r"(?:Error|Exception|Warning)$")

# --- path roles ---------------------------------------------------------------------------------------

LIBRARY, TEST, DOCS = "library", "test", "docs"
_DOC_DIRS = frozenset(
    {
        "doc",
        "docs",
        "documentation",
        "example",
        "examples",
        "galleries",
        "tutorials",
        "benchmarks",
        "asv_bench",
    }
)


def path_role(path: str) -> str:
    """``test`` for test code, ``docs`` for documentation, examples and benchmarks, else ``library``.

    Decided by where the file sits, not by the word "test": ``django/test/client.py`` and
    ``sphinx/testing/fixtures.py`` are library code that users import. A test is a file under a
    directory named ``tests``, under a top-level ``test/`` or ``testing/`` directory (outside the
    package), or a file named ``test_*.py``, ``*_test.py``, ``*_tests.py`` or ``conftest.py``.
    """
    *directories, name = path.split("/")
    stem = name.rsplit(".", 1)[0]
    if "tests" in directories or (directories and directories[0] in ("test", "testing")):
        return TEST
    if stem.startswith("test_") or stem.endswith(("_test", "_tests")) or stem == "conftest":
        return TEST
    if any(directory in _DOC_DIRS for directory in directories):
        return DOCS
    return LIBRARY


# --- what the issue says ------------------------------------------------------------------------------
# Issue text can be anything a user pastes (megabytes of log), so every pattern here runs in linear time:
# none can match the same characters in two ways (runs that could trade characters are possessive), and
# none fails after scanning far from each of many starting points (those start only where a word does).

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_BACKTICK = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_WORD = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
# ``name(``: the name is the word's tail from its first ASCII letter or underscore (``2to3_fix(`` names
# ``to3_fix``); tried once per word, not from every letter of it (quadratic on a 16 KB word)
_CALL = re.compile(r"(?<!\w)[^\W_A-Za-z]*+([A-Za-z_]\w*+)\s*\(")
_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.(?:py|pyi|pyx))\b")
_FRAME = re.compile(r'File "([^"\n]+)", line (\d+)(?:, in ([\w<>.]+))?')
# "ValueError: invalid literal ...", "E   TypeError: ...", "RemovedInDjango50Warning: ...". The prefix is
# pytest's "E" marks, blanks and ">": (E* then a blank)*, so that the E of "EOFError" is never one of them
# in a second way; the name is one possessive word that must end in Error, Exception, ...
_MESSAGE = re.compile(
    r"^(?:E*[ \t>])*+[\w.]*+(?:(?<=Error)|(?<=Exception)|(?<=Warning)|(?<=Exit)|(?<=Failure))"
    r":[ \t]*+(.{8,300})$",
    re.M,
)
# What a message was formatted with, cut out to keep its literal words: quoted values, bracketed parts,
# numbers, the marks _PYTHON_MESSAGES leaves, and words holding a path separator. The last are found
# apart (see _pieces_around_path_words): as one more alternative, ``\S*[/\\]\S*``, they were looked for
# from every character of a word without one, to the word's end.
_MESSAGE_BREAK = re.compile(
    r"\||'[^']*'|\"[^\"]*\"|`[^`]*`|<[^>]*>|\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|(?<!\w)[-+]?\d[\w.,:]*"
)
# a word holding a path separator: group 1 ends after its last separator
_SEPARATED_WORD = re.compile(r"(?<!\S)(\S*[/\\])\S*")
# characters where a _MESSAGE_BREAK match always starts, once unclosed brackets are masked (a quote
# only when another one follows it)
_BREAK_STARTS = re.compile(r"[|'\"`<(\[{]|(?<!\w)[-+]?\d")
_WORD_CHAR = re.compile(r"\w")
_BRACKETS = {"<": ">", "(": ")", "[": "]", "{": "}"}
_QUOTES = "'\"`"
# What Python itself says ("'NoneType' object has no attribute 'x'") is in no repository's code, and
# the few definitions that quote it are unrelated; only the words around it can point somewhere.
_PYTHON_MESSAGES = re.compile(
    r"object has no attribute|got an unexpected keyword argument|got multiple values for argument"
    r"|missing \d+ required positional arguments?|takes \d+ positional arguments? but \d+ (?:was|were) given"
    r"|is not defined|unsupported operand types?(?: for)?|object is not (?:callable|subscriptable|iterable)"
    r"|not supported between instances of|can only concatenate|index out of range|not enough values to unpack"
    r"|too many values to unpack|invalid literal for|division by zero|maximum recursion depth exceeded"
    r"|No module named|cannot import name|is not JSON serializable|object is not|is not a valid"
    r"|Traceback \(most recent call last\)"
)
MESSAGE_MIN_CHARS = 12
MESSAGE_MIN_WORDS = 3
MAX_MESSAGES = 8
_PYTEST_FRAME = re.compile(r"^[ \t>]*([\w./\\-]+\.py):(\d+):(?: in ([\w<>]+))?", re.M)
# IPython / Jupyter: "File ~/src/pkg/mod.py:1254, in Plotter._setup_scales(self, p)" (8.x) and
# "~/venv/site-packages/pkg/mod.py in _combine(self, other, conn)" (7.x, line number on later lines)
_IPYTHON_FRAME = re.compile(r"File (\S+?\.py):(\d+), in ([\w.<>]+)")
_IPYTHON_OLD_FRAME = re.compile(r"^[ \t]*(\S+\.py) in ([\w.<>]+)\(", re.M)


def message_fragments(message: str) -> list[str]:
    """The literal fragments of a quoted error message worth searching the code for, in order."""
    masked, unmask = _mask_unclosed_brackets(message)
    if not _may_hold_fragment(masked):
        return []
    fragments = []
    for piece in _literal_pieces(masked, unmask):
        fragment = piece.strip(" .:,;!?-")
        if len(fragment) >= MESSAGE_MIN_CHARS and len(fragment.split()) >= MESSAGE_MIN_WORDS:
            fragments.append(fragment)
    return fragments


def literal_pieces(message: str) -> list[str]:
    """What is left of ``message`` between the parts a message is formatted with: exactly
    ``re.split(_MESSAGE_BREAK.pattern + r"|\\S*[/\\\\]\\S*", message)``, in time linear in the message."""
    return _literal_pieces(*_mask_unclosed_brackets(message))


def _literal_pieces(masked: str, unmask: dict[int, str]) -> list[str]:
    if "/" in masked or "\\" in masked:
        pieces = _pieces_around_path_words(masked)
    else:
        pieces = _MESSAGE_BREAK.split(masked)
    return [piece.translate(unmask) for piece in pieces] if unmask else pieces


def _mask_unclosed_brackets(text: str) -> tuple[str, dict[int, str]]:
    """``text`` with each opening bracket after the last closing one of its kind replaced by a private-use
    character not in ``text`` (one per kind), and the table that puts them back. From such a bracket
    ``\\([^)]*\\)`` scans to the end and fails, from each of them (quadratic); masked, none is tried."""
    unmask: dict[int, str] = {}
    spare = 0xE000
    for opening, closing in _BRACKETS.items():
        last_close = text.rfind(closing)
        if text.find(opening, last_close + 1) < 0:
            continue
        while chr(spare) in text:
            spare += 1
        text = text[: last_close + 1] + text[last_close + 1 :].replace(opening, chr(spare))
        unmask[spare] = opening
        spare += 1
    return text, unmask


def _may_hold_fragment(masked: str) -> bool:
    """False when no piece can be a fragment: every piece lies between two characters where a break
    always starts (a quote unless it is the last of its kind), so none is longer than those stretches."""
    for quote in _QUOTES:  # the last one may have no partner: a plain character, inside a piece
        last = masked.rfind(quote)
        if last >= 0:
            masked = f"{masked[:last]} {masked[last + 1 :]}"
    return max(map(len, _BREAK_STARTS.split(masked))) >= MESSAGE_MIN_CHARS


def _pieces_around_path_words(text: str) -> list[str]:
    """The pieces between break matches, as ``re.split`` finds them: at each position the _MESSAGE_BREAK
    alternatives first, then a path word, which matches from any position of a word up to its last
    separator and runs to the word's end. The words are listed first, so at any position it is known
    at once whether a path word can start there; past the last of them ``re.split`` does the rest."""
    pieces: list[str] = []
    position = 0  # where the current piece starts
    # the next _MESSAGE_BREAK match at or after position (its start; len(text) when there is none), kept
    # until position passes it, so that no stretch of text is searched twice
    pending_start, pending_end = -1, -1
    for match in _SEPARATED_WORD.finditer(text):
        word_start, after_separator, word_end = match.start(), match.end(1), match.end()
        while position < after_separator:  # a path word can start anywhere before its last separator
            path_at = max(word_start, position)
            if pending_start < position:
                found = _MESSAGE_BREAK.search(text, position)
                pending_start, pending_end = found.span() if found else (len(text), len(text))
            if pending_start <= path_at:  # a tie goes to the earlier alternative
                pieces.append(text[position:pending_start])
                position = pending_end
            else:
                pieces.append(text[position:path_at])
                position = word_end
    if position and _WORD_CHAR.match(text[position - 1]):
        # the character before decides whether a digit starts a number: split after a word character
        rest = _MESSAGE_BREAK.split("a" + text[position:])
        rest[0] = rest[0][1:]
    else:
        rest = _MESSAGE_BREAK.split(text[position:])
    return pieces + rest


_CAMEL_CASE = re.compile(r"[a-z][A-Z]|[A-Z][a-z]+[A-Z]")
_NOT_A_NAME = re.compile(r"[\d.]+|[a-z]+\.(?:com|org|io|net|html|txt|rst|md|cfg|toml|yml|yaml)")


def cap_issue(issue: str, limit: int | None = None) -> tuple[str, dict[str, Any] | None]:
    """``issue`` cut to its first ``limit`` (MAX_RANKED_ISSUE_CHARS) characters, at a line end when one is
    near, and a note for the evidence saying so; the issue itself and None when it is not longer."""
    limit = MAX_RANKED_ISSUE_CHARS if limit is None else limit
    if len(issue) <= limit:
        return issue, None
    line_end = issue.rfind("\n", 0, limit)
    kept = line_end if line_end >= limit * 3 // 4 else limit
    note = {
        "issue_chars": len(issue),
        "ranked_chars": kept,
        "note": f"the issue has {len(issue):,} characters; only its first {kept:,} were ranked "
        f"(a limit of {limit:,}: MAX_RANKED_ISSUE_CHARS)",
    }
    return issue[:kept], note


def _code_like(word: str) -> bool:
    """snake_case, CamelCase, dunder or ALLCAPS_WITH_UNDERSCORE: a word that prose does not use."""
    core = word.strip("_")
    if not core:
        return False
    return "_" in core or word.startswith("__") or bool(_CAMEL_CASE.search(word))


def _sub_where_found(pattern: re.Pattern[str], needle: str, text: str) -> str:
    """``pattern.sub(" ", text)``, skipped when ``text`` lacks ``needle``, a literal every match holds."""
    return pattern.sub(" ", text) if needle in text else text


def _cut_out(pattern: re.Pattern[str], text: str) -> tuple[list[re.Match[str]], str]:
    """The matches of ``pattern`` and ``pattern.sub(" ", text)``, in one pass."""
    matches = list(pattern.finditer(text))
    if not matches:
        return matches, text
    kept, position = [], 0
    for match in matches:
        kept.append(text[position : match.start()])
        position = match.end()
    kept.append(text[position:])
    return matches, " ".join(kept)


@dataclass
class Mentions:
    """Code that an issue names, before it is matched to the repository."""

    dotted: list[str] = field(default_factory=list)  # ``QuerySet.union``, ``django.db.models.query``
    names: list[str] = field(default_factory=list)  # code-like simple names
    paths: list[str] = field(default_factory=list)  # ``django/db/models/query.py``, ``query.py``
    frames: list[tuple[str, int, str]] = field(default_factory=list)  # (path as written, line, function)
    messages: list[str] = field(default_factory=list)  # literal fragments of quoted error messages


def extract_mentions(issue: str) -> Mentions:
    """Identifiers, dotted names, file paths and traceback frames, each once, in order of appearance."""
    # Each pattern holds a literal (```, ".py:", "File ", ...): a pass is skipped when the text lacks it,
    # and words are filtered once per distinct word, so that long prose costs a few scans of it.
    found = Mentions()
    fences, without_fences = _cut_out(_FENCE, issue) if "```" in issue else ([], issue)
    code = [match.group(0) for match in fences]
    if "`" in without_fences:
        code += [match.group(1) for match in _BACKTICK.finditer(without_fences)]
    code_text = "\n".join(code)
    frames: list[tuple[int, str, int, str]] = []
    frame_patterns = ((_FRAME, 'File "'), (_PYTEST_FRAME, ".py:"), (_IPYTHON_FRAME, ".py:"))
    for pattern, needle in frame_patterns:
        if needle in issue:
            for match in pattern.finditer(issue):
                frames.append((match.start(), match.group(1), int(match.group(2)), match.group(3) or ""))
    if ".py in " in issue:
        for match in _IPYTHON_OLD_FRAME.finditer(issue):
            frames.append((match.start(), match.group(1), 0, match.group(2)))
    found.frames = [(path, line, function) for _, path, line, function in sorted(frames)]
    # a frame's file counts as a frame (weighed by depth), not as a plain mention of the file
    without_frames = issue
    for pattern, needle in (*frame_patterns, (_IPYTHON_OLD_FRAME, ".py in ")):
        without_frames = _sub_where_found(pattern, needle, without_frames)
    without_paths = without_frames
    if ".py" in without_frames:
        paths, without_paths = _cut_out(_PATH, without_frames)
        found.paths = unique(normalize_path(match.group(1)) for match in paths)
    if "." in without_paths:
        dotted = unique(_DOTTED.findall(without_paths))
        found.dotted = [name for name in dotted if not _NOT_A_NAME.fullmatch(name)]
    names: list[str] = []
    names += [word for word in _WORD.findall(code_text) if word not in STOPWORDS]
    if "(" in without_paths:
        names += _CALL.findall(without_paths)
    names += [word for word in unique(_WORD.findall(without_paths)) if _code_like(word)]
    for dotted in found.dotted:
        names += dotted.split(".")
    names += [
        part
        for _, _, function in found.frames
        if not function.startswith("<")
        for part in function.split(".")
    ]
    found.names = [name for name in unique(names) if len(name) > 1 and not name.isdigit()]
    fragments: dict[str, None] = {}  # in order, each once
    messages = _MESSAGE.finditer(issue) if ":" in issue else ()
    for message in unique(match.group(1) for match in messages):
        # the values a message was formatted with are not in the code: keep the literal words between
        for fragment in message_fragments(_PYTHON_MESSAGES.sub("|", message)):
            fragments[fragment] = None
        if len(fragments) >= MAX_MESSAGES:
            break
    found.messages = list(fragments)[:MAX_MESSAGES]
    return found


# --- signals --------------------------------------------------------------------------------------------


@dataclass
class Signals:
    """What the default ranking is computed from: candidates and their features; index-free and
    picklable, so weights can be tried without the repository."""

    ids: list[str]  # candidate entity ids
    files: list[str]  # candidate's file, aligned with ids
    kinds: list[str]
    roles: list[str]  # path_role of the file
    features: dict[str, np.ndarray]  # FEATURES -> value per candidate, each in [0, 1]
    file_features: dict[str, dict[str, float]]  # path -> {"mention": ..., "import": ...}
    evidence: dict[str, Any]


def score_signals(
    signals: Signals, weights: Weights = DEFAULT_WEIGHTS
) -> tuple[np.ndarray, dict[str, float]]:
    """Entity scores (aligned with ``signals.ids``) and file scores."""
    n = len(signals.ids)
    if n == 0:
        return np.zeros(0), {}
    is_class = np.array([kind == CLASS for kind in signals.kinds])
    total = np.zeros(n)
    for name in FEATURES:
        contribution = getattr(weights, name) * signals.features[name]
        if name in _MENTIONS:
            contribution = np.where(is_class, weights.class_mention_share * contribution, contribution)
        total += contribution
    prior_of = {LIBRARY: 1.0, TEST: weights.test_prior, DOCS: weights.docs_prior}
    prior = np.array([prior_of[role] for role in signals.roles])
    prior *= np.array(
        [_kind_prior(entity, kind, weights) for entity, kind in zip(signals.ids, signals.kinds, strict=True)]
    )
    entity = total * prior
    by_file: dict[str, list[float]] = {}
    for path, value in zip(signals.files, entity, strict=True):
        by_file.setdefault(path, []).append(float(value))
    for path in signals.file_features:
        by_file.setdefault(path, [])
    file_scores: dict[str, float] = {}
    for path, values in by_file.items():
        values.sort(reverse=True)
        best = values[0] if values else 0.0
        breadth = sum(values[1 : 1 + weights.file_breadth_count])
        extra = signals.file_features.get(path, {})
        role = path_role(path)
        file_level = (
            weights.file_mention * extra.get("mention", 0.0) + weights.file_import * extra.get("import", 0.0)
        ) * prior_of[role]
        file_scores[path] = best + weights.file_breadth * breadth + file_level
    context = np.array([file_scores[path] for path in signals.files])
    return entity + weights.file_context * context, file_scores


def _kind_prior(entity: str, kind: str, weights: Weights) -> float:
    if kind != CLASS:
        return 1.0
    return weights.exception_prior if _EXCEPTION.search(entity) else weights.class_prior


def rank_signals(
    signals: Signals, weights: Weights = DEFAULT_WEIGHTS, max_files: int = 10, max_locations: int = 50
) -> Ranking:
    scores, file_scores = score_signals(signals, weights)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], signals.ids[i]))
    locations = unique(signals.ids[i] for i in order if scores[i] > 0)[:max_locations]
    files = [path for path, value in sorted(file_scores.items(), key=lambda kv: (-kv[1], kv[0])) if value > 0]
    evidence = dict(signals.evidence)
    evidence["top"] = [
        {
            "id": signals.ids[i],
            "score": round(float(scores[i]), 4),
            **{
                name: round(float(signals.features[name][i]), 3)
                for name in FEATURES
                if signals.features[name][i]
            },
        }
        for i in order[:EVIDENCE_TOP]
        if scores[i] > 0
    ]
    evidence["weights"] = asdict(weights)
    return Ranking(files=files[:max_files], locations=locations, evidence=evidence)


class RetrievalLocalizer:
    """Localize an issue without an LLM. ``plain=True``: plain BM25, the baseline."""

    def __init__(
        self,
        index: RepoIndex,
        tools: RepoTools | None = None,
        *,
        plain: bool = False,
        weights: Weights = DEFAULT_WEIGHTS,
    ) -> None:
        self.index = index
        self.tools = tools if tools is not None else RepoTools(index)
        self.search: EntitySearch = self.tools.search
        self.plain = plain
        self.weights = weights
        self._maps: _RepoMaps | None = None

    def rank(self, issue: str, max_files: int = 10, max_locations: int = 50) -> Ranking:
        if self.plain:
            return self._rank_plain(issue, max_files, max_locations)
        return rank_signals(self.signals(issue), self.weights, max_files, max_locations)

    # --- the baseline ---------------------------------------------------------------------------------

    def _rank_plain(self, issue: str, max_files: int, max_locations: int) -> Ranking:
        issue, cut = cap_issue(issue)
        tokens = query_tokens(issue)
        scores = self.search.scores(tokens)
        documents = self.search.documents
        positive = np.flatnonzero(scores > 0)
        order = positive[np.argsort(-scores[positive], kind="stable")]
        locations: list[str] = []
        files: list[str] = []
        for doc in order:
            path, entity = documents[int(doc)]
            if len(locations) < max_locations:
                locations.append(entity_id(path, entity.qualname))
            if path not in files and len(files) < max_files:
                files.append(path)
            if len(locations) >= max_locations and len(files) >= max_files:
                break
        evidence = {
            "mode": "plain-bm25",
            "query_tokens": len(self.search.known(tokens)),
            "top": [
                {
                    "id": entity_id(documents[int(doc)][0], documents[int(doc)][1].qualname),
                    "bm25": float(scores[doc]),
                }
                for doc in order[:EVIDENCE_TOP]
            ],
        }
        if cut:
            evidence["issue_cut"] = cut
        return Ranking(files=files, locations=unique(locations), evidence=evidence)

    # --- the default: signals -------------------------------------------------------------------------

    @property
    def maps(self) -> _RepoMaps:
        if self._maps is None:
            self._maps = _RepoMaps(self.index, self.search.documents, self.tools.lines)
        return self._maps

    def signals(self, issue: str) -> Signals:
        issue, cut = cap_issue(issue)
        maps = self.maps
        documents = self.search.documents
        mentions = extract_mentions(issue)
        features: dict[str, dict[int, float]] = {name: {} for name in FEATURES}
        file_mention: dict[str, float] = {}
        evidence: dict[str, Any] = {"mode": "default"}
        if cut:
            evidence["issue_cut"] = cut

        def bump(feature: str, doc: int, value: float) -> None:
            table = features[feature]
            if value > table.get(doc, 0.0):
                table[doc] = value

        def mention_file(path: str, value: float) -> None:
            file_mention[path] = max(file_mention.get(path, 0.0), value)

        # BM25: the whole issue and its title
        tokens = query_tokens(issue)
        bm25 = _normalized(self.search.scores(tokens))
        title = issue.strip().split("\n", 1)[0]
        bm25_title = _normalized(self.search.scores(query_tokens(title)))
        candidates: set[int] = set(_top(bm25, BM25_CANDIDATES)) | set(_top(bm25_title, BM25_CANDIDATES // 4))

        # files named by path
        matched_paths: dict[str, list[str]] = {}
        for written in mentions.paths:
            targets = maps.match_path(written)
            if targets:
                matched_paths[written] = targets
                for path in targets:
                    mention_file(path, 1.0 / len(targets))

        # traceback frames: the deepest in-repository frame counts most
        frames_out: list[dict[str, Any]] = []
        resolved_frames: list[tuple[str, int, str, int | None]] = []
        for written, line, function in mentions.frames:
            targets = maps.match_path(written)
            if len(targets) != 1:
                continue
            path = targets[0]
            resolved_frames.append((path, line, function, maps.frame_entity(path, line, function)))
        for depth, (path, line, function, doc) in enumerate(reversed(resolved_frames)):
            weight = FRAME_DECAY**depth
            mention_file(path, weight)
            if doc is not None:
                bump("traceback", doc, weight)
            frames_out.append(
                {
                    "file": path,
                    "line": line,
                    "function": function,
                    "entity": entity_id(path, documents[doc][1].qualname) if doc is not None else None,
                    "weight": round(weight, 3),
                }
            )
        frames_out.reverse()

        # dotted names: module paths, qualified names
        qualified: dict[str, list[str]] = {}
        for dotted in mentions.dotted:
            module_file, rest = maps.match_module(dotted)
            if module_file is not None:
                mention_file(module_file, 1.0)
                qualified.setdefault(dotted, []).append(module_file)
                if rest:
                    for doc in maps.docs_named(rest, module_file):
                        bump("qualified_mention", doc, 1.0)
                        qualified[dotted].append(maps.ids[doc])
                continue
            parts = dotted.split(".")
            for size in range(len(parts), 1, -1):
                docs = maps.docs_named(".".join(parts[-size:]))
                if docs:
                    for doc in docs:
                        bump("qualified_mention", doc, 1.0 / math.sqrt(len(docs)))
                    qualified[dotted] = [maps.ids[doc] for doc in docs[:5]]
                    break

        # quoted error messages: the definitions whose code holds them
        message_hits: dict[str, list[str]] = {}
        for fragment in mentions.messages:
            # values formatted into the message's tail are not in the code: drop words until found
            words = fragment.split()
            docs = []
            while not docs and len(words) >= MESSAGE_MIN_WORDS and len(" ".join(words)) >= MESSAGE_MIN_CHARS:
                fragment = " ".join(words)
                docs = maps.docs_containing(fragment)
                words.pop()
            if docs:
                message_hits[fragment] = [maps.ids[doc] for doc in docs[:5]]
                for doc in docs:
                    bump("message", doc, 1.0 / math.sqrt(len(docs)))

        # code-like simple names
        named: dict[str, int] = {}
        for name in mentions.names:
            docs = maps.docs_named(name)
            if not docs:
                continue
            named[name] = len(docs)
            strength = 1.0 / math.sqrt(len(docs))
            for doc in docs:
                bump("name_mention", doc, strength)

        title_mentions = extract_mentions(title)
        for name in [*title_mentions.dotted, *title_mentions.names]:
            docs = maps.docs_named(name)
            for doc in docs:
                bump("title_mention", doc, 1.0 / math.sqrt(len(docs)))

        # graph: classes <-> their methods, files imported by mentioned files
        for doc, value in list(features["qualified_mention"].items()) + list(
            features["name_mention"].items()
        ):
            entity = documents[doc][1]
            if entity.kind == CLASS:
                for member in maps.members(doc):
                    bump("owner_mention", member, value)
            owner = maps.owner(doc)
            if owner is not None:
                bump("member_mention", owner, value)
        imported: dict[str, float] = {}
        for path, value in file_mention.items():
            for target in maps.imports(path):
                if target != path:
                    imported[target] = max(imported.get(target, 0.0), value)

        for table in features.values():
            candidates.update(table)
        for path in file_mention:
            candidates.update(maps.docs_in_file(path))
        # owners of candidates, so a method's class can be ranked (and give its BM25 to the method)
        candidates.update(owner for doc in list(candidates) if (owner := maps.owner(doc)) is not None)
        for doc in candidates:
            owner = maps.owner(doc)
            if owner is not None and bm25[owner] > 0:
                features["owner_bm25"][doc] = float(bm25[owner])
            if documents[doc][0] in file_mention:
                features["file_mention"][doc] = file_mention[documents[doc][0]]

        ordered = sorted(candidates)
        columns = {
            "bm25": bm25[ordered] if ordered else np.zeros(0),
            "bm25_title": bm25_title[ordered] if ordered else np.zeros(0),
        }
        for name in FEATURES:
            if name not in columns:
                table = features[name]
                columns[name] = np.array([table.get(doc, 0.0) for doc in ordered], dtype=float)
        file_features = {path: {"mention": value} for path, value in file_mention.items()}
        for path, value in imported.items():
            file_features.setdefault(path, {})["import"] = value
        evidence.update(
            {
                "query_tokens": len(self.search.known(tokens)),
                "paths": matched_paths,
                "frames": frames_out,
                "qualified_names": qualified,
                "names": dict(list(named.items())[:50]),
                "messages": message_hits,
                "mentioned_files": {path: round(value, 3) for path, value in file_mention.items()},
            }
        )
        return Signals(
            ids=[maps.ids[doc] for doc in ordered],
            files=[documents[doc][0] for doc in ordered],
            kinds=[documents[doc][1].kind for doc in ordered],
            roles=[maps.role(documents[doc][0]) for doc in ordered],
            features=columns,
            file_features=file_features,
            evidence=evidence,
        )


def _path_qualname(document: tuple[str, Entity]) -> tuple[str, str]:
    return document[0], document[1].qualname


def _normalized(scores: np.ndarray) -> np.ndarray:
    best = float(scores.max()) if len(scores) else 0.0
    return scores / best if best > 0 else np.zeros(len(scores))


def _top(scores: np.ndarray, k: int) -> Iterable[int]:
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k)[:k]]
    return (int(doc) for doc in positive)


class _RepoMaps:
    """Lookups the signals need, over the search index's documents; built once per localizer."""

    def __init__(
        self, index: RepoIndex, documents: list[tuple[str, Entity]], lines: Callable[[str], list[str]]
    ) -> None:
        self.index = index
        self.lines = lines
        self.documents = documents
        self.ids = [entity_id(path, entity.qualname) for path, entity in documents]
        self._by_name: dict[str, list[int]] = {}
        self._by_file: dict[str, list[int]] = {}
        self._owner: list[int | None] = [None] * len(documents)
        self._members: dict[int, list[int]] = {}
        for doc, (path, entity) in enumerate(documents):
            self._by_name.setdefault(entity.name, []).append(doc)
            self._by_file.setdefault(path, []).append(doc)
        for docs in self._by_file.values():
            by_qualname = {documents[doc][1].qualname: doc for doc in docs if documents[doc][1].kind == CLASS}
            for doc in docs:
                entity = documents[doc][1]
                if entity.kind == METHOD and entity.parent in by_qualname:
                    owner = by_qualname[entity.parent]
                    self._owner[doc] = owner
                    self._members.setdefault(owner, []).append(doc)
        # path suffixes ("models/query.py", "query.py") -> files, for traceback and path mentions
        self._suffixes: dict[str, list[str]] = {}
        for path in index.files:
            parts = path.split("/")
            for start in range(len(parts)):
                self._suffixes.setdefault("/".join(parts[start:]), []).append(path)
        self._modules: dict[str, str] = {}
        for path in index.files:
            if path.endswith(".py"):
                parts = path[:-3].split("/")
                if parts[-1] == "__init__":
                    parts.pop()
                for start in range(len(parts)):
                    self._modules.setdefault(".".join(parts[start:]), path)
        self._roles: dict[str, str] = {}

    def role(self, path: str) -> str:
        role = self._roles.get(path)
        if role is None:
            role = self._roles[path] = path_role(path)
        return role

    def match_path(self, written: str) -> list[str]:
        """Repository files that ``written`` (absolute, relative, site-packages...) names, by the
        longest path suffix that some file has; a bare file name only when it is unambiguous enough."""
        parts = normalize_path(written).split("/")
        for start in range(len(parts)):
            targets = self._suffixes.get("/".join(parts[start:]))
            if targets:
                if start == len(parts) - 1 and len(parts) > 1:
                    return []  # only the file name matched a path with directories: some other file
                return targets if len(targets) <= 3 else []
        return []

    def match_module(self, dotted: str) -> tuple[str | None, str]:
        """``django.db.models.query.QuerySet`` -> (``django/db/models/query.py``, ``QuerySet``); needs at
        least two components of module path, so ``self.x`` or ``query.union`` are not modules."""
        parts = dotted.split(".")
        for end in range(len(parts), 1, -1):
            path = self._modules.get(".".join(parts[:end]))
            if path is not None:
                return path, ".".join(parts[end:])
        return None, ""

    def docs_named(self, name: str, path: str | None = None) -> list[int]:
        """Definitions whose qualified name is ``name`` or ends with ``.name``."""
        simple = name.rsplit(".", 1)[-1]
        docs = self._by_name.get(simple, [])
        if "." in name:
            suffix = "." + name
            docs = [
                doc
                for doc in docs
                if self.documents[doc][1].qualname == name or self.documents[doc][1].qualname.endswith(suffix)
            ]
        if path is not None:
            docs = [doc for doc in docs if self.documents[doc][0] == path]
        return docs

    def docs_containing(self, fragment: str, limit: int = 50) -> list[int]:
        """Definitions whose source holds ``fragment`` literally (at most ``limit``: a fragment found
        everywhere says nothing)."""
        found: list[int] = []
        for path, text in self.texts.items():
            start = text.find(fragment)
            while start >= 0:
                entity = self.index.enclosing(path, text.count("\n", 0, start) + 1)
                doc = self._doc_of(path, entity) if entity is not None else None
                if doc is not None and doc not in found:
                    found.append(doc)
                    if len(found) > limit:
                        return []
                start = text.find(fragment, start + 1)
        return found

    @cached_property
    def texts(self) -> dict[str, str]:
        """Each source file's text that has definitions, for literal message search."""
        texts: dict[str, str] = {}
        for path in self._by_file:
            try:
                texts[path] = "\n".join(self.lines(path))
            except Exception:  # unreadable: nothing to find in it
                continue
        return texts

    def docs_in_file(self, path: str) -> list[int]:
        return self._by_file.get(path, [])

    def owner(self, doc: int) -> int | None:
        return self._owner[doc]

    def members(self, doc: int) -> list[int]:
        return self._members.get(doc, [])

    def imports(self, path: str) -> list[str]:
        indexed = self.index.files.get(path)
        if indexed is None:
            return []
        targets: list[str] = []
        for imported in indexed.parse.imports:
            targets += self.index.resolve_import(path, imported)
        return unique(targets)

    def frame_entity(self, path: str, line: int, function: str) -> int | None:
        """The definition a frame ran in: the one enclosing its line when its name agrees (or the frame
        names none), else the definition of that name in the file (the issue's version of the file may
        differ from this commit's)."""
        entity = self.index.enclosing(path, line)
        simple = function.rsplit(".", 1)[-1]  # IPython frames name Class.method
        if entity is not None and (not function or entity.name == simple or function.startswith("<")):
            return self._doc_of(path, entity)
        if function and not function.startswith("<"):
            docs = self.docs_named(function, path)
            if docs:
                return docs[0]
        return None

    def _doc_of(self, path: str, entity: Entity) -> int | None:
        for doc in self._by_file.get(path, []):
            if self.documents[doc][1] == entity:
                return doc
        return None


__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURES",
    "Mentions",
    "Ranking",
    "RetrievalLocalizer",
    "Signals",
    "Weights",
    "cap_issue",
    "extract_mentions",
    "path_role",
    "rank_signals",
    "score_signals",
]
