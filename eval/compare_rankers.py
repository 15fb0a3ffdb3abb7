"""Compare ranker models (and the rules) on one split of a `reposearcher ranker extract` work directory.

Each model ranks the extracted Signals of every instance of the split as `--model ranker:PATH` would
(its own rules weights for its rules columns, rank/learned.py); the strict protocol scores them, with
95 % paired bootstrap intervals of each model against the first. Used to decide whether a retrained
model replaces the packaged one (docs/ranker.md, "When a new model replaces the packaged one"):

    python eval/compare_rankers.py --work ranker-work --split test \
        reposearcher_plugin/rank/models/retrieval-ltr-v4.txt new-model.txt --rules
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from reposearcher_plugin.evaluation.ltr import load_examples, prediction_of
from reposearcher_plugin.evaluation.metrics import evaluate
from reposearcher_plugin.rank.learned import LearnedRanker
from reposearcher_plugin.rank.scoring import rank_signals

METRICS = (("function", "recall@5"), ("function", "mrr"), ("file", "recall@5"), ("file", "mrr"))
BOOTSTRAP = 2000


def per_instance(examples, rank) -> dict[str, np.ndarray]:
    predictions = {ex.instance_id: prediction_of(ex.instance_id, rank(ex.signals)) for ex in examples}
    scores = evaluate(
        predictions, {ex.instance_id: ex.gold for ex in examples}, "strict", ("recall@5", "mrr")
    )
    return {f"{lvl} {m}": 100.0 * scores.levels[lvl].per_instance[m] for lvl, m in METRICS}


def interval(delta: np.ndarray) -> tuple[float, float]:
    draws = np.random.default_rng(0).integers(0, len(delta), size=(BOOTSTRAP, len(delta)))
    means = delta[draws].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("models", nargs="+", help="model files; the first is the baseline of the intervals")
    parser.add_argument("--rules", action="store_true", help="add the hand-set rules (today's weights)")
    parser.add_argument("--json")
    args = parser.parse_args()
    examples = [ex for ex in load_examples(args.work) if ex.split == args.split]
    systems = {Path(path).name: LearnedRanker.load(path).rank for path in args.models}
    if args.rules:
        systems["rules"] = rank_signals
    results = {name: per_instance(examples, rank) for name, rank in systems.items()}
    base = next(iter(results.values()))
    print(f"{len(examples)} instances ({args.split})\n")
    print("| system | " + " | ".join(base) + " |")
    print("| --- |" + " ---: |" * len(base))
    table = {}
    for name, scores in results.items():
        cells = []
        for metric, values in scores.items():
            low, high = interval(values - base[metric])
            cells.append(
                f"{values.mean():.1f} ({values.mean() - base[metric].mean():+.1f}; {low:+.1f}..{high:+.1f})"
            )
        table[name] = {metric: float(values.mean()) for metric, values in scores.items()}
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"split": args.split, "instances": len(examples), "systems": table}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
