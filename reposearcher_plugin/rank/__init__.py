"""Layer between tools and agent: the offline default ranking of an issue's likely locations, and its
plain-BM25 baseline. It reads the index and the tools' BM25 search, and never the agent.

``mentions``  what an issue names (identifiers, paths, frames, error messages), and the input cap
``maps``      the repository lookups those mentions are resolved with
``features``  one function per feature family; the candidates and their features (``Signals``)
``scoring``   the weights and the pure weighted sum that ranks ``Signals``
``localizer`` ``RetrievalLocalizer``: the two stages together, and the plain-BM25 baseline
"""

from reposearcher_plugin.rank.localizer import RetrievalLocalizer
from reposearcher_plugin.rank.mentions import (
    MAX_MESSAGES,
    MAX_RANKED_ISSUE_CHARS,
    Mentions,
    cap_issue,
    extract_mentions,
    literal_pieces,
    message_fragments,
)
from reposearcher_plugin.rank.scoring import (
    DEFAULT_WEIGHTS,
    FEATURES,
    Ranking,
    Signals,
    Weights,
    rank_signals,
    score_signals,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURES",
    "MAX_MESSAGES",
    "MAX_RANKED_ISSUE_CHARS",
    "Mentions",
    "Ranking",
    "RetrievalLocalizer",
    "Signals",
    "Weights",
    "cap_issue",
    "extract_mentions",
    "literal_pieces",
    "message_fragments",
    "rank_signals",
    "score_signals",
]
