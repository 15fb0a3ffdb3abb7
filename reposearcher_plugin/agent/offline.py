"""The offline localizers by name: how each ranks, and which one is the default. Here, apart from
``localizers.py``, because the agent loop's hints rank with the default too."""

from __future__ import annotations

RULES = "rules"  # the hand-set weights (rank/scoring.py)
LEARNED = "learned"  # the packaged LightGBM model (rank/learned.py)
PLAIN = "plain"  # BM25 alone: no mentions, no graph
# name -> how it ranks. ``retrieval`` is the learned model since v3 met the rule of docs/ranker.md
# (cross-validated, mined test and Lite dev; eval/results/ltr_training.md); switching is this one entry,
# and the agent's hints follow it (agent/loop.py).
RETRIEVAL_MODELS = {"retrieval": LEARNED, "retrieval-rules": RULES, "retrieval-ltr": LEARNED, "bm25": PLAIN}
RANKER_FILE_PREFIX = "ranker:"  # ranker:PATH, a model file of `reposearcher ranker train`
DEFAULT_MODEL = "retrieval"
