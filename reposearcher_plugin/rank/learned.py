"""The learned second stage: a LightGBM LambdaMART model scores each candidate of :class:`Signals` in
place of the hand-set weighted sum (``docs/ranker.md``).

A model file is one JSON header line and LightGBM's text model after it::

    # reposearcher-ranker {"format": 1, "name": "retrieval-ltr", "version": 1, "features": [...], ...}
    tree
    version=v4
    ...

The header names the model, the feature columns in the order the model reads them, how files are
ranked, and the sha256 of the LightGBM text, so a damaged or foreign file is refused with a clear error
instead of ranking with garbage. Features are computed by name (:func:`feature_matrix`), so a model keeps
loading when later versions add features it does not use; a model that needs a feature this version
cannot compute is refused.

One module, though a little over 400 lines: the feature columns, the file format and the ranking are
tied together by the header's feature list, and each is checked against the others at load.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from reposearcher_plugin.index import CLASS, DOCS, TEST, path_role
from reposearcher_plugin.index.locations import unique
from reposearcher_plugin.rank.scoring import (
    DEFAULT_WEIGHTS,
    EVIDENCE_TOP,
    FEATURES,
    Ranking,
    Signals,
    Weights,
    score_signals,
)
from reposearcher_plugin.rank.trees import TreeModel, TreeModelError

HEADER_PREFIX = "# reposearcher-ranker "
FORMAT = 1  # of the file: bump when the header or the meaning of a feature name changes
MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_LEARNED_MODEL = "retrieval-ltr"
# How files are ranked: by their best candidate's score, by a soft maximum of their candidates' scores,
# by a second model over file-level features (file_feature_names) that the file holds after the first,
# or as the hand-set rules rank them (the learned model then orders the definitions only).
FILE_AGGREGATIONS = ("max", "logsumexp", "model", "rules")
FILE_MODEL_SEPARATOR = "\n# reposearcher-ranker files\n"

_EXCEPTION = re.compile(r"(?:Error|Exception|Warning)$")

# Columns computed from a candidate's place rather than from the issue: its kind, path role, file and
# what the hand-set rules make of it (the model can then learn corrections to the rules rather than
# relearn them from 300 instances).
STRUCTURAL_FEATURES = (
    "is_class",
    "is_exception",
    "is_test",
    "is_docs",
    "depth",
    "file_import",
    "file_best_bm25",
    "file_candidates",
    "rules_score",
    "rules_rank",
    "rules_file_score",
    "rules_file_rank",
    "file_history",
)


def file_feature_names() -> tuple[str, ...]:
    """The file model's columns: the best value of each candidate feature among the file's definitions,
    the rules' file score and rank, the file-level evidence and the file's kind."""
    return (
        *(f"best_{name}" for name in FEATURES),
        "rules_file_score",
        "rules_file_rank",
        "mention",
        "import",
        "module_name",
        "history",
        "candidates",
        "is_test",
        "is_docs",
    )


def file_feature_matrix(
    signals: Signals, names: Sequence[str], weights: Weights = DEFAULT_WEIGHTS
) -> tuple[list[str], np.ndarray]:
    """The files a ranking can name (every candidate's file and every file with file-level evidence),
    sorted, and one row of ``names`` per file."""
    paths = sorted(set(signals.files) | set(signals.file_features))
    row_of = {path: row for row, path in enumerate(paths)}
    _, rules_files = score_signals(signals, weights)
    order = sorted(rules_files, key=lambda path: (-rules_files[path], path))
    rank = {path: position for position, path in enumerate(order)}
    top = max(max(rules_files.values(), default=0.0), 1e-9)
    columns: dict[str, np.ndarray] = {}
    rows = np.array([row_of[path] for path in signals.files], dtype=int)
    for name in FEATURES:
        best = np.zeros(len(paths))
        if len(rows):
            np.maximum.at(best, rows, signals.features[name])
        columns[f"best_{name}"] = best
    counts = np.zeros(len(paths))
    if len(rows):
        np.add.at(counts, rows, 1.0)
    roles = [path_role(path) for path in paths]
    columns.update(
        {
            "rules_file_score": np.array([rules_files.get(path, 0.0) / top for path in paths]),
            "rules_file_rank": np.array([1.0 / (1.0 + rank.get(path, len(paths))) for path in paths]),
            "mention": np.array([signals.file_features.get(path, {}).get("mention", 0.0) for path in paths]),
            "import": np.array([signals.file_features.get(path, {}).get("import", 0.0) for path in paths]),
            "module_name": np.array(
                [signals.file_features.get(path, {}).get("module_name", 0.0) for path in paths]
            ),
            "history": np.array([signals.file_features.get(path, {}).get("history", 0.0) for path in paths]),
            "candidates": np.log1p(counts),
            "is_test": np.array([role == TEST for role in roles], dtype=float),
            "is_docs": np.array([role == DOCS for role in roles], dtype=float),
        }
    )
    matrix = np.zeros((len(paths), len(names)))
    for column, name in enumerate(names):
        if name not in columns:
            raise RankerModelError(
                f"the file model needs the feature {name!r}, which this version does not compute"
            )
        matrix[:, column] = columns[name]
    return paths, matrix


class RankerModelError(ValueError):
    """A model file that cannot be used: missing, damaged, of another format, or needing features this
    version does not compute."""


def feature_names() -> tuple[str, ...]:
    """Every feature this version computes, in the order a newly trained model reads them."""
    return (*FEATURES, *STRUCTURAL_FEATURES)


def feature_matrix(signals: Signals, names: Sequence[str], weights: Weights = DEFAULT_WEIGHTS) -> np.ndarray:
    """One row per candidate of ``signals``, one column per name in ``names``."""
    n = len(signals.ids)
    columns = _structural_columns(signals, weights) if n else {}
    matrix = np.zeros((n, len(names)))
    for column, name in enumerate(names):
        if name in signals.features:
            matrix[:, column] = signals.features[name]
        elif name in columns:
            matrix[:, column] = columns[name]
        elif name not in STRUCTURAL_FEATURES:
            raise RankerModelError(
                f"the model needs the feature {name!r}, which this version does not compute"
            )
    return matrix


def _structural_columns(signals: Signals, weights: Weights) -> dict[str, np.ndarray]:
    is_class = np.array([kind == CLASS for kind in signals.kinds], dtype=float)
    rules, rules_files = score_signals(signals, weights)
    bm25 = signals.features["bm25"]
    best_bm25: dict[str, float] = {}
    counts: dict[str, int] = {}
    for path, value in zip(signals.files, bm25, strict=True):
        best_bm25[path] = max(best_bm25.get(path, 0.0), float(value))
        counts[path] = counts.get(path, 0) + 1
    file_order = sorted(rules_files, key=lambda path: (-rules_files[path], path))
    file_rank = {path: rank for rank, path in enumerate(file_order)}
    entity_rank = np.empty(len(rules))
    entity_rank[np.lexsort((np.array(signals.ids), -rules))] = np.arange(len(rules))
    top = max(float(rules.max()), 1e-9)
    top_file = max(max(rules_files.values(), default=0.0), 1e-9)
    return {
        "is_class": is_class,
        "is_exception": np.array(
            [
                kind == CLASS and bool(_EXCEPTION.search(entity))
                for entity, kind in zip(signals.ids, signals.kinds, strict=True)
            ],
            dtype=float,
        ),
        "is_test": np.array([role == TEST for role in signals.roles], dtype=float),
        "is_docs": np.array([role == DOCS for role in signals.roles], dtype=float),
        "depth": np.array([entity.split("::", 1)[-1].count(".") for entity in signals.ids], dtype=float),
        "file_import": np.array(
            [signals.file_features.get(path, {}).get("import", 0.0) for path in signals.files], dtype=float
        ),
        "file_best_bm25": np.array([best_bm25[path] for path in signals.files]),
        "file_candidates": np.log1p(np.array([counts[path] for path in signals.files], dtype=float)),
        "rules_score": rules / top,
        "rules_rank": 1.0 / (1.0 + entity_rank),
        "rules_file_score": np.array([rules_files[path] / top_file for path in signals.files]),
        "rules_file_rank": np.array([1.0 / (1.0 + file_rank[path]) for path in signals.files]),
        "file_history": np.array(
            [signals.file_features.get(path, {}).get("history", 0.0) for path in signals.files], dtype=float
        ),
    }


@dataclass
class LearnedRanker:
    """A loaded model: scores candidates, ranks them and explains the ranking."""

    name: str
    version: int
    features: tuple[str, ...]
    booster: TreeModel  # the entity model (rank/trees.py; predicts as lightgbm.Booster does)
    file_aggregation: str = "max"
    header: dict[str, Any] = field(default_factory=dict)
    file_booster: TreeModel | None = None  # the file model, when file_aggregation is "model"
    file_features: tuple[str, ...] = ()
    rules: Weights = DEFAULT_WEIGHTS  # the hand-set weights its rules_* columns were trained with

    @classmethod
    def from_text(cls, text: str, source: str = "model") -> LearnedRanker:
        first, _, body = text.partition("\n")
        if not first.startswith(HEADER_PREFIX):
            raise RankerModelError(
                f"{source}: not a RepoSearcher ranker model (no '{HEADER_PREFIX.strip()}' header)"
            )
        try:
            header = json.loads(first[len(HEADER_PREFIX) :])
        except ValueError as error:
            raise RankerModelError(f"{source}: damaged header ({error})") from None
        if not isinstance(header, dict):
            raise RankerModelError(f"{source}: damaged header (not a JSON object)")
        if header.get("format") != FORMAT:
            raise RankerModelError(
                f"{source}: model file format {header.get('format')!r}, this version reads format {FORMAT}; "
                "retrain it with `reposearcher ranker train`"
            )
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        if header.get("sha256") != digest:
            raise RankerModelError(f"{source}: damaged (the model's sha256 does not match its header)")
        features = header.get("features")
        if not isinstance(features, list) or not all(isinstance(name, str) for name in features):
            raise RankerModelError(f"{source}: damaged header (no feature list)")
        missing = [name for name in features if name not in feature_names()]
        if missing:
            raise RankerModelError(
                f"{source}: the model needs features this version does not compute: {', '.join(missing)}; "
                "retrain it with `reposearcher ranker train`"
            )
        aggregation = header.get("file_aggregation", "max")
        if aggregation not in FILE_AGGREGATIONS:
            raise RankerModelError(f"{source}: unknown file aggregation {aggregation!r}")
        entity_text, _, file_text = body.partition(FILE_MODEL_SEPARATOR)
        booster = _booster(entity_text, len(features), source)
        file_booster = None
        file_features: tuple[str, ...] = ()
        if aggregation == "model":
            file_features = tuple(header.get("file_features") or ())
            unknown = [name for name in file_features if name not in file_feature_names()]
            if unknown:
                raise RankerModelError(
                    f"{source}: the file model needs features this version does not compute: "
                    f"{', '.join(unknown)}; retrain it with `reposearcher ranker train`"
                )
            if not file_text:
                raise RankerModelError(
                    f"{source}: damaged (the header names a file model, the file has none)"
                )
            file_booster = _booster(file_text, len(file_features), source)
        try:
            rules = rules_weights(header.get("rules_weights"))
        except (TypeError, ValueError) as error:
            raise RankerModelError(f"{source}: damaged header ({error})") from None
        return cls(
            rules=rules,
            name=str(header.get("name", "ranker")),
            version=int(header.get("version", 0)),
            features=tuple(features),
            booster=booster,
            file_aggregation=aggregation,
            header=header,
            file_booster=file_booster,
            file_features=file_features,
        )

    @classmethod
    def load(cls, path: str | Path) -> LearnedRanker:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RankerModelError(f"no ranker model at {path.name}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise RankerModelError(f"{path.name}: cannot be read ({error})") from None
        return cls.from_text(text, source=path.name)

    def matrix(self, signals: Signals) -> np.ndarray:
        return feature_matrix(signals, self.features, self.rules)

    def score(self, signals: Signals) -> np.ndarray:
        """The model's raw score per candidate, aligned with ``signals.ids``."""
        if not signals.ids:
            return np.zeros(0)
        return np.asarray(self.booster.predict(self.matrix(signals), num_threads=1), dtype=float)

    def contributions(self, signals: Signals) -> np.ndarray:
        """Per candidate, each feature's contribution (SHAP values) and, last, the expected value: a row
        sums to the candidate's score."""
        if not signals.ids:
            return np.zeros((0, len(self.features) + 1))
        return np.asarray(
            self.booster.predict(self.matrix(signals), pred_contrib=True, num_threads=1), dtype=float
        )

    def file_scores(self, signals: Signals, scores: np.ndarray) -> dict[str, float]:
        return file_scores(
            signals, scores, self.file_aggregation, self.file_booster, self.file_features, weights=self.rules
        )

    def rank(self, signals: Signals, max_files: int = 10, max_locations: int = 50) -> Ranking:
        if not signals.ids:
            evidence = {**signals.evidence, "model": self.describe(), "top": []}
            return Ranking(files=[], locations=[], evidence=evidence)
        matrix = self.matrix(signals)
        scores = np.asarray(self.booster.predict(matrix, num_threads=1), dtype=float)
        order = candidate_order(signals, scores)
        locations = unique(signals.ids[i] for i in order)[:max_locations]
        files = best_files(self.file_scores(signals, scores), max_files)
        top = order[:EVIDENCE_TOP]
        contributions = np.asarray(
            self.booster.predict(matrix[top], pred_contrib=True, num_threads=1), dtype=float
        )
        evidence = dict(signals.evidence)
        evidence["model"] = self.describe()
        evidence["expected_value"] = round(float(contributions[0, -1]), 4) if len(top) else 0.0
        evidence["top"] = [
            {
                "id": signals.ids[i],
                "score": round(float(scores[i]), 4),
                "features": {
                    name: round(float(matrix[i, column]), 3)
                    for column, name in enumerate(self.features)
                    if matrix[i, column]
                },
                "contributions": {
                    name: round(float(contributions[row, column]), 4)
                    for column, name in enumerate(self.features)
                    if abs(contributions[row, column]) >= 5e-5
                },
            }
            for row, i in enumerate(top)
        ]
        return Ranking(files=files, locations=locations, evidence=evidence)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.header.get("sha256", "")[:12]}


@cache
def lightgbm_module() -> Any:
    """lightgbm, its OpenMP threads capped at one for this process: ranking one issue is a few hundred
    rows, and on a busy machine idle OpenMP workers spinning for cores made loading a model take 300 ms
    instead of 1 (eval/results/ltr_training.md). Every model here is used with one thread anyway."""
    import ctypes

    import lightgbm
    from lightgbm.basic import _LIB, _safe_call

    if hasattr(_LIB, "LGBM_SetMaxThreads"):
        _safe_call(_LIB.LGBM_SetMaxThreads(ctypes.c_int(1)))
    return lightgbm


def _booster(text: str, feature_count: int, source: str) -> TreeModel:
    """A model's trees, read with numpy (rank/trees.py): inference never imports lightgbm."""
    try:
        booster = TreeModel.from_text(text)
    except TreeModelError as error:
        raise RankerModelError(f"{source}: damaged LightGBM model ({error})") from None
    if booster.num_feature() != feature_count:
        raise RankerModelError(
            f"{source}: damaged (the model reads {booster.num_feature()} features, its header lists "
            f"{feature_count})"
        )
    return booster


def candidate_order(signals: Signals, scores: np.ndarray) -> list[int]:
    """Candidate positions, best score first; ties by id, so that a ranking never depends on row order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], signals.ids[i]))


def best_files(scores: dict[str, float], max_files: int = 10) -> list[str]:
    return sorted(scores, key=lambda path: (-scores[path], path))[:max_files]


def rules_weights(stored: Any) -> Weights:
    """The hand-set weights a model's ``rules_*`` columns were computed with, from its header: a model
    sees the rules it was trained on even after the defaults move. A weight the header lacks is 0 (it is
    newer than the model); models from before headers kept them (v3) were trained with today's defaults
    less ``past_edits``, the one weight added since."""
    if stored is None:
        return replace(DEFAULT_WEIGHTS, past_edits=0.0)
    if not isinstance(stored, dict):
        raise TypeError("rules_weights is not an object")
    known = {item.name: item.type for item in fields(Weights)}
    unknown = sorted(set(stored) - set(known))
    if unknown:
        raise ValueError(f"unknown rules weights {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, kind in known.items():
        value = stored.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"rules weight {name} is not a number")
        values[name] = int(value) if kind in (int, "int") else float(value)
    return Weights(**values)


def file_scores(
    signals: Signals,
    scores: np.ndarray,
    aggregation: str,
    file_booster: Any = None,
    file_features: Sequence[str] = (),
    file_rounds: int | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
) -> dict[str, float]:
    """Each file's score under ``aggregation`` (``FILE_AGGREGATIONS``) from its candidates' ``scores``;
    ``"model"`` asks ``file_booster`` (its first ``file_rounds`` trees, all when None). ``weights``: the
    rules the model's rules columns were trained with."""
    if aggregation == "rules":
        return {path: value for path, value in score_signals(signals, weights)[1].items() if value > 0}
    if aggregation != "model":
        return aggregate_files(signals.files, scores, aggregation)
    paths, matrix = file_feature_matrix(signals, file_features, weights)
    if not paths:
        return {}
    values = np.asarray(file_booster.predict(matrix, num_iteration=file_rounds, num_threads=1), dtype=float)
    return dict(zip(paths, (float(value) for value in values), strict=True))


def aggregate_files(files: Sequence[str], scores: np.ndarray, aggregation: str) -> dict[str, float]:
    """A file's score from its candidates' scores: the best (``max``) or a soft maximum that rewards
    several good candidates (``logsumexp``)."""
    by_file: dict[str, list[float]] = {}
    for path, value in zip(files, scores, strict=True):
        by_file.setdefault(path, []).append(float(value))
    if aggregation != "logsumexp":
        return {path: max(values) for path, values in by_file.items()}
    result: dict[str, float] = {}
    for path, values in by_file.items():
        top = max(values)
        result[path] = top + math.log(sum(math.exp(value - top) for value in values))
    return result


def model_text(booster_text: str, header: dict[str, Any], file_booster_text: str = "") -> str:
    """A model file's text: the header (with the sha256 of what follows it), the LightGBM text of the
    entity model and, when there is one, the file model's after a separator line."""
    if file_booster_text:
        booster_text = booster_text + FILE_MODEL_SEPARATOR + file_booster_text
    header = {"format": FORMAT, **header, "sha256": hashlib.sha256(booster_text.encode("utf-8")).hexdigest()}
    return HEADER_PREFIX + json.dumps(header, sort_keys=True) + "\n" + booster_text


def rewrite_header(text: str, changes: dict[str, Any]) -> str:
    """A model file's text with ``changes`` made to its header (the models themselves unchanged)."""
    first, _, body = text.partition("\n")
    header = json.loads(first[len(HEADER_PREFIX) :])
    return model_text(body, {**header, **changes})


def packaged_model_path(name: str = DEFAULT_LEARNED_MODEL) -> Path:
    """The newest version of ``name`` shipped in the package (``models/<name>-v<N>.txt``)."""
    versions = {
        int(match.group(1)): path
        for path in MODELS_DIR.glob(f"{name}-v*.txt")
        if (match := re.fullmatch(re.escape(name) + r"-v(\d+)\.txt", path.name))
    }
    if not versions:
        raise RankerModelError(f"no packaged ranker model named {name!r} in {MODELS_DIR}")
    return versions[max(versions)]


@cache
def packaged_ranker(name: str = DEFAULT_LEARNED_MODEL) -> LearnedRanker:
    """The model shipped in the package, loaded once per process."""
    return LearnedRanker.load(packaged_model_path(name))
