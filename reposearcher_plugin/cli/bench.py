"""`reposearcher bench`: index and tool speed on one repository, each figure next to its floor.

Everything runs on a private copy of the tree with a private cache, so the user's checkout and cache are
never touched, and every run measures its own parse floor because shared machines are noisy.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from reposearcher_plugin.index import CLASS, FUNCTION, METHOD, ParseCache, build_index, parse_floor
from reposearcher_plugin.index.walk import SKIP_DIRS, resolve_root
from reposearcher_plugin.tools import ToolBox

TOOL_CALLS_PER_KIND = 100  # search_class, search_function, search_class_method, show_code: 400 in all
CHANGED_SHARE = 0.01


def run_once(root: Path, workers: int | None, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reposearcher-bench-") as scratch:
        tree = Path(scratch) / "tree"
        shutil.copytree(root, tree, symlinks=True, ignore=shutil.ignore_patterns(".git", *sorted(SKIP_DIRS)))
        cache = ParseCache(Path(scratch) / "cache")

        floor_s, _ = parse_floor(tree, workers=workers)

        started = time.perf_counter()
        index = build_index(tree, cache=cache, workers=workers)
        cold_s = time.perf_counter() - started

        started = time.perf_counter()
        warm = build_index(tree, cache=cache, workers=workers)
        warm_s = time.perf_counter() - started
        assert warm.stats.unchanged == len(warm.files), "warm load re-read files"

        latencies = _tool_latencies(warm, random.Random(seed))

        sources = sorted(index.files)
        changed = random.Random(seed).sample(sources, max(1, round(len(sources) * CHANGED_SHARE)))
        for path in changed:
            with open(tree / path, "a", encoding="utf-8") as handle:
                handle.write("\n# changed by reposearcher bench\n")
        started = time.perf_counter()
        again = build_index(tree, cache=cache, workers=workers)
        reindex_s = time.perf_counter() - started
        assert again.stats.parsed == len(changed), (again.stats.parsed, len(changed))
        cache.close()

    return {
        "files": len(index.files),
        "entities": index.entity_count,
        "index_cold_s": cold_s,
        "index_warm_s": warm_s,
        "parse_floor_s": floor_s,
        "cold_over_floor": cold_s / floor_s if floor_s else None,
        "reindex_changed_files": len(changed),
        "reindex_s": reindex_s,
        "tool_calls": len(latencies),
        "tool_p50_ms": _percentile(latencies, 50) * 1000,
        "tool_p99_ms": _percentile(latencies, 99) * 1000,
        "tool_max_ms": max(latencies) * 1000 if latencies else None,
    }


def _tool_latencies(index: Any, rng: random.Random) -> list[float]:
    """Time real lookups: names drawn from the index itself, answered by a fresh ToolBox."""
    toolbox = ToolBox(index)
    entities = list(index.entities())
    by_kind = {kind: [(p, e) for p, e in entities if e.kind == kind] for kind in (CLASS, FUNCTION, METHOD)}
    calls: list[tuple[str, dict[str, Any]]] = []
    for _, entity in _sample(by_kind[CLASS], rng):
        calls.append(("search_class", {"class_name": entity.name}))
    for path, entity in _sample(by_kind[FUNCTION], rng):
        calls.append(("search_function", {"function_name": entity.qualname, "file": path}))
    for _, entity in _sample(by_kind[METHOD], rng):
        calls.append(("search_class_method", {"class_name": entity.parent, "method_name": entity.name}))
    for path, entity in _sample(entities, rng):
        calls.append(("show_code", {"file": path, "start_line": entity.start, "end_line": entity.end}))
    rng.shuffle(calls)
    latencies = []
    for name, arguments in calls:
        started = time.perf_counter()
        observation = toolbox.call(name, arguments)
        latencies.append(time.perf_counter() - started)
        if not observation.ok:
            raise RuntimeError(f"bench lookup failed: {name}({arguments}): {observation.text[:200]}")
    return latencies


def _sample(items: list, rng: random.Random) -> list:
    return rng.sample(items, min(TOOL_CALLS_PER_KIND, len(items)))


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(percent / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def bench(path: str, runs: int = 3, workers: int | None = None) -> dict[str, Any]:
    root = resolve_root(path)
    results = [run_once(root, workers, seed) for seed in range(runs)]
    summary: dict[str, Any] = {"repository": str(root), "runs": runs}
    for key in results[0]:
        values = [result[key] for result in results if result[key] is not None]
        summary[key] = statistics.median(values) if values else None
    summary["per_run"] = results
    return summary
