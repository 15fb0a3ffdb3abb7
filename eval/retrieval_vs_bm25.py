"""The offline default beside plain BM25, over the same index of every instance, in one run.

For each instance: check out the base commit (workspace), index it once, rank with the default
(``retrieval``) and with plain BM25 (``bm25``), and append one row per localizer to
``OUT_DIR/retrieval.jsonl`` and ``OUT_DIR/bm25.jsonl`` (the predictions format ``reposearcher eval loc``
reads). Resumable like ``reposearcher run``: instances already in both files are skipped. Timings (checkout
+ index, and each localizer) go to ``OUT_DIR/timing.jsonl``. The command lines are in eval/results/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.localizers import RankingLocalizer
from reposearcher_plugin.evaluation.batch import finished_ids
from reposearcher_plugin.evaluation.instances import Instance, load_instances
from reposearcher_plugin.index import build_index
from reposearcher_plugin.workspace import Workspace, parse_aliases

MODELS = ("retrieval", "bm25")
KEPT = 20  # ranked locations kept per instance: every metric stops at k = 10


def localize_both(job: tuple[Instance, Workspace]) -> dict[str, Any]:
    instance, workspace = job
    started = time.perf_counter()
    rows: dict[str, Any] = {}
    timing: dict[str, Any] = {"instance_id": instance.instance_id}
    try:
        # mirrors may lack large data blobs; a localizer never reads those files
        with workspace.hold(instance.repo, instance.base_commit, allow_missing=True) as root:
            timing["missing_files"] = len(workspace.missing(root))
            index = build_index(root, workers=1)
            timing["index_s"] = round(time.perf_counter() - started, 3)
            timing["entities"] = index.entity_count
            for model in MODELS:
                began = time.perf_counter()
                result = RankingLocalizer(model, max_locations=KEPT).localize(
                    index, instance.problem_statement, instance.instance_id, instance.repo
                )
                timing[f"{model}_s"] = round(time.perf_counter() - began, 3)
                result.trajectory = None  # the evidence is for people reading one run, not for scoring
                rows[model] = result.to_dict()
    except Exception as error:  # recorded, like `reposearcher run`
        for model in MODELS:
            rows[model] = {
                "instance_id": instance.instance_id,
                "model": model,
                "locations": [],
                "error": str(error),
            }
    timing["total_s"] = round(time.perf_counter() - started, 3)
    return {"rows": rows, "timing": timing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--repos-dir", action="append", default=[])
    parser.add_argument("--repo-alias", action="append", default=[])
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    instances = load_instances(args.dataset)[: args.limit]
    done = set.intersection(*(finished_ids(out_dir / f"{model}.jsonl") for model in MODELS))
    todo = [instance for instance in instances if instance.instance_id not in done]
    workspace = Workspace(args.repos_dir, aliases=parse_aliases(args.repo_alias), online=False)
    sinks = {model: (out_dir / f"{model}.jsonl").open("a", encoding="utf-8") for model in MODELS}
    timing_sink = (out_dir / "timing.jsonl").open("a", encoding="utf-8")
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        jobs = [(instance, workspace) for instance in todo]
        for number, finished in enumerate(pool.map(localize_both, jobs), start=1):
            for model, row in finished["rows"].items():
                sinks[model].write(json.dumps(row) + "\n")
                sinks[model].flush()
            timing_sink.write(json.dumps(finished["timing"]) + "\n")
            timing_sink.flush()
            rate = 60 * number / (time.perf_counter() - started)
            print(f"\r{number}/{len(todo)} ({rate:.1f}/min)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    timings = [
        json.loads(line) for line in (out_dir / "timing.jsonl").read_text().splitlines() if line.strip()
    ]
    summary = {
        "instances": len(timings),
        "workers": args.workers,
        "wall_s_this_run": round(time.perf_counter() - started, 1),
        "instances_this_run": len(todo),
    }
    for key in ("index_s", "retrieval_s", "bm25_s", "total_s"):
        values = [timing[key] for timing in timings if key in timing]
        if values:
            summary[f"median_{key}"] = round(statistics.median(values), 3)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
