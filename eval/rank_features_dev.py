"""The ranking features for the offline default's failure classes (issue 15, item 3), measured on data that
no benchmark holds: mined commits (``reposearcher mine``) and SWE-bench Lite dev. Never run it on Lite test,
Verified or Loc-Bench: the weights it compares were chosen with it.

Usage (from the repository root, one core, ``nice -n 19``):

    python eval/rank_features_dev.py collect SPLIT --mined MINED.jsonl --repos-dir DIR [DIR...] --out SIGNALS
        [--lite-dev ../shared/data/swe-bench-lite/dev.jsonl]
    python eval/rank_features_dev.py score --out SIGNALS SPLIT[,SPLIT...] [...] [--json REPORT.json]

``collect`` writes the ranking's ``Signals`` of each instance of SPLIT (pickled, index-free) under
SIGNALS/SPLIT, so weights are tried without the repositories. Splits of the mined rows, by
``int(sha256(instance_id).hexdigest(), 16) % 10`` (0-6 train, 7-8 dev, 9 held out): ``dev`` (10 per
repository), ``devcode`` (20 per repository of the dev rows whose message quotes code), ``test`` and
``testcode`` (6 per repository of the held-out rows, all / quoting code); each a seeded shuffle of the
repository's ids, taken round-robin over the repositories. ``lite``: SWE-bench Lite dev, gold derived from
its patches (instances whose repository is not under ``--repos-dir`` are left out). ``score`` prints, per
group of splits (instances counted once), function Recall@5, file Recall@5 and function MRR before (the
new features' weights at 0, their priors at 1), after the first round of them (``round1``: the defaults
with the second round's, SECOND_ROUND_OFF, at 0) and after both (the default weights).

``eval/results/rank_features.md`` holds the figures and ``rank_features.json`` the instance ids.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import pickle
import random
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from reposearcher_plugin.index import ParseCache, build_index, path_role
from reposearcher_plugin.rank import DEFAULT_WEIGHTS, FEATURES, RetrievalLocalizer, rank_signals
from reposearcher_plugin.rank.scoring import Weights
from reposearcher_plugin.workspace.workspace import Workspace

PER_REPOSITORY = {"dev": 10, "devcode": 20, "test": 6, "testcode": 6}
DIGITS = {"dev": {7, 8}, "devcode": {7, 8}, "test": {9}, "testcode": {9}}
QUOTES_CODE = re.compile(r"`|\w\(|__\w+__|\w\.\w+\(")
# Weights and priors of the features that issue 15, item 3 added, at the values that switch them off.
NEW_OFF = {
    "operator_mention": 0.0,
    "missing_member": 0.0,
    "inherited_mention": 0.0,
    "callee": 0.0,
    "caller": 0.0,
    "vendored_prior": 1.0,
    "stub_prior": 1.0,
}
# The second round's (session 9: stems, module names, the user's own words), at the values that switch
# them off: the defaults with these are the first round's ranking.
SECOND_ROUND_OFF = {
    "bm25_prose": 0.0,
    "name_words": 0.0,
    "file_module_name": 0.0,
}


def split_digit(instance_id: str) -> int:
    return int(hashlib.sha256(instance_id.encode()).hexdigest(), 16) % 10


def mined_sample(mined: Path, split: str) -> list[dict[str, Any]]:
    by_repo: dict[str, list[dict[str, Any]]] = {}
    with mined.open() as rows:
        for line in rows:
            row = json.loads(line)
            if split.endswith("code") and not QUOTES_CODE.search(row["problem_statement"]):
                continue
            if split_digit(row["instance_id"]) in DIGITS[split] and row.get("gold"):
                by_repo.setdefault(row["repo"], []).append(row)
    groups = []
    for repo in sorted(by_repo):
        group = sorted(by_repo[repo], key=lambda row: row["instance_id"])
        random.Random(f"feat-{split}-{repo}").shuffle(group)
        groups.append(group[: PER_REPOSITORY[split]])
    return [
        group[rank]
        for rank in range(max(map(len, groups), default=0))
        for group in groups
        if rank < len(group)
    ]


def lite_sample(lite_dev: Path, repos_dirs: list[str]) -> list[dict[str, Any]]:
    from reposearcher_plugin.evaluation.gold import gold_from_patches
    from reposearcher_plugin.evaluation.instances import load_instances
    from reposearcher_plugin.workspace.sources import find_local

    instances = [
        instance
        for instance in load_instances(str(lite_dev))
        if find_local(instance.repo, [Path(directory) for directory in repos_dirs], {})[0] is not None
    ]
    gold = gold_from_patches(instances, repos_dirs)
    return [
        {
            "instance_id": instance.instance_id,
            "repo": instance.repo,
            "base_commit": instance.base_commit,
            "problem_statement": instance.problem_statement,
            "gold": gold[instance.instance_id],
        }
        for instance in instances
    ]


def collect(args: argparse.Namespace) -> None:
    rows = (
        lite_sample(args.lite_dev, args.repos_dir)
        if args.split == "lite"
        else mined_sample(args.mined, args.split)
    )
    out = args.out / args.split
    out.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(args.repos_dir, online=False)
    cache = ParseCache()
    print(len(rows), "instances", flush=True)
    for number, row in enumerate(rows):
        target = out / (row["instance_id"].replace("/", "_") + ".pkl")
        if target.exists():
            continue
        started = time.perf_counter()
        try:
            with workspace.hold(row["repo"], row["base_commit"], allow_missing=True) as root:
                signals = RetrievalLocalizer(build_index(root, cache=cache, workers=1)).signals(
                    row["problem_statement"]
                )
        except Exception:  # one instance must not end the run
            traceback.print_exc()
            continue
        target.write_bytes(pickle.dumps({"signals": signals, "gold": row["gold"], "repo": row["repo"]}))
        print(number, row["instance_id"], round(time.perf_counter() - started, 1), flush=True)


def load(out: Path, splits: list[str]) -> list[dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for split in splits:
        for path in sorted((out / split).glob("*.pkl")):
            item = pickle.loads(path.read_bytes())
            signals = item["signals"]
            signals.roles = [path_role(file) for file in signals.files]  # roles as the code now gives them
            for name in FEATURES:
                signals.features.setdefault(name, np.zeros(len(signals.ids)))
            items.setdefault(path.stem, item)
    return list(items.values())


def metrics(items: list[dict[str, Any]], weights: Weights) -> dict[str, float]:
    function_recall = file_recall = reciprocal = 0.0
    with_functions = 0
    for item in items:
        ranking = rank_signals(item["signals"], weights)
        gold_functions = {label for label in item["gold"] if "::" in label}
        gold_files = {label.split("::")[0] for label in item["gold"]}
        file_recall += len(gold_files & set(ranking.files[:5])) / len(gold_files)
        if gold_functions:
            with_functions += 1
            function_recall += len(gold_functions & set(ranking.locations[:5])) / len(gold_functions)
            rank = next(
                (i for i, location in enumerate(ranking.locations) if location in gold_functions), None
            )
            reciprocal += 1 / (rank + 1) if rank is not None else 0.0
    return {
        "n": len(items),
        "fn_R@5": round(100 * function_recall / max(with_functions, 1), 1),
        "file_R@5": round(100 * file_recall / max(len(items), 1), 1),
        "fn_MRR": round(100 * reciprocal / max(with_functions, 1), 1),
    }


def before(item: dict[str, Any]) -> dict[str, Any]:
    """The instance as the ranking before the new features saw it: no class lacks a member (the feature
    also lifts a class's prior, which its weight at 0 does not undo)."""
    signals = item["signals"]
    features = {**signals.features, "missing_member": np.zeros(len(signals.ids))}
    return {**item, "signals": dataclasses.replace(signals, features=features)}


def score(args: argparse.Namespace) -> None:
    off = dataclasses.replace(DEFAULT_WEIGHTS, **NEW_OFF, **SECOND_ROUND_OFF)
    first_round = dataclasses.replace(DEFAULT_WEIGHTS, **SECOND_ROUND_OFF)
    report: dict[str, Any] = {"splits": {}, "metrics": {}}
    for group in args.groups:
        items = load(args.out, group.split(","))
        rows = {
            "before": metrics([before(item) for item in items], off),
            "round1": metrics(items, first_round),
            "after": metrics(items, DEFAULT_WEIGHTS),
        }
        for name, row in rows.items():
            print(group, f"{name:6}", row)
        report["metrics"][group] = rows
        for split in group.split(","):
            report["splits"][split] = sorted(path.stem for path in (args.out / split).glob("*.pkl"))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    collecting = commands.add_parser("collect")
    collecting.add_argument("split", choices=["dev", "devcode", "test", "testcode", "lite"])
    collecting.add_argument("--mined", type=Path)
    collecting.add_argument("--lite-dev", type=Path, default=Path("../shared/data/swe-bench-lite/dev.jsonl"))
    collecting.add_argument("--repos-dir", nargs="+", required=True)
    collecting.add_argument("--out", type=Path, required=True)
    scoring = commands.add_parser("score")
    scoring.add_argument("--out", type=Path, required=True)
    scoring.add_argument("groups", nargs="+")
    scoring.add_argument("--json", type=Path, help="also write the figures and the instance ids here")
    args = parser.parse_args(argv)
    if args.command == "collect" and args.split != "lite" and args.mined is None:
        parser.error("collect: --mined is needed for the mined splits")
    (collect if args.command == "collect" else score)(args)


if __name__ == "__main__":
    sys.exit(main())
