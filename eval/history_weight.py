"""Set a rules weight of the history evidence (``file_history``, ``past_edits``) on extracted mined
instances (never on an evaluation set).

Reads a `reposearcher ranker extract` work directory whose Signals were extracted with history, ranks
every instance of the chosen splits with the hand-set weights at each value of ``--weight``, and prints
the strict-protocol function and file scores per value (with paired bootstrap intervals against 0), as
Markdown; ``--json`` keeps the numbers.

    python eval/history_weight.py --work ranker-work --splits train dev --values 0 0.25 0.5 1 2
    python eval/history_weight.py --work ranker-work --weight past_edits --values 0 0.5 1 2 4

The objective column is the one the other weights of rank/scoring.py were set by: function Recall@5 +
function MRR + file Recall@5 / 2.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from reposearcher_plugin.evaluation.ltr import load_examples, prediction_of
from reposearcher_plugin.evaluation.metrics import evaluate
from reposearcher_plugin.rank.scoring import DEFAULT_WEIGHTS, rank_signals

METRICS = (("function", "recall@5"), ("function", "mrr"), ("file", "recall@5"), ("file", "mrr"))
BOOTSTRAP = 2000


def per_instance(examples, weights) -> dict[str, np.ndarray]:
    predictions = {
        ex.instance_id: prediction_of(ex.instance_id, rank_signals(ex.signals, weights)) for ex in examples
    }
    gold = {ex.instance_id: ex.gold for ex in examples}
    scores = evaluate(predictions, gold, "strict", ("recall@5", "mrr"))
    # each level's instances are the same at every weight (the gold decides them): deltas pair up
    return {
        f"{level} {metric}": 100.0 * scores.levels[level].per_instance[metric] for level, metric in METRICS
    }


def interval(delta: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(delta), size=(BOOTSTRAP, len(delta)))
    means = delta[draws].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--splits", nargs="+", default=["train", "dev"])
    parser.add_argument("--values", nargs="+", type=float, default=[0, 0.25, 0.5, 1, 2])
    parser.add_argument("--weight", default="file_history", choices=["file_history", "past_edits"])
    parser.add_argument("--json")
    args = parser.parse_args()
    examples = [ex for ex in load_examples(args.work) if ex.split in args.splits]
    with_history = sum(1 for ex in examples if "history" in ex.signals.evidence)
    base = per_instance(examples, replace(DEFAULT_WEIGHTS, **{args.weight: 0.0}))
    rows = []
    print(f"{len(examples)} instances ({', '.join(args.splits)}), {with_history} with history\n")
    print(f"| {args.weight} | " + " | ".join(name for name in base) + " | objective |")
    print("| ---: |" + " ---: |" * (len(base) + 1))
    for value in args.values:
        scores = per_instance(examples, replace(DEFAULT_WEIGHTS, **{args.weight: value}))
        cells, row = [], {args.weight: value}
        for name, values in scores.items():
            low, high = interval(values - base[name])
            cells.append(
                f"{values.mean():.1f} ({values.mean() - base[name].mean():+.1f}; {low:+.1f}..{high:+.1f})"
            )
            row[name] = {"mean": values.mean(), "delta_low": low, "delta_high": high}
        # the objective the earlier weights were set by (scoring.py): fn R@5 + fn MRR + file R@5 / 2
        row["objective"] = objective = (
            scores["function recall@5"].mean()
            + scores["function mrr"].mean()
            + scores["file recall@5"].mean() / 2
        )
        rows.append(row)
        print(f"| {value:g} | " + " | ".join(cells) + f" | {objective:.1f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"instances": len(examples), "splits": args.splits, "weight": args.weight, "rows": rows},
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
