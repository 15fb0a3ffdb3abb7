"""Localization metrics at three levels, under three protocols.

Levels: ``file`` (paths), ``module`` (a class or top-level function: for ``path::A.b.c`` the module is
``path::A``) and ``function`` (the full entity id, classes included, since gold lists ``path::C`` when
a class body changes). A file-only id has no module and no function.

Every metric is first computed per instance as a fraction in [0, 1]; a system's score is the mean over
the instances that a level scores, in percent. The per-instance values are kept so that the report can
bootstrap confidence intervals by resampling instances.

Protocol ``strict`` (the default)
---------------------------------
- Items are file-qualified ids, so ``save`` in one file never matches ``save`` in another.
- Gold per level: files = the path of every gold item; modules = the module of every gold entity;
  functions = every gold entity id. Each is a set.
- Rankings: the prediction's files / modules / functions, repeats dropped keeping the first, uncut.
- Instances: every instance of the gold set that has gold at the level. An instance without a
  prediction scores zero (and counts as empty). An instance whose gold names no entity (the patch only
  touches module-level code: 7 of the 300 SWE-bench Lite instances) is not scored at module and
  function level, since there is nothing to find there and any score would be arbitrary; each level
  reports how many instances it scored.
- ``acc@k``: 1 when every gold item is in the top k. ``recall@k``: gold items in the top k / gold
  items. ``precision@k``: gold items in the top k / k. ``map``: average precision over the whole
  ranking (the sum of the precision at each hit, over the number of gold items). ``mrr``: 1 / rank of
  the first hit. ``ndcg@k``: binary gains, DCG = sum of 1 / log2(rank + 1) over hits in the top k,
  divided by the DCG of min(gold items, k) hits at the top. ``empty``: 1 when the ranking is empty.
  k is 1, 3, 5 and 10.

Protocol ``tooltrain``: the ToolTrain paper's evaluation, quirks included
------------------------------------------------------------------------
Derived from ``evaluation/FLEval.py`` of the paper's repository (RepoDeepSearch). Its
``scripts/eval_loc.sh`` names ``FLEvalNew.py``, which that repository does not contain; the arguments it
passes (``--dataset verified --loc_file``) are FLEval.py's, and the only FLEvalNew.py published (CoSIL's)
computes neither recall nor nDCG, which the paper reports. FLEval.py is therefore the reference.

- Gold: each item is split on ``::``. ``file::name`` gives a gold file and a gold *name* (the qualified
  name without its file: ``Class.method``, ``func`` or ``Class``); a bare ``file`` gives a gold file;
  an item with two or more ``::`` is ignored altogether. Files and names are sets, so one name gold in
  two files is a single gold name.
- Files: the prediction's files exactly as written (read with ``clean_paths=False``: ``./a.py`` does
  not match ``a.py``, as in the script; on SWE-bench Lite this decides one OrcaLoca-14B instance),
  repeats dropped keeping the first, then the first 5.
- Names: the prediction's entities with their file removed, in written order, repeats dropped
  keeping the first, then the first 5. For Agentless-style outputs that order is the ``function:`` /
  ``class:`` lines of ``found_related_locs`` in its dict order, over every file it lists: not only the
  5 kept files, and not only files in ``found_files``. A predicted ``Foo.save`` matches a gold
  ``Foo.save`` in any file.
- An instance with no prediction, or whose prediction has no files, scores zero at both levels, even
  when it names entities.
- Every instance of the gold set counts at every level, and every sum is divided by their number:
  an instance whose gold names no entity scores zero at function level.
- ``acc@k`` (the script's "TOP k"): 1 when ANY gold item is in the top k (a hit, not all of them).
  ``recall@k``: hits in the top k / distinct gold items. ``map``: the sum of the precision at each hit
  within the 5 kept, over the number of gold items. ``mrr``: 1 / rank of the first hit within the 5.
  ``ndcg@5``: binary gains, IDCG over min(gold items, 5). k is 1, 3 and 5; nDCG only at 5; no
  precision (the script computes none).
- ``empty``: at file level the script's own (the share of gold instances with no prediction or no
  files); at function level the share with no kept name (not in the script; descriptive only).
- Module level: none. FLEval.py scores two levels, and its function level already holds classes
  (``class: C`` lines are predictions there, and ``path::C`` gold items are gold names), so a module
  level under this protocol would be our invention rather than the paper's evaluation. Under
  ``tooltrain`` the module level is left out; ``strict`` has it.
- Differences from running the script, all on malformed outputs only: the script scores every line, so
  a duplicated line is scored twice and lines for unknown instances lower its ``empty`` count; our
  readers keep the first line per instance and report the rest. The script stops on list-form
  ``found_related_locs`` (it calls ``.items()``); we read the list as aligned with ``found_files``.
  Location lines are read leniently (``function:foo``, trailing spaces), where the script would miss
  the name. An empty ``function: `` line, which the script turns into an empty name that occupies a
  rank, is reported as unreadable and occupies none. Gold items are normalized (single-colon
  LocAgent gold becomes ``path::name``, which the script would take for a file). On the published
  SWE-bench Lite outputs none of this changes a number: every figure equals the script's.

Protocol ``locagent``: Acc@k as LocAgent and SweRank report it
--------------------------------------------------------------
Derived from ``evaluation/eval_metric.py`` of LocAgent's repository (``evaluate_results``, which its
``run_evaluation.ipynb`` calls with ``metrics=['acc']``; SweRank reports the same numbers).

- Gold: the edited functions and methods of the instance, LocAgent's ``edit_functions``
  (``path.py:Class.method``, read as ``path.py::Class.method``). Every level comes from that one list:
  files = the path of each entity, modules = ``path::First`` (the first part of the qualified name: the
  class of a method, or the function itself), functions = the entities as listed. Bare paths, which
  LocAgent's gold never holds, are left out. The gold must be LocAgent's kind (``gold_locagent.py``;
  for SWE-bench Lite an ``__init__`` edit is listed as its class there): classes that our or CoSIL's
  gold lists for class-body changes and new methods would be scored as functions
  (``eval/results/locagent_protocol.md`` derives Lite's and shows it reproduces the published row).
- Instances: those whose gold names at least one entity, at every level alike (LocAgent skips an
  instance whose gold list is empty). On SWE-bench Lite that leaves the 274 instances LocAgent and
  SweRank report: the 26 whose patch edits no existing function or method (only module-level code,
  class bodies outside methods, or new definitions) drop out.
- Rankings: ``found_files`` / ``found_modules`` / ``found_entities`` (for other formats, the files and the
  entities read as usual, modules derived from the entities in rank order), paths as written
  (``clean_paths=False``: the script compares strings), repeats dropped keeping the first.
- ``acc@k``: 1 when the top k hold min(gold items, k) gold items, that is every gold item when there are
  at most k of them, and nothing but gold items when there are more (the script compares the hits in
  the top k with the gold count capped at k). An instance without a prediction, or with an empty
  ranking at a level, scores zero there. k: the script's defaults are 1, 3 and 5 at file level and 5
  and 10 at module and function level; we compute 1, 3, 5 and 10 at every level.
- Only ``acc``: LocAgent's other metrics (its recall divides by the gold count capped at the largest
  k; its MAP divides by k) are not what the two papers report, and are left out.
- Differences from running the script, on malformed outputs only: it counts a repeated prediction at
  every rank it holds (a repeat of a gold item can make the hit count exceed the cap and the instance
  miss); our readers drop repeats first. On the published LocAgent outputs, which hold none, every
  figure equals the script's.

Over 400 lines for one job because of this docstring: the three protocols' specification (about 120
lines) stays beside the code that implements it, so a change to one is seen in the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reposearcher_plugin.evaluation.locations import Prediction, file_of, module_of, name_of, unique

LEVELS = ("file", "module", "function")
STRICT_CUTOFFS = (1, 3, 5, 10)
TOOLTRAIN_CUTOFF = 5  # the script keeps 5 files and 5 names
LOCAGENT_CUTOFFS = (1, 3, 5, 10)  # LocAgent's script: file 1, 3, 5; module and function 5, 10
RANKED_METRICS = ("acc", "recall", "precision", "ndcg")  # these take a cut-off: recall@5
WHOLE_RANKING_METRICS = ("map", "mrr", "empty")


class MetricError(ValueError):
    """An unknown protocol or metric name."""


# ---------------------------------------------------------------------------------------------------
# One ranking against one gold set. Rankings hold no repeats (the protocols drop them first).


def hits_at(ranking: Sequence[str], gold: frozenset[str], k: int) -> int:
    return sum(1 for item in ranking[:k] if item in gold)


def recall_at(ranking: Sequence[str], gold: frozenset[str], k: int) -> float:
    return hits_at(ranking, gold, k) / len(gold) if gold else 0.0


def precision_at(ranking: Sequence[str], gold: frozenset[str], k: int) -> float:
    return hits_at(ranking, gold, k) / k


def all_found_at(ranking: Sequence[str], gold: frozenset[str], k: int) -> float:
    return 1.0 if gold and gold.issubset(ranking[:k]) else 0.0


def any_found_at(ranking: Sequence[str], gold: frozenset[str], k: int) -> float:
    return 1.0 if hits_at(ranking, gold, k) else 0.0


def capped_all_found_at(ranking: Sequence[str], gold: frozenset[str], k: int) -> float:
    """LocAgent's acc@k: the top k hold min(|gold|, k) gold items (all of them, or k when there are more)."""
    return 1.0 if gold and hits_at(ranking, gold, k) == min(len(gold), k) else 0.0


def average_precision(ranking: Sequence[str], gold: frozenset[str]) -> float:
    if not gold:
        return 0.0
    found = 0
    total = 0.0
    for rank, item in enumerate(ranking, start=1):
        if item in gold:
            found += 1
            total += found / rank
    return total / len(gold)


def reciprocal_rank(ranking: Sequence[str], gold: frozenset[str]) -> float:
    for rank, item in enumerate(ranking, start=1):
        if item in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranking: Sequence[str], gold: frozenset[str], k: int) -> float:
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    if ideal == 0.0:
        return 0.0
    gained = sum(1.0 / math.log2(rank + 1) for rank, item in enumerate(ranking[:k], start=1) if item in gold)
    return gained / ideal


def parse_metric(metric: str) -> tuple[str, int | None]:
    """``recall@5`` -> (``recall``, 5); ``map`` -> (``map``, None)."""
    base, at, cutoff = metric.partition("@")
    if base in RANKED_METRICS and at and cutoff.isdigit() and int(cutoff) > 0:
        return base, int(cutoff)
    if base in WHOLE_RANKING_METRICS and not at:
        return base, None
    raise MetricError(
        f"unknown metric {metric!r}: use {', '.join(m + '@k' for m in RANKED_METRICS)}, "
        f"{', '.join(WHOLE_RANKING_METRICS)}"
    )


def score(metric: str, ranking: Sequence[str], gold: frozenset[str], *, acc_needs_all: bool) -> float:
    """One metric for one ranking; ``acc_needs_all`` picks strict acc@k (all gold) or a hit (any)."""
    base, k = parse_metric(metric)
    if base == "empty":
        return 0.0 if ranking else 1.0
    if base == "map":
        return average_precision(ranking, gold)
    if base == "mrr":
        return reciprocal_rank(ranking, gold)
    assert k is not None
    if base == "acc":
        return (all_found_at if acc_needs_all else any_found_at)(ranking, gold, k)
    if base == "recall":
        return recall_at(ranking, gold, k)
    if base == "precision":
        return precision_at(ranking, gold, k)
    return ndcg_at(ranking, gold, k)


# ---------------------------------------------------------------------------------------------------
# Protocols: what the gold and the rankings of one instance are at each level.


class Protocol:
    name: str
    levels: tuple[str, ...]
    metrics: tuple[str, ...]
    acc_needs_all: bool
    clean_paths: bool  # how predictions must be read for this protocol

    def gold_by_level(self, items: Sequence[str]) -> dict[str, frozenset[str]]:
        raise NotImplementedError

    def rankings(self, prediction: Prediction | None) -> dict[str, list[str]]:
        """The prediction's files, modules and functions, repeats dropped keeping the first, uncut (strict
        and locagent)."""
        if prediction is None:
            return {level: [] for level in self.levels}
        return {
            "file": unique(prediction.files),
            "module": unique(prediction.modules),
            "function": unique(prediction.functions),
        }

    def scores_instance(self, gold: frozenset[str]) -> bool:
        """Whether an instance with this gold at a level is scored at that level: when the level has gold
        (strict and locagent)."""
        return bool(gold)

    def score(self, metric: str, ranking: Sequence[str], gold: frozenset[str]) -> float:
        return score(metric, ranking, gold, acc_needs_all=self.acc_needs_all)


class StrictProtocol(Protocol):
    name = "strict"
    levels = LEVELS
    metrics = (
        *(f"{base}@{k}" for base in ("acc", "recall", "precision", "ndcg") for k in STRICT_CUTOFFS),
        "map",
        "mrr",
        "empty",
    )
    acc_needs_all = True
    clean_paths = True

    def gold_by_level(self, items: Sequence[str]) -> dict[str, frozenset[str]]:
        return {
            "file": frozenset(file_of(item) for item in items),
            "module": frozenset(module for module in map(module_of, items) if module),
            "function": frozenset(item for item in items if name_of(item)),
        }


class ToolTrainProtocol(Protocol):
    name = "tooltrain"
    levels = ("file", "function")
    metrics = (
        *(f"acc@{k}" for k in (1, 3, 5)),
        *(f"recall@{k}" for k in (1, 3, 5)),
        "map",
        "mrr",
        "ndcg@5",
        "empty",
    )
    acc_needs_all = False
    clean_paths = False

    def gold_by_level(self, items: Sequence[str]) -> dict[str, frozenset[str]]:
        files: set[str] = set()
        names: set[str] = set()
        for item in items:
            parts = item.split("::")
            if len(parts) == 2:
                files.add(parts[0])
                names.add(parts[1])
            elif len(parts) == 1:
                files.add(parts[0])
        return {"file": frozenset(files), "function": frozenset(names)}

    def rankings(self, prediction: Prediction | None) -> dict[str, list[str]]:
        if prediction is None or not prediction.files:  # the script skips the whole instance
            return {"file": [], "function": []}
        names = unique(name for name in map(name_of, prediction.functions) if name)
        return {"file": unique(prediction.files)[:TOOLTRAIN_CUTOFF], "function": names[:TOOLTRAIN_CUTOFF]}

    def scores_instance(self, gold: frozenset[str]) -> bool:
        return True


class LocAgentProtocol(Protocol):
    name = "locagent"
    levels = LEVELS
    metrics = tuple(f"acc@{k}" for k in LOCAGENT_CUTOFFS)
    acc_needs_all = True  # for the other metrics a caller may ask for; acc@k is LocAgent's (score below)
    clean_paths = False

    def gold_by_level(self, items: Sequence[str]) -> dict[str, frozenset[str]]:
        entities = [item for item in items if name_of(item)]
        return {
            "file": frozenset(map(file_of, entities)),
            "module": frozenset(module for module in map(module_of, entities) if module),
            "function": frozenset(entities),
        }

    def score(self, metric: str, ranking: Sequence[str], gold: frozenset[str]) -> float:
        base, k = parse_metric(metric)
        if base == "acc":
            assert k is not None
            return capped_all_found_at(ranking, gold, k)
        return super().score(metric, ranking, gold)


PROTOCOLS: dict[str, Protocol] = {
    "strict": StrictProtocol(),
    "tooltrain": ToolTrainProtocol(),
    "locagent": LocAgentProtocol(),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise MetricError(f"unknown protocol {name!r}: use {', '.join(PROTOCOLS)}") from None


# ---------------------------------------------------------------------------------------------------
# A system over a gold set.


@dataclass(frozen=True)
class LevelScores:
    """Per-instance scores at one level, aligned with ``instance_ids`` (the gold set's order)."""

    level: str
    instance_ids: tuple[str, ...]
    per_instance: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.instance_ids)

    def percentages(self) -> dict[str, float | None]:
        """Mean per metric, in percent; None when the level scored no instance."""
        return {
            metric: (float(values.mean() * 100) if len(values) else None)
            for metric, values in self.per_instance.items()
        }


@dataclass(frozen=True)
class SystemScores:
    protocol: str
    n: int  # instances in the gold set
    levels: dict[str, LevelScores]

    def percentages(self) -> dict[str, dict[str, float | None]]:
        return {level: scores.percentages() for level, scores in self.levels.items()}


def evaluate(
    predictions: Mapping[str, Prediction],
    gold: Mapping[str, Sequence[str]],
    protocol: str = "strict",
    metrics: Iterable[str] | None = None,
) -> SystemScores:
    """Score ``predictions`` against ``gold`` (instance id -> entity ids). Predictions for instances
    outside the gold set are ignored (the readers report them); ``metrics`` overrides the protocol's."""
    rules = get_protocol(protocol)
    names = tuple(metrics) if metrics is not None else rules.metrics
    for metric in names:
        parse_metric(metric)
    ids: dict[str, list[str]] = {level: [] for level in rules.levels}
    values: dict[str, dict[str, list[float]]] = {
        level: {metric: [] for metric in names} for level in rules.levels
    }
    for instance_id, items in gold.items():
        gold_sets = rules.gold_by_level(items)
        rankings = rules.rankings(predictions.get(instance_id))
        for level in rules.levels:
            if not rules.scores_instance(gold_sets[level]):
                continue
            ids[level].append(instance_id)
            for metric in names:
                value = rules.score(metric, rankings[level], gold_sets[level])
                values[level][metric].append(value)
    levels = {
        level: LevelScores(
            level=level,
            instance_ids=tuple(ids[level]),
            per_instance={metric: np.asarray(found, dtype=float) for metric, found in values[level].items()},
        )
        for level in rules.levels
    }
    return SystemScores(protocol=rules.name, n=len(gold), levels=levels)
