"""What a repository's own history says about an issue: the files that past changes with similar messages
edited (BugLocator's "similar bug reports", Zhou et al., ICSE 2012, with commit messages as the reports).

A fix tends to land where fixes of similar problems landed before: "Fixed #31416 -- Made QuerySet.union()
respect ordering" and a later issue about ``union()`` and ``order_by`` share words and a file. The
history is the base commit's own ancestors only (never the fix or anything after it), so it is what the
reporter's repository knew. Pure and index-free like the rest of the ranking: the workspace reads the
commits (``workspace/change_history.py``), this module scores them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reposearcher_plugin.tools.bm25 import BM25_B, BM25_K1

# The newest ancestors read: enough for every file's recent fixes (measured on mined commits, 5,000
# ranked as well as the whole history), and a bound on the cost of a repository with a long past.
HISTORY_COMMITS = 5000
# A change touching more files than this is a refactoring or a sweep, not a fix that points anywhere.
MAX_FILES_PER_CHANGE = 30
# Files are scored from the best-matching past changes only: the long tail of weak matches is noise.
SIMILAR_CHANGES = 50

# (path, simple name) of each Python definition a past change edited, by commit id: what the workspace
# reads from git's hunk headers (workspace/change_history.py), for the commits asked only.
EditedNames = frozenset[tuple[str, str]]
EditsOf = Callable[[Sequence[str]], Mapping[str, EditedNames]]


@dataclass(frozen=True)
class PastChange:
    """One ancestor commit: its message's query tokens (tools/tokens.py), the files it changed and its
    id ("" when unknown: then no definitions are read for it)."""

    tokens: tuple[str, ...]
    files: tuple[str, ...]
    commit: str = ""


@dataclass
class ChangeHistory:
    """Past changes of a repository at one commit, newest first (one history serves every issue asked at
    that commit). ``edits``: where the definitions that changes edited are read from (None: the history
    scores files only)."""

    changes: Sequence[PastChange]
    edits: EditsOf | None = field(default=None, repr=False, compare=False)
    _lengths: list[int] | None = field(default=None, repr=False, compare=False)
    _last_similar: tuple[tuple[frozenset[str], int], list[tuple[int, float]]] | None = field(
        default=None, repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.changes)

    def similar(self, query: Iterable[str], limit: int = SIMILAR_CHANGES) -> list[tuple[int, float]]:
        """The past changes whose messages match ``query`` tokens best, by BM25 (the constants of
        tools/bm25.py), best first: (position in ``changes``, score).

        One pass over the messages per query, with no inverted index: a history serves one issue (its
        base commit's) almost always, and intersecting each message with the query's few terms in C costs
        a fifth of indexing every token of 5,000 messages in Python."""
        terms = frozenset(query)
        if self._last_similar is not None and self._last_similar[0] == (terms, limit):
            return self._last_similar[1]  # file_scores and definition_scores ask the same in a row
        total = len(self.changes)
        if not total or not terms:
            return []
        if self._lengths is None:
            self._lengths = [len(change.tokens) for change in self.changes]
        average = max(sum(self._lengths) / total, 1e-9)
        holding: list[tuple[int, frozenset[str]]] = []
        frequency = dict.fromkeys(terms, 0)
        for number, change in enumerate(self.changes):
            shared = terms.intersection(change.tokens)
            if shared:
                holding.append((number, shared))
                for token in shared:
                    frequency[token] += 1
        idf = {
            token: math.log(1.0 + (total - count + 0.5) / (count + 0.5))
            for token, count in frequency.items()
            if count
        }
        scores: dict[int, float] = {}
        for number, shared in holding:
            tokens = self.changes[number].tokens
            norm = BM25_K1 * (1.0 - BM25_B + BM25_B * self._lengths[number] / average)
            score = 0.0
            for token in terms:  # in the query's order: the same sum, to the last bit, whatever the change
                if token in shared:
                    count = tokens.count(token)
                    score += idf[token] * count / (norm + count)
            scores[number] = score
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
        self._last_similar = ((terms, limit), best)
        return best

    def file_scores(self, query: Iterable[str], known: Iterable[str] | None = None) -> dict[str, float]:
        """Each file's share of the best-matching past changes: a change gives each of its files its
        score divided by how many files it changed (a one-file fix points harder than a ten-file one),
        the sum scaled so that the best file has 1. ``known``: only these paths (files of the snapshot;
        a past change may name files since deleted or renamed)."""
        allowed = set(known) if known is not None else None
        similar = self.similar(query)
        if not similar:
            return {}
        top = similar[0][1]
        totals: dict[str, float] = {}
        for number, score in similar:
            files = self.changes[number].files
            for path in files:
                if allowed is None or path in allowed:
                    totals[path] = totals.get(path, 0.0) + (score / top) / len(files)
        best = max(totals.values(), default=0.0)
        return {path: value / best for path, value in totals.items()} if best > 0 else {}

    def definition_scores(self, query: Iterable[str]) -> dict[tuple[str, str], float]:
        """Each ``(path, simple name)`` definition's share of the best-matching past changes, as
        ``file_scores`` gives files: a change gives each definition it edited its score divided by how
        many it edited, the best scaled to 1. Empty without ``edits`` or when no change matches."""
        similar = self.similar(query)
        if self.edits is None or not similar:
            return {}
        commits = [self.changes[number].commit for number, _ in similar]
        edited = self.edits([commit for commit in commits if commit])
        top = similar[0][1]
        totals: dict[tuple[str, str], float] = {}
        for (_, score), commit in zip(similar, commits, strict=True):
            names = edited.get(commit, frozenset()) if commit else frozenset()
            for name in names:
                totals[name] = totals.get(name, 0.0) + (score / top) / len(names)
        best = max(totals.values(), default=0.0)
        return {name: value / best for name, value in totals.items()} if best > 0 else {}
