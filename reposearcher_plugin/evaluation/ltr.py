"""Training data for the learned ranker (``docs/ranker.md``): mined instances split by a hash of their id,
subsampled per repository, and turned into the ranker's input (:class:`~reposearcher_plugin.rank.Signals`)
at each instance's base commit, with the plain-BM25 ranking beside it for the comparison table.

Extraction is resumable: every instance appends one line to ``OUT/extracted.jsonl`` (and its Signals to
``OUT/signals/<id>.pkl``) as soon as it is done, and a rerun skips the ids already there.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reposearcher_plugin.evaluation.batch import in_processes, past_changes
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.evaluation.locations import Prediction
from reposearcher_plugin.evaluation.metrics import evaluate
from reposearcher_plugin.evaluation.readers import parse_prediction
from reposearcher_plugin.files import append_row, parse_jsonl, without_cut_line
from reposearcher_plugin.index import build_index
from reposearcher_plugin.index.locations import unique
from reposearcher_plugin.rank import Ranking, RetrievalLocalizer, Signals, rank_signals
from reposearcher_plugin.rank.learned import (
    FILE_AGGREGATIONS,
    FILE_MODEL_SEPARATOR,
    LearnedRanker,
    best_files,
    candidate_order,
    file_feature_names,
    file_scores,
    lightgbm_module,
)
from reposearcher_plugin.rank.training import Query, Trained, query_rows, train_booster, train_ranker
from reposearcher_plugin.workspace import Workspace

SPLITS = ("train", "dev", "test")
EXTRACTED = "extracted.jsonl"
SIGNALS_DIR = "signals"


def split_of(instance_id: str) -> str:
    """The split an instance belongs to, from its id alone, the same on every machine and run:
    digit = sha256(id) mod 10; 0-6 ``train``, 7-8 ``dev`` (model selection, early stopping,
    hyper-parameters), 9 ``test`` (held out, reported only)."""
    digit = int(hashlib.sha256(instance_id.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if digit <= 6 else "dev" if digit <= 8 else "test"


def subsample(rows: Iterable[dict[str, Any]], caps: dict[str, int], seed: int = 0) -> list[dict[str, Any]]:
    """At most ``caps[split]`` rows of each split for each repository, drawn with ``seed``; rows without
    gold are left out (nothing to learn from). Interleaved, so that a run stopped early has every
    repository and split in proportion: the first of each group, then the next, each group advancing
    as a fraction of its cap."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("gold"):
            groups.setdefault((row["repo"], split_of(row["instance_id"])), []).append(row)
    keyed: list[tuple[float, str, str, dict[str, Any]]] = []
    for (repo, split), members in groups.items():
        cap = caps.get(split, 0)
        # ordered by a seeded hash of the id: rows mined later join the draw without reshuffling it
        members = sorted(members, key=lambda row: _draw_key(seed, row["instance_id"]))[:cap]
        keyed.extend((position / cap, repo, row["instance_id"], row) for position, row in enumerate(members))
    keyed.sort(key=lambda item: item[:3])
    return [row for *_, row in keyed]


def _draw_key(seed: int, instance_id: str) -> str:
    return hashlib.sha256(f"{seed}:{instance_id}".encode()).hexdigest()


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _instance(row: dict[str, Any]) -> Instance:
    return Instance(
        instance_id=row["instance_id"],
        repo=row["repo"],
        base_commit=row["base_commit"],
        problem_statement=row["problem_statement"],
        patch=row.get("patch", ""),
    )


def finished(out_dir: Path) -> set[str]:
    """Instances already extracted into ``out_dir``; a last line cut by a killed run is cut off the file
    too (that instance is done again), so the next append starts on a line of its own."""
    path = out_dir / EXTRACTED
    if not path.exists():
        return set()
    return {row["instance_id"] for row in parse_jsonl(without_cut_line(path), str(path))}


def extract(
    rows: Sequence[dict[str, Any]],
    workspace: Workspace,
    out_dir: str | Path,
    on_done: Callable[[int, int, dict[str, Any]], None] | None = None,
    workers: int = 1,
) -> int:
    """Signals (and the plain-BM25 ranking) of every row not yet in ``out_dir``; returns how many were
    done now. An instance that fails is recorded with its error and not retried. With ``workers`` > 1
    instances are extracted in forked processes; this one alone appends to ``extracted.jsonl``."""
    out = Path(out_dir)
    (out / SIGNALS_DIR).mkdir(parents=True, exist_ok=True)
    done = finished(out)
    todo = [row for row in rows if row["instance_id"] not in done]
    jobs = [(row, workspace, out / SIGNALS_DIR) for row in todo]
    with (out / EXTRACTED).open("a", encoding="utf-8") as sink:
        count = 0

        def record(row: dict[str, Any]) -> None:
            nonlocal count
            count += 1
            append_row(sink, row)
            if on_done is not None:
                on_done(count, len(todo), row)

        if workers <= 1:
            for job in jobs:
                record(_extract_job(job))
        elif in_processes(jobs, _extract_job, record, workers):
            raise KeyboardInterrupt
    return len(todo)


def _extract_job(job: tuple[dict[str, Any], Workspace, Path]) -> dict[str, Any]:
    return _extract_one(*job)


def _extract_one(row: dict[str, Any], workspace: Workspace, signals_dir: Path) -> dict[str, Any]:
    instance = _instance(row)
    record: dict[str, Any] = {
        "instance_id": instance.instance_id,
        "repo": instance.repo,
        "split": split_of(instance.instance_id),
        "gold": list(row["gold"]),
    }
    started = time.perf_counter()
    try:
        with workspace.hold(instance.repo, instance.base_commit, allow_missing=True) as root:
            index = build_index(root, workers=1)
            record["index_s"] = round(time.perf_counter() - started, 3)
            began = time.perf_counter()
            localizer = RetrievalLocalizer(index, history=past_changes(workspace, instance))
            signals = localizer.signals(instance.problem_statement)
            record["signals_s"] = round(time.perf_counter() - began, 3)
            plain = RetrievalLocalizer(index, localizer.tools, plain=True).rank(instance.problem_statement)
            record["bm25"] = {"files": plain.files, "locations": plain.locations}
        with (signals_dir / _signals_name(instance.instance_id)).open("wb") as handle:
            pickle.dump(signals, handle, protocol=pickle.HIGHEST_PROTOCOL)
        record["candidates"] = len(signals.ids)
        record["gold_in_candidates"] = len(set(signals.ids) & set(row["gold"]))
    except Exception as error:  # recorded and skipped, like `reposearcher run`
        record["error"] = f"{type(error).__name__}: {error}"
    record["total_s"] = round(time.perf_counter() - started, 3)
    return record


def _signals_name(instance_id: str) -> str:
    return instance_id.replace("/", "__") + ".pkl"


@dataclass
class Example:
    """One extracted instance: its Signals, its gold and the plain-BM25 ranking of the same index."""

    instance_id: str
    repo: str
    split: str
    gold: list[str]
    signals: Signals
    bm25: Ranking


def load_examples(out_dir: str | Path) -> Iterator[Example]:
    """The extracted instances that did not fail, in extraction order."""
    out = Path(out_dir)
    for line in (out / EXTRACTED).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "error" in record:
            continue
        path = out / SIGNALS_DIR / _signals_name(record["instance_id"])
        if not path.exists():
            continue
        with path.open("rb") as handle:
            signals = pickle.load(handle)
        yield Example(
            instance_id=record["instance_id"],
            repo=record["repo"],
            split=record["split"],
            gold=record["gold"],
            signals=signals,
            bm25=Ranking(files=record["bm25"]["files"], locations=record["bm25"]["locations"], evidence={}),
        )


def prediction_of(instance_id: str, ranking: Ranking) -> Prediction:
    """A ranking as the evaluator reads it: the row ``reposearcher run`` writes, read as ``eval loc`` does."""
    row = {
        "instance_id": instance_id,
        "found_files": ranking.files,
        "locations": [location for location in ranking.locations if "::" in location],
    }
    return parse_prediction(row)[0]


SUMMARY_METRICS = ("recall@1", "recall@5", "recall@10", "acc@5", "mrr", "ndcg@5", "ndcg@10")


def score_rankings(
    rankings: dict[str, Ranking], gold: dict[str, list[str]]
) -> dict[str, dict[str, float | None]]:
    """Strict-protocol percentages per level for ``rankings`` (instance id -> Ranking) against ``gold``."""
    predictions = {
        instance_id: prediction_of(instance_id, ranking) for instance_id, ranking in rankings.items()
    }
    scores = evaluate(predictions, gold, "strict", SUMMARY_METRICS)
    table = scores.percentages()
    for level, level_scores in scores.levels.items():
        table[level]["n"] = level_scores.n
    return table


# The hyper-parameters tried, each chosen by cross-validation over train and dev (function Recall@5,
# then MRR): a small grid, since a few hundred training queries support little more.
GRID: tuple[dict[str, Any], ...] = (
    {"num_leaves": 7, "min_data_in_leaf": 50},
    {"num_leaves": 15, "min_data_in_leaf": 50},
    {"num_leaves": 31, "min_data_in_leaf": 100},
    {"num_leaves": 15, "min_data_in_leaf": 200, "learning_rate": 0.1},
    # conservative: small trees, slow and strongly regularized, so that the model stays near the rules'
    # scores (one of its features) unless the data insist
    {"num_leaves": 3, "min_data_in_leaf": 100, "learning_rate": 0.02, "lambda_l2": 10.0},
    {"num_leaves": 7, "min_data_in_leaf": 200, "learning_rate": 0.02, "lambda_l2": 10.0},
)
FOLDS = 5
# The round counts cross-validation compares (those below --rounds, and --rounds itself): one booster
# per grid point and fold is trained for the most rounds and read at each count.
CHECKPOINTS = (25, 50, 100, 150, 200, 300, 400)


def fold_of(instance_id: str, folds: int) -> int:
    """The cross-validation fold of an instance, from its id alone (independent of :func:`split_of`)."""
    return int(hashlib.sha256(f"cv:{instance_id}".encode()).hexdigest(), 16) % folds


@dataclass
class Selection:
    """The chosen model and what choosing it measured."""

    trained: Trained
    params: dict[str, Any]
    tried: list[dict[str, Any]]  # per grid point, rounds and file aggregation: its cross-validated scores
    tables: dict[
        str, dict[str, dict[str, dict[str, float | None]]]
    ]  # "cv"/"test" -> system -> level -> metric
    learned_wins: (
        bool  # cross-validated: function Recall@5 and MRR above the rules, file Recall@5 within a point
    )
    folds: int = FOLDS
    pooled: int = 0  # train+dev instances cross-validated


def _queries(examples: Sequence[Example]) -> list[Query]:
    return [Query(example.signals, frozenset(example.gold)) for example in examples]


def _key(table: dict[str, dict[str, float | None]], level: str = "function") -> tuple[float, float]:
    scores = table[level]
    return (scores["recall@5"] or 0.0, scores["mrr"] or 0.0)


class _CrossValidation:
    """Train+dev instances in folds; boosters trained on all folds but one and read on the one left out,
    at several round counts. Each held-out instance is ranked exactly as :class:`LearnedRanker` ranks.
    Every instance's feature rows are computed once (they are most of the cost otherwise); with
    ``workers`` > 1 the folds train in forked processes, each single-threaded as ever, so the boosters
    are the same as one process trains."""

    def __init__(self, pool: Sequence[Example], folds: int, rounds: int, workers: int = 1) -> None:
        self.pool = list(pool)
        self.folds = folds
        self.rounds = rounds
        self.workers = workers
        self.fold = [fold_of(e.instance_id, folds) for e in self.pool]
        self.held = [[e for e, f in zip(self.pool, self.fold, strict=True) if f == k] for k in range(folds)]
        self.gold = {e.instance_id: e.gold for e in self.pool}
        self.rows = [query_rows(Query(e.signals, frozenset(e.gold))) for e in self.pool]
        self.matrices = {e.instance_id: rows[0] for e, rows in zip(self.pool, self.rows, strict=True)}
        self.file_rows: list[tuple[np.ndarray, np.ndarray]] = []

    def boosters(self, params: dict[str, Any], files: bool = False) -> list[Any]:
        if files and not self.file_rows:
            self.file_rows = [query_rows(Query(e.signals, frozenset(e.gold)), files=True) for e in self.pool]
        job = (self, params, files)
        if self.workers <= 1 or self.folds == 1:
            texts = [_train_fold(job, fold) for fold in range(self.folds)]
        else:
            global _JOB
            _JOB = job  # the forked workers read it; nothing is pickled but the fold number
            try:
                context = multiprocessing.get_context("fork")
                with context.Pool(min(self.workers, self.folds)) as workers:
                    texts = workers.map(_train_fold_of_job, range(self.folds))
            finally:
                _JOB = None
        lightgbm = lightgbm_module()
        return [lightgbm.Booster(model_str=text) for text in texts]

    def rankings(
        self,
        boosters: Sequence[Any],
        rounds: int,
        aggregation: str = "max",
        file_boosters: Sequence[Any] = (),
        file_rounds: int | None = None,
    ) -> dict[str, Ranking]:
        rankings: dict[str, Ranking] = {}
        for fold, held in enumerate(self.held):
            for example in held:
                signals = example.signals
                if not signals.ids:
                    rankings[example.instance_id] = Ranking(files=[], locations=[], evidence={})
                    continue
                scores = np.asarray(
                    boosters[fold].predict(
                        self.matrices[example.instance_id], num_iteration=rounds, num_threads=1
                    ),
                    dtype=float,
                )
                files = file_scores(
                    signals,
                    scores,
                    aggregation,
                    file_boosters[fold] if file_boosters else None,
                    file_feature_names(),
                    file_rounds,
                )
                locations = unique(signals.ids[i] for i in candidate_order(signals, scores))[:50]
                rankings[example.instance_id] = Ranking(
                    files=best_files(files), locations=locations, evidence={}
                )
        return rankings

    def score(self, rankings: dict[str, Ranking]) -> dict[str, dict[str, float | None]]:
        return score_rankings(rankings, self.gold)


_JOB: tuple[_CrossValidation, dict[str, Any], bool] | None = None


def _train_fold(job: tuple[_CrossValidation, dict[str, Any], bool], fold: int) -> str:
    cv, params, files = job
    rows = cv.file_rows if files else cv.rows
    training = [row for row, k in zip(rows, cv.fold, strict=True) if k != fold]
    try:
        booster = train_booster(training, params=params, rounds=cv.rounds, files=files)
    except ValueError as error:
        raise ValueError(f"cross-validation fold {fold + 1} of {cv.folds}: {error}") from None
    return booster.model_to_string()


def _train_fold_of_job(fold: int) -> str:
    assert _JOB is not None
    return _train_fold(_JOB, fold)


def _compared(
    examples: Sequence[Example], learned: dict[str, Ranking]
) -> dict[str, dict[str, dict[str, float | None]]]:
    """The learned rankings of ``examples``, the rules' and plain BM25's, each scored against their gold."""
    gold = {e.instance_id: e.gold for e in examples}
    return {
        "learned": score_rankings(learned, gold),
        "rules": score_rankings({e.instance_id: rank_signals(e.signals) for e in examples}, gold),
        "bm25": score_rankings({e.instance_id: e.bm25 for e in examples}, gold),
    }


def train_and_select(
    examples: Sequence[Example],
    *,
    name: str,
    version: int = 1,
    grid: Sequence[dict[str, Any]] = GRID,
    rounds: int = 400,
    folds: int = FOLDS,
    workers: int = 1,
    header: dict[str, Any] | None = None,
    on_trained: Callable[[dict[str, Any]], None] | None = None,
) -> Selection:
    """Choose the grid point, the rounds and the file ranking by ``folds``-fold cross-validation over the
    train and dev splits together, retrain the choice on all of them, and score the chosen model, the
    rules and plain BM25 on the pooled held-out folds and on test (reported, never used to choose).

    Why not one dev split: with a few hundred mined queries, early stopping on ~100 dev queries stopped
    after 4-25 rounds and the dev verdict reversed on test (``eval/results/ltr_cv.md``)."""
    pool = [example for example in examples if example.split in ("train", "dev")]
    test = [example for example in examples if example.split == "test"]
    usable = sum(1 for example in pool if set(example.gold) & set(example.signals.ids))
    if usable < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs at least {folds} train+dev instances with a gold "
            f"location among their candidates; there are {usable}"
        )
    checkpoints = sorted({count for count in CHECKPOINTS if count < rounds} | {rounds})
    cv = _CrossValidation(pool, folds, rounds, workers)
    tried: list[dict[str, Any]] = []

    def note(params: dict[str, Any], aggregation: str, counts: int, table: dict[str, Any]) -> None:
        point = {"params": params, "file_aggregation": aggregation, "rounds": counts, "cv": table}
        tried.append(point)
        if on_trained is not None:
            on_trained(point)

    # the entity model: the grid point and rounds with the best function Recall@5 (then MRR); ties keep
    # the earlier grid point and the fewer rounds
    best: tuple[tuple[float, float], dict[str, Any], int, list[Any]] | None = None
    for params in grid:
        boosters = cv.boosters(params)
        for count in checkpoints:
            table = cv.score(cv.rankings(boosters, count))
            note(params, "max", count, table)
            if best is None or _key(table) > best[0]:
                best = (_key(table), params, count, boosters)
    assert best is not None
    _, chosen, chosen_rounds, boosters = best
    # the files: the best candidate, a soft maximum, the rules or a file model (with its own rounds), by
    # file Recall@5 (then MRR); the entity ranking is the same for all
    options: list[tuple[str, int | None, dict[str, Ranking]]] = [
        (aggregation, None, cv.rankings(boosters, chosen_rounds, aggregation))
        for aggregation in FILE_AGGREGATIONS
        if aggregation != "model"
    ]
    file_boosters = cv.boosters(chosen, files=True)
    options += [
        (
            "model",
            count,
            cv.rankings(boosters, chosen_rounds, "model", file_boosters=file_boosters, file_rounds=count),
        )
        for count in checkpoints
    ]
    best_files_choice: tuple[tuple[float, float], str, int | None, dict[str, Ranking]] | None = None
    for aggregation, count, rankings in options:
        table = cv.score(rankings)
        note(chosen, aggregation, count if count is not None else chosen_rounds, table)
        key = _key(table, "file")
        if best_files_choice is None or key > best_files_choice[0]:
            best_files_choice = (key, aggregation, count, rankings)
    assert best_files_choice is not None
    _, aggregation, file_rounds, cv_rankings = best_files_choice
    final = train_ranker(
        _queries(pool),
        (),
        params=chosen,
        rounds=chosen_rounds,
        name=name,
        version=version,
        file_aggregation=aggregation,
        file_rounds=file_rounds,
        header={**(header or {}), "selection": f"{folds}-fold cross-validation over train+dev"},
    )
    model = LearnedRanker.from_text(final.text)
    tables = {"cv": _compared(pool, cv_rankings)}
    if test:
        tables["test"] = _compared(test, {e.instance_id: model.rank(e.signals) for e in test})
    learned, rules = tables["cv"]["learned"], tables["cv"]["rules"]
    wins = (
        (learned["function"]["recall@5"] or 0.0) > (rules["function"]["recall@5"] or 0.0)
        and (learned["function"]["mrr"] or 0.0) > (rules["function"]["mrr"] or 0.0)
        and (learned["file"]["recall@5"] or 0.0) >= (rules["file"]["recall@5"] or 0.0) - 1.0
    )
    params = {**chosen, "file_aggregation": aggregation}
    if file_rounds is not None:
        params["file_rounds"] = file_rounds
    return Selection(
        trained=final,
        params=params,
        tried=tried,
        tables=tables,
        learned_wins=wins,
        folds=folds,
        pooled=len(pool),
    )


def importances(text: str, top: int = 15) -> list[tuple[str, float]]:
    """The model's features by total gain, largest first, as shares of the total."""
    model = LearnedRanker.from_text(text)  # checks the file; the gains are lightgbm's own reading
    entity_text = text.partition("\n")[2].partition(FILE_MODEL_SEPARATOR)[0]
    gains = lightgbm_module().Booster(model_str=entity_text).feature_importance(importance_type="gain")
    total = float(gains.sum()) or 1.0
    ranked = sorted(zip(model.features, gains, strict=True), key=lambda item: -item[1])
    return [(feature, float(gain) / total) for feature, gain in ranked[:top]]
