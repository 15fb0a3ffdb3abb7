"""Training the learned ranker (:mod:`reposearcher_plugin.rank.learned`) from Signals and gold locations:
LightGBM LambdaMART, one query per instance, a candidate relevant when its id is a gold location.

Labels follow the strict protocol (``evaluation/metrics.py``): the function level scores entity ids
exactly, so a class is relevant only when the class itself is gold (its body outside methods changed,
or a method was added to it: ``docs/gold.md``), never because one of its methods is. Instances whose
candidates hold no gold location carry no ranking signal and are left out of training.

Deterministic: seeded, ``deterministic=True``, one thread, rows in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reposearcher_plugin.rank.learned import (
    DEFAULT_LEARNED_MODEL,
    feature_matrix,
    feature_names,
    model_text,
)
from reposearcher_plugin.rank.scoring import Signals

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [5, 10],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "lambdarank_truncation_level": 20,
}
FIXED_PARAMS: dict[str, Any] = {
    "seed": 0,
    "deterministic": True,
    "num_threads": 1,
    "force_row_wise": True,
    "verbosity": -1,
}


@dataclass
class Query:
    """One instance for training: its Signals and its gold locations."""

    signals: Signals
    gold: frozenset[str]


def labels_of(signals: Signals, gold: frozenset[str]) -> np.ndarray:
    return np.array([1.0 if entity in gold else 0.0 for entity in signals.ids])


def _stack(queries: Sequence[Query], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    matrices: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    groups: list[int] = []
    for query in queries:
        label = labels_of(query.signals, query.gold)
        if not label.any():
            continue
        matrices.append(feature_matrix(query.signals, names))
        labels.append(label)
        groups.append(len(label))
    if not groups:
        raise ValueError("no instance has a gold location among its candidates: nothing to learn from")
    return np.vstack(matrices), np.concatenate(labels), groups


@dataclass
class Trained:
    text: str  # the model file
    best_iteration: int
    dev_ndcg: dict[str, float]
    train_queries: int
    dev_queries: int


def train_ranker(
    train: Sequence[Query],
    dev: Sequence[Query] = (),
    *,
    params: dict[str, Any] | None = None,
    rounds: int = 400,
    early_stopping: int = 40,
    name: str = DEFAULT_LEARNED_MODEL,
    version: int = 1,
    file_aggregation: str = "max",
    header: dict[str, Any] | None = None,
) -> Trained:
    """A model file's text, trained on ``train``; with ``dev``, the rounds stop where dev nDCG@5 stops
    improving (``early_stopping`` rounds without a gain)."""
    import lightgbm

    names = feature_names()
    settings = {**DEFAULT_PARAMS, **(params or {}), **FIXED_PARAMS}
    features, labels, groups = _stack(train, names)
    train_set = lightgbm.Dataset(features, labels, group=groups, feature_name=list(names), free_raw_data=True)
    valid_sets = []
    callbacks = []
    dev_count = 0
    record: dict[str, Any] = {}
    if dev:
        dev_features, dev_labels, dev_groups = _stack(dev, names)
        dev_count = len(dev_groups)
        valid_sets.append(lightgbm.Dataset(dev_features, dev_labels, group=dev_groups, reference=train_set))
        callbacks.append(lightgbm.early_stopping(early_stopping, first_metric_only=True, verbose=False))
        callbacks.append(lightgbm.record_evaluation(record))
    booster = lightgbm.train(
        settings, train_set, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks
    )
    best = booster.best_iteration if dev and booster.best_iteration > 0 else booster.current_iteration()
    dev_ndcg = {metric: float(values[best - 1]) for metric, values in record.get("valid_0", {}).items()}
    booster_text = booster.model_to_string(num_iteration=best)
    full_header = {
        "name": name,
        "version": version,
        "features": list(names),
        "file_aggregation": file_aggregation,
        "rounds": best,
        "params": {key: value for key, value in settings.items() if key != "verbosity"},
        **(header or {}),
    }
    return Trained(
        text=model_text(booster_text, full_header),
        best_iteration=best,
        dev_ndcg=dev_ndcg,
        train_queries=len(groups),
        dev_queries=dev_count,
    )
