"""Cross-validated comparison of the learned ranker with the rules on extracted mined data (issue 15,
item 2): five folds over the train and dev splits together (the test split is never read), each grid
point trained on four folds for a fixed number of rounds and scored on the fifth; the pooled rankings are
scored once. A steadier estimate than the single dev split, whose ~100 queries make early stopping stop
after a handful of rounds.

Usage: python eval/ltr_cv.py WORK[,WORK...] [--grid JSON] [--folds 5]

WORK: directories `reposearcher ranker extract` wrote (their Signals must come from the same code as the
one running this script). --grid: a JSON list of LightGBM parameter sets, each with its "rounds" and
optionally its file "aggregation" (default logsumexp).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any

from reposearcher_plugin.evaluation.ltr import Example, load_examples, score_rankings
from reposearcher_plugin.rank import Ranking, rank_signals
from reposearcher_plugin.rank.learned import LearnedRanker
from reposearcher_plugin.rank.training import Query, train_ranker

DEFAULT_GRID = [{"num_leaves": 15, "min_data_in_leaf": 200, "learning_rate": 0.1, "rounds": 70}]


def fold_of(instance_id: str, folds: int) -> int:
    return int(hashlib.sha256(f"cv:{instance_id}".encode()).hexdigest(), 16) % folds


def cross_validate(
    examples: list[Example], grid: list[dict[str, Any]], folds: int
) -> dict[str, dict[str, Ranking]]:
    pooled: dict[str, dict[str, Ranking]] = {"rules": {}, **{json.dumps(point): {} for point in grid}}
    for fold in range(folds):
        train = [e for e in examples if fold_of(e.instance_id, folds) != fold]
        held = [e for e in examples if fold_of(e.instance_id, folds) == fold]
        for example in held:
            pooled["rules"][example.instance_id] = rank_signals(example.signals)
        for point in grid:
            params = {key: value for key, value in point.items() if key not in ("rounds", "aggregation")}
            queries = [Query(e.signals, frozenset(e.gold)) for e in train]
            trained = train_ranker(queries, (), params=params, rounds=point["rounds"])
            model = LearnedRanker.from_text(trained.text)
            model.file_aggregation = point.get("aggregation", "logsumexp")
            for example in held:
                pooled[json.dumps(point)][example.instance_id] = model.rank(example.signals)
    return pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", help="extraction directories, comma-separated")
    parser.add_argument("--grid", default=json.dumps(DEFAULT_GRID))
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    examples = [
        example
        for work in args.work.split(",")
        for example in load_examples(work)
        if example.split in ("train", "dev")
    ]
    pooled = cross_validate(examples, json.loads(args.grid), args.folds)
    gold = {example.instance_id: example.gold for example in examples}
    print(f"{len(examples)} train+dev instances, {args.folds} folds")
    print("| system | function R@5 | function R@10 | function MRR | file R@5 | file MRR |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rankings in pooled.items():
        table = score_rankings(rankings, gold)
        function, file = table["function"], table["file"]
        print(
            f"| {name} | {function['recall@5']:.1f} | {function['recall@10']:.1f} | {function['mrr']:.1f} "
            f"| {file['recall@5']:.1f} | {file['mrr']:.1f} |"
        )


if __name__ == "__main__":
    main()
