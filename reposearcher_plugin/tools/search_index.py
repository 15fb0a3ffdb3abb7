"""The one BM25 index over entity documents: ``search_code`` and the retrieval localizer both use it.

A document is one definition (its name weighted three times, its file's path, its docstring, its code;
``tokens.py`` makes them), scored as bm25s scores them, bit for bit (``bm25.py``). The build of a snapshot
is paid once per snapshot, not per process, and kept with the index (``search_build.py``); this module
is the queries over it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from reposearcher_plugin.index import RepoIndex
from reposearcher_plugin.tools.search_build import Built, Documents, built_search


class EntitySearch:
    """BM25 over one document per definition of ``index``, built on first use and then kept with the
    index for the life of the process (every tool set and localizer over it shares one build;
    ``search_build.built_search``). Thread-safe: concurrent first calls build it once."""

    def __init__(self, index: RepoIndex, lines: Callable[[str], list[str]]) -> None:
        self.index = index
        self._read_lines = lines
        self._local: Built | None = None

    def _build(self) -> Built:
        if self._local is None:
            self._local = built_search(self.index, self._read_lines)
        return self._local

    # --- queries --------------------------------------------------------------------------------------

    @property
    def documents(self) -> Documents:
        """(path, entity) of every document, in index order; document i is ``documents[i]``."""
        return self._build().documents

    def known(self, tokens: Sequence[str]) -> list[str]:
        """The distinct tokens of ``tokens`` that some document holds, in first-seen order."""
        vocabulary = self._build().matrix.vocabulary
        return [token for token in dict.fromkeys(tokens) if token in vocabulary]

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for the query ``tokens`` (repeats count once): zeros when no
        token is known."""
        matrix = self._build().matrix
        return matrix.scores([matrix.vocabulary[token] for token in self.known(tokens)])

    def top(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (document, score) pairs for ``tokens``, best first, zero scores included."""
        matrix = self._build().matrix
        known = self.known(tokens)
        if not known or not matrix.num_docs:
            return []
        scores = matrix.scores([matrix.vocabulary[token] for token in known])
        k = min(k, matrix.num_docs)
        # bm25s's selection, so that ties come out in the order they always did
        best = np.argpartition(scores, -k)[-k:]
        best_scores = scores[best]
        order = np.flip(np.argsort(best_scores))
        return [(int(doc), float(score)) for doc, score in zip(best[order], best_scores[order], strict=True)]
