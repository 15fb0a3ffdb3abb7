"""Tool-call throughput through the verl adapter, beside its floor, and the memory of one cached index.

Usage: python eval/bench_verl_tools.py SOURCE_TREE [--runs 5] [--json OUT.json] [--md OUT.md]

Each run makes the same N name lookups (search_class / search_class_method / search_function on names
drawn from the index) three ways, in an order rotated run by run, and keeps per way the best of
``--repeat`` interleaved passes:
- ``floor``: ``ToolBox.call`` in a plain loop (what inference pays);
- ``adapter``: ``RepoSearcherTool`` create -> execute -> release per call, as verl 0.9.1's loop calls it,
  128 trajectories x 16 calls all in flight under one asyncio loop;
- ``verl``: the same calls through verl's own ``ToolAgentLoop._call_tool`` (JSON decoding, the lookup of
  the tool, create_kwargs from tools_kwargs, the response re-wrap), the path a rollout takes.
The tree is given as ``repo_path`` (a release tarball has no git). Memory is measured in fresh child
processes: RSS growth and tracemalloc's count for one warm index load (as the adapter caches it), after
the lookups (the file-lines cache) and after one ``search_code`` (its BM25 index is built on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from reposearcher_plugin.index import CLASS, FUNCTION, METHOD, ParseCache, build_index

TRAJECTORIES, CALLS_PER_TRAJECTORY = 128, 16
GOAL_CALLS_PER_S = 5000


def lookups(index: Any, count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    by_kind: dict[str, list] = {CLASS: [], FUNCTION: [], METHOD: []}
    for path, entity in index.entities():
        if entity.kind in by_kind:
            by_kind[entity.kind].append((path, entity))
    calls = []
    for number in range(count):
        kind = (CLASS, FUNCTION, METHOD)[number % 3]
        path, entity = rng.choice(by_kind[kind])
        if kind == CLASS:
            calls.append(("search_class", {"class_name": entity.name}))
        elif kind == FUNCTION:
            calls.append(("search_function", {"function_name": entity.name, "file": path}))
        else:
            calls.append(("search_class_method", {"class_name": entity.parent, "method_name": entity.name}))
    return calls


def load_tools(settings: dict[str, Any]) -> dict[str, Any]:
    from verl.tools.tool_registry import initialize_tools_from_config

    from reposearcher_plugin.rl.verl_tools import write_tool_config

    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        path = write_tool_config(Path(scratch) / "tools.yaml", "default", **settings)
        return {tool.name: tool for tool in initialize_tools_from_config(str(path))}


async def adapter_run(
    tools: dict[str, Any], calls: list, create_kwargs: dict[str, Any]
) -> tuple[float, list]:
    async def one(name: str, arguments: dict[str, Any]) -> str:
        tool = tools[name]
        instance_id, _ = await tool.create(create_kwargs=create_kwargs)
        try:
            response, _, _ = await tool.execute(instance_id, arguments, agent_data=None)
        finally:
            await tool.release(instance_id)
        return response.text

    async def trajectory(steps: list) -> list[str]:
        return await asyncio.gather(*(one(name, arguments) for name, arguments in steps))

    chunks = [calls[i : i + CALLS_PER_TRAJECTORY] for i in range(0, len(calls), CALLS_PER_TRAJECTORY)]
    started = time.perf_counter()
    results = await asyncio.gather(*(trajectory(chunk) for chunk in chunks))
    return time.perf_counter() - started, [text for chunk in results for text in chunk]


async def verl_run(tools: dict[str, Any], calls: list, create_kwargs: dict[str, Any]) -> tuple[float, list]:
    from verl.experimental.agent_loop.tool_agent_loop import AgentData, ToolAgentLoop
    from verl.experimental.agent_loop.tool_parser import FunctionCall

    # the loop object _call_tool reads: its tools and its response cut (set above our own cut)
    loop = SimpleNamespace(
        tools=tools, max_tool_response_length=1 << 20, tool_response_truncate_side="middle"
    )
    tools_kwargs = {name: {"create_kwargs": create_kwargs} for name in tools}
    encoded = [FunctionCall(name=name, arguments=json.dumps(arguments)) for name, arguments in calls]

    async def trajectory(steps: list) -> list[str]:
        data = AgentData([], None, None, None, None, {}, "r", tools_kwargs)
        responses = await asyncio.gather(
            *(ToolAgentLoop._call_tool(loop, c, tools_kwargs, data) for c in steps)
        )
        return [response.text for response, _, _ in responses]

    chunks = [encoded[i : i + CALLS_PER_TRAJECTORY] for i in range(0, len(encoded), CALLS_PER_TRAJECTORY)]
    started = time.perf_counter()
    results = await asyncio.gather(*(trajectory(chunk) for chunk in chunks))
    return time.perf_counter() - started, [text for chunk in results for text in chunk]


def floor_run(box: Any, calls: list) -> tuple[float, list]:
    started = time.perf_counter()
    texts = [box.call(name, arguments).text for name, arguments in calls]
    return time.perf_counter() - started, texts


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(root: str, cache_dir: str, mode: str, seed: int) -> None:
    """In a fresh process: what one cached index costs, as the adapter builds and uses it."""
    import tracemalloc

    from reposearcher_plugin.tools import RepoTools, ToolBox

    gc.collect()
    if mode == "tracemalloc":
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if mode == "tracemalloc" else rss_bytes()
    measure = (lambda: tracemalloc.get_traced_memory()[0]) if mode == "tracemalloc" else rss_bytes
    index = build_index(root, cache=ParseCache(cache_dir), workers=1)
    tools = RepoTools(index)
    box = ToolBox(index, tools=tools)
    gc.collect()
    loaded = measure()
    for name, arguments in lookups(index, TRAJECTORIES * CALLS_PER_TRAJECTORY, seed):
        box.call(name, arguments)
    gc.collect()
    looked_up = measure()
    box.call("search_code", {"query": "queryset union ordering"})
    gc.collect()
    searched = measure()
    print(
        json.dumps({"load": loaded - before, "lookups": looked_up - before, "search_code": searched - before})
    )


def memory(root: str, cache_dir: str, mode: str, seed: int) -> dict[str, int]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            root,
            "--memory-child",
            mode,
            "--cache-dir",
            cache_dir,
            "--seed",
            str(seed),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench(root: str, runs: int, seed: int, repeat: int = 3) -> dict[str, Any]:
    from reposearcher_plugin.rl.shared_indexes import index_cache

    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = str(Path(scratch) / "parse-cache")
        started = time.perf_counter()
        build_index(root, cache=ParseCache(cache_dir), workers=1)  # fill the parse cache (cold build)
        cold_s = time.perf_counter() - started
        tools = load_tools({"index_cache_dir": cache_dir, "max_cached_indexes": 8, "index_workers": 1})
        create_kwargs = {"repo": "django/django", "base_commit": "4.2.16", "repo_path": root}
        started = time.perf_counter()
        first = asyncio.run(adapter_run(tools, [("search_class", {"class_name": "QuerySet"})], create_kwargs))
        first_call_s = time.perf_counter() - started  # a warm index load through the adapter's cache
        entry = index_cache().future(("path", str(Path(root).resolve())), lambda: None).result()
        box = entry.toolbox("default")
        index = entry.index
        calls = lookups(index, TRAJECTORIES * CALLS_PER_TRAJECTORY, seed)
        expected = [box.call(name, arguments).text for name, arguments in calls]  # also fills lines cache
        assert first[1][0] == box.call("search_class", {"class_name": "QuerySet"}).text
        per_run = []
        methods = ["floor", "adapter", "verl"]
        for run in range(runs):
            # best of `repeat` interleaved passes per method: a pass is ~0.3 s, short enough for a
            # neighbour's burst to halve it, and the best pass is the one least disturbed
            times: dict[str, float] = {method: 0.0 for method in methods}
            for _ in range(repeat):
                for method in methods[run % 3 :] + methods[: run % 3]:
                    gc.collect()
                    if method == "floor":
                        seconds, texts = floor_run(box, calls)
                    elif method == "adapter":
                        seconds, texts = asyncio.run(adapter_run(tools, calls, create_kwargs))
                    else:
                        seconds, texts = asyncio.run(verl_run(tools, calls, create_kwargs))
                    if texts != expected:
                        raise RuntimeError(f"{method}: observations differ from ToolBox.call")
                    times[method] = max(times[method], len(calls) / seconds)
            per_run.append(
                {
                    "floor_calls_per_s": round(times["floor"], 1),
                    "adapter_calls_per_s": round(times["adapter"], 1),
                    "verl_calls_per_s": round(times["verl"], 1),
                    "adapter_over_floor": round(times["adapter"] / times["floor"], 3),
                    "verl_over_floor": round(times["verl"] / times["floor"], 3),
                }
            )
        leaked = sum(tool.live_instances for tool in tools.values())
        rss = memory(root, cache_dir, "rss", seed)
        traced = memory(root, cache_dir, "tracemalloc", seed)
    median = {key: round(statistics.median(run[key] for run in per_run), 3) for key in per_run[0]}
    return {
        "source": root,
        "files": len(index.files),
        "entities": index.entity_count,
        "cpus": os.cpu_count(),
        "calls_per_run": len(calls),
        "passes_per_run": repeat,
        "concurrency": f"{TRAJECTORIES} trajectories x {CALLS_PER_TRAJECTORY} calls, one asyncio loop",
        "goal_calls_per_s": GOAL_CALLS_PER_S,
        "cold_build_s": round(cold_s, 3),
        "first_call_warm_load_s": round(first_call_s, 3),
        "median": median,
        "runs": per_run,
        "live_instances_after": leaked,
        "memory_rss_bytes": rss,
        "memory_tracemalloc_bytes": traced,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    med = result["median"]
    mib = lambda value: f"{value / 2**20:.1f}"  # noqa: E731
    rss, traced = result["memory_rss_bytes"], result["memory_tracemalloc_bytes"]
    lines = [
        "# verl tool adapter: call throughput and index memory (Django 4.2.16)",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Release source from PyPI, unpacked, passed as `repo_path` ({result['files']} source files, "
        f"{result['entities']} definitions); {result['cpus']} cores; {result['calls_per_run']} name lookups "
        f"per run (search_class / search_function / search_class_method on names drawn from the index), "
        f"{result['concurrency']}; every observation checked equal to `ToolBox.call`. Median of "
        f"{len(result['runs'])} runs; each run takes, per method, the best of {result['passes_per_run']} "
        "interleaved passes (floor measured in the same run, methods in rotated order).",
        "",
        "| figure | median | goal |",
        "| --- | --- | --- |",
        f"| adapter (create -> execute -> release), calls/s | {med['adapter_calls_per_s']:.0f} | "
        f">= {result['goal_calls_per_s']} |",
        f"| through verl's `ToolAgentLoop._call_tool`, calls/s | {med['verl_calls_per_s']:.0f} | - |",
        f"| floor (`ToolBox.call` in a loop), calls/s | {med['floor_calls_per_s']:.0f} | - |",
        f"| adapter / floor | {med['adapter_over_floor']:.3f} | - |",
        f"| verl path / floor | {med['verl_over_floor']:.3f} | - |",
        f"| tool instances alive after all runs | {result['live_instances_after']} | 0 |",
        "",
        "Per run (calls/s):",
        "",
        "| run | floor | adapter | verl path | adapter/floor | verl/floor |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for number, run in enumerate(result["runs"], 1):
        lines.append(
            f"| {number} | {run['floor_calls_per_s']:.0f} | {run['adapter_calls_per_s']:.0f} | "
            f"{run['verl_calls_per_s']:.0f} | {run['adapter_over_floor']:.3f} | "
            f"{run['verl_over_floor']:.3f} |"
        )
    lines += [
        "",
        "Memory of one cached index (fresh child process each; MiB):",
        "",
        "| stage | RSS growth | tracemalloc |",
        "| --- | --- | --- |",
        f"| warm load (index + RepoTools, what the LRU holds) | {mib(rss['load'])} | {mib(traced['load'])} |",
        f"| + the run's lookups (file-lines cache) | {mib(rss['lookups'])} | {mib(traced['lookups'])} |",
        f"| + one search_code (BM25 index) | {mib(rss['search_code'])} | {mib(traced['search_code'])} |",
        "",
        f"Cold build filling the parse cache: {result['cold_build_s']} s; the adapter's first call "
        f"(a warm index load in its build thread, then the call): {result['first_call_warm_load_s']} s.",
        "A worker process with `max_cached_indexes: N` holds up to N such indexes; verl runs one agent-loop "
        "worker process per `actor_rollout_ref.rollout.agent.num_workers`, each with its own cache.",
        "",
        "Reading the memory table: a warm load decodes a file's definitions only when a call needs them, "
        "so an index starts small; the file-lines cache then grows with the files calls read (bounded by "
        "the repository's source size), and the BM25 index of `search_code` is built on its first call "
        "(RSS counts its arrays and allocator pages tracemalloc does not see). Budget the last row per "
        "cached index when `search_code` is offered; the lookups-only row when it is not.",
        "",
        "The machines are shared and their speed drifts within a run (the floor itself ranges over almost "
        "2x across runs): compare the adapter with the floor of the same run, not across runs.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="passes per method per run; the best counts")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    parser.add_argument("--memory-child", choices=["rss", "tracemalloc"], help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.root, args.cache_dir, args.memory_child, args.seed)
        return
    result = bench(args.root, args.runs, args.seed, args.repeat)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    if args.md:
        command = "python eval/bench_verl_tools.py " + " ".join(sys.argv[1:])
        args.md.write_text(markdown(result, command))


if __name__ == "__main__":
    main()
