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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reposearcher_plugin.rank.learned import (
    DEFAULT_LEARNED_MODEL,
    feature_matrix,
    feature_names,
    file_feature_matrix,
    file_feature_names,
    lightgbm_module,
    model_text,
)
from reposearcher_plugin.rank.scoring import DEFAULT_WEIGHTS, Signals

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


def _entity_rows(query: Query, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return feature_matrix(query.signals, names), labels_of(query.signals, query.gold)


def _file_rows(query: Query, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Files are relevant when a gold location lies in them (the strict protocol's file level)."""
    paths, matrix = file_feature_matrix(query.signals, names)
    gold_files = {item.split("::", 1)[0] for item in query.gold}
    return matrix, np.array([1.0 if path in gold_files else 0.0 for path in paths])


def query_rows(query: Query, files: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One query's feature rows and labels: its candidates, or with ``files`` its files."""
    if files:
        return _file_rows(query, file_feature_names())
    return _entity_rows(query, feature_names())


def _stack(
    queries: Sequence[Query], names: Sequence[str], rows: Any = _entity_rows
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    return _stack_rows([rows(query, names) for query in queries])


def _stack_rows(rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    matrices: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    groups: list[int] = []
    for matrix, label in rows:
        if not label.any():
            continue
        matrices.append(matrix)
        labels.append(label)
        groups.append(len(label))
    if not groups:
        raise ValueError("no instance has a gold location among its candidates: nothing to learn from")
    return np.vstack(matrices), np.concatenate(labels), groups


@dataclass
class Trained:
    booster_text: str  # LightGBM's text of the entity model
    header: dict[str, Any]
    best_iteration: int
    dev_ndcg: dict[str, float]
    train_queries: int
    dev_queries: int
    file_booster_text: str = ""  # the file model's, when files rank by one

    @property
    def text(self) -> str:
        """The model file."""
        return model_text(self.booster_text, self.header, self.file_booster_text)


def train_booster(
    rows: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    params: dict[str, Any] | None = None,
    rounds: int,
    files: bool = False,
) -> Any:
    """A LightGBM booster trained for exactly ``rounds`` rounds, no early stopping, on queries given as
    their :func:`query_rows` (entity rows, or file rows with ``files``): cross-validation computes each
    query's rows once for every fold and grid point, and reads the booster's predictions at several round
    counts (``predict(..., num_iteration=r)``) instead of training once per count."""
    names = file_feature_names() if files else feature_names()
    features, labels, groups = _stack_rows(rows)
    lightgbm = lightgbm_module()
    settings = {**DEFAULT_PARAMS, **(params or {}), **FIXED_PARAMS}
    dataset = lightgbm.Dataset(features, labels, group=groups, feature_name=list(names), free_raw_data=True)
    return lightgbm.train(settings, dataset, num_boost_round=rounds)


def _fit(
    train: tuple[np.ndarray, np.ndarray, list[int]],
    dev: tuple[np.ndarray, np.ndarray, list[int]] | None,
    names: Sequence[str],
    settings: dict[str, Any],
    rounds: int,
    early_stopping: int,
) -> tuple[str, int, dict[str, float]]:
    lightgbm = lightgbm_module()
    features, labels, groups = train
    train_set = lightgbm.Dataset(features, labels, group=groups, feature_name=list(names), free_raw_data=True)
    valid_sets = []
    callbacks = []
    record: dict[str, Any] = {}
    if dev is not None:
        dev_features, dev_labels, dev_groups = dev
        valid_sets.append(lightgbm.Dataset(dev_features, dev_labels, group=dev_groups, reference=train_set))
        callbacks.append(lightgbm.early_stopping(early_stopping, first_metric_only=True, verbose=False))
        callbacks.append(lightgbm.record_evaluation(record))
    booster = lightgbm.train(
        settings, train_set, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks
    )
    best = (
        booster.best_iteration
        if dev is not None and booster.best_iteration > 0
        else booster.current_iteration()
    )
    scores = {metric: float(values[best - 1]) for metric, values in record.get("valid_0", {}).items()}
    return booster.model_to_string(num_iteration=best), best, scores


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
    file_rounds: int | None = None,
    header: dict[str, Any] | None = None,
) -> Trained:
    """A model trained on ``train``; with ``dev``, the rounds stop where dev nDCG@5 stops improving
    (``early_stopping`` rounds without a gain). ``file_aggregation="model"`` trains the file model too,
    with the same parameters, for ``file_rounds`` rounds (``rounds`` when None) or until dev stops it."""
    names = feature_names()
    settings = {**DEFAULT_PARAMS, **(params or {}), **FIXED_PARAMS}
    stacked = _stack(train, names)
    stacked_dev = _stack(dev, names) if dev else None
    booster_text, best, dev_ndcg = _fit(stacked, stacked_dev, names, settings, rounds, early_stopping)
    full_header: dict[str, Any] = {
        "name": name,
        "version": version,
        "features": list(names),
        "file_aggregation": file_aggregation,
        "rounds": best,
        "params": {key: value for key, value in settings.items() if key != "verbosity"},
        # the rules_* columns were computed with these: the model keeps seeing them if the defaults move
        "rules_weights": asdict(DEFAULT_WEIGHTS),
        **(header or {}),
    }
    file_text = ""
    if file_aggregation == "model":
        file_text, trained_file_rounds = train_file_model(
            train, dev, settings, file_rounds or rounds, early_stopping
        )
        full_header["file_features"] = list(file_feature_names())
        full_header["file_rounds"] = trained_file_rounds
    return Trained(
        booster_text=booster_text,
        header=full_header,
        best_iteration=best,
        dev_ndcg=dev_ndcg,
        train_queries=len(stacked[2]),
        dev_queries=len(stacked_dev[2]) if stacked_dev else 0,
        file_booster_text=file_text,
    )


def train_file_model(
    train: Sequence[Query],
    dev: Sequence[Query],
    settings: dict[str, Any],
    rounds: int = 400,
    early_stopping: int = 40,
) -> tuple[str, int]:
    """The file model's LightGBM text and its rounds: one query per instance, its files as items."""
    names = file_feature_names()
    stacked = _stack(train, names, _file_rows)
    stacked_dev = _stack(dev, names, _file_rows) if dev else None
    text, best, _ = _fit(stacked, stacked_dev, names, {**settings, **FIXED_PARAMS}, rounds, early_stopping)
    return text, best
