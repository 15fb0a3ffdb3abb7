"""The retrieval localizer: the default when no LLM is configured, and the plain-BM25 baseline.

The default ranks definitions in two stages, so that every number it uses can be shown and tuned:

1. **Signals** (:meth:`RetrievalLocalizer.signals`, needs the index). From the issue text it extracts
   code-like identifiers, dotted names, file and module paths and traceback frames
   (:mod:`reposearcher_plugin.rank.mentions`), and resolves them to the repository's files and
   definitions (:mod:`reposearcher_plugin.rank.maps`). It scores every definition with BM25 (the same
   entity documents ``search_code`` uses) and keeps a candidate set: the best BM25 matches plus
   everything a mention, a frame or a graph edge (class <-> method, import) reaches. Each candidate gets
   a row of named features (:mod:`reposearcher_plugin.rank.features`).
2. **Scores** (:func:`~reposearcher_plugin.rank.scoring.score_signals`, pure). A weighted sum of those
   features (:class:`~reposearcher_plugin.rank.scoring.Weights`), times a path-role prior (tests, docs,
   examples demoted); files rank by their best definitions plus file-level evidence; a definition's final
   score adds a share of its file's score, because a definition in the right file is more likely right
   than an equally good match elsewhere.

The second stage can instead be a learned model (``ranker=``, :mod:`reposearcher_plugin.rank.learned`):
LightGBM LambdaMART over the same features, trained on repository history (``docs/ranker.md``).

``plain=True`` is the baseline: the same documents and query tokens, BM25 alone, files ranked by their
best definition.
"""

from __future__ import annotations

import numpy as np

from reposearcher_plugin.index import RepoIndex, entity_id
from reposearcher_plugin.index.locations import unique
from reposearcher_plugin.rank.features import collect_signals
from reposearcher_plugin.rank.history import ChangeHistory
from reposearcher_plugin.rank.learned import LearnedRanker
from reposearcher_plugin.rank.maps import RepoMaps
from reposearcher_plugin.rank.mentions import cap_issue
from reposearcher_plugin.rank.scoring import (
    DEFAULT_WEIGHTS,
    EVIDENCE_TOP,
    Ranking,
    Signals,
    Weights,
    rank_signals,
)
from reposearcher_plugin.tools.repo_tools import RepoTools
from reposearcher_plugin.tools.search_index import EntitySearch
from reposearcher_plugin.tools.tokens import query_tokens


class RetrievalLocalizer:
    """Localize an issue without an LLM: the hand-set weights, or ``ranker`` (a learned model) when given.
    ``plain=True``: plain BM25, the baseline."""

    def __init__(
        self,
        index: RepoIndex,
        tools: RepoTools | None = None,
        *,
        plain: bool = False,
        weights: Weights = DEFAULT_WEIGHTS,
        ranker: LearnedRanker | None = None,
        history: ChangeHistory | None = None,
    ) -> None:
        self.index = index
        self.tools = tools if tools is not None else RepoTools(index)
        self.search: EntitySearch = self.tools.search
        self.plain = plain
        self.weights = weights
        self.ranker = ranker
        self.history = history
        self._maps: RepoMaps | None = None

    def rank(self, issue: str, max_files: int = 10, max_locations: int = 50) -> Ranking:
        if self.plain:
            return self._rank_plain(issue, max_files, max_locations)
        if self.ranker is not None:
            return self.ranker.rank(self.signals(issue), max_files, max_locations)
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
    def maps(self) -> RepoMaps:
        if self._maps is None:
            self._maps = RepoMaps(self.index, self.search.documents, self.tools.lines)
        return self._maps

    def signals(self, issue: str) -> Signals:
        issue, cut = cap_issue(issue)
        signals = collect_signals(self.search, self.maps, issue, self.history)
        # what was ranked comes first in the evidence: the mode, and the cut when there was one
        head = {"mode": "default", **({"issue_cut": cut} if cut else {})}
        signals.evidence = {**head, **signals.evidence}
        return signals
