"""How long does one ``find_references`` call take, before and after the index kept each file's words,
beside the floor of the same run? And do both say exactly the same? Usage:

    nice -n 19 python eval/bench_references.py REPO_ROOT [--before OLD_CHECKOUT] [--names 300] [--runs 5]
        [--build] [--json OUT]

``REPO_ROOT`` is a source tree (e.g. ``git --git-dir=MIRROR archive COMMIT | tar -x -C DIR``);
``OLD_CHECKOUT`` a checkout of the code to compare with (``git archive c3091c7 | tar -x -C DIR``: the
scan of every file on every call). Each side runs in its own process with its checkout first on
``PYTHONPATH``, over the same names: random definition names of the index, random identifiers of random
files, and names that occur nowhere (a third each), plus a few common words. Per side: one untimed pass
(it fills the line cache; after, it also builds the word -> files map once per index, timed as "first
pass"), then ``--runs`` timed passes; a call's time is the median of its runs, in CPU seconds (the
machine may be shared). The floor, in the after process: counting the lines that hold the word as a
whole word, with the tool's own test, in only the files that hold it (warm line cache): the scan any
answer needs, without its rendering. Every output of
every name is compared between the sides. ``--build`` adds, per side, a cold build (one worker, so its
CPU time is this process's), the warm load from its snapshot and the snapshot's size: what keeping the
words costs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
COMMON_WORDS = ["self", "return", "None", "x", "_", "__init__", "get", "name", "value", "TODO"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _cpu(action) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def pick_names(root: Path, count: int, seed: int) -> list[str]:
    from reposearcher_plugin.index import build_index

    rng = random.Random(seed)
    index = build_index(root, use_cache=False)
    defined = sorted(index.names())
    paths = sorted(index.files)
    words: set[str] = set()
    for path in rng.sample(paths, min(100, len(paths))):
        words.update(_IDENTIFIER.findall((root / path).read_text(encoding="utf-8", errors="replace")))
    third = count // 3
    names = rng.sample(defined, min(third, len(defined))) + rng.sample(sorted(words), min(third, len(words)))
    names += [f"absent_{number}_{rng.choice(defined)}" for number in range(count - len(names))]
    return names + COMMON_WORDS


def measure(root: Path, names: list[str], runs: int, build: bool) -> dict:
    """One side, in this process: whatever ``reposearcher_plugin`` is first on the path."""
    import reposearcher_plugin
    from reposearcher_plugin.index import ParseCache, build_index
    from reposearcher_plugin.tools.repo_tools import RepoTools, ToolFailure

    figures: dict = {"package": str(Path(reposearcher_plugin.__file__).parent)}
    with tempfile.TemporaryDirectory() as scratch:
        cache = ParseCache(Path(scratch) / "cache")
        if build:
            figures["cold_build_cpu_s"] = _cpu(lambda: build_index(root, cache=cache, workers=1))
            loads = [_cpu(lambda: build_index(root, cache=cache, workers=1)) for _ in range(max(runs, 3))]
            figures["warm_load_cpu_s"] = statistics.median(loads)
            figures["snapshot_bytes"] = len(cache.get_snapshot(str(root.resolve())) or b"")
        index = build_index(root, cache=cache, workers=1)
        tools = RepoTools(index)

        def call(name: str) -> str:
            try:
                return tools.find_references(name)
            except ToolFailure as failure:
                return f"ToolFailure: {failure}"

        outputs: list[str] = []
        figures["first_pass_cpu_s"] = _cpu(lambda: outputs.extend(call(name) for name in names))
        times = [[_cpu(lambda name=name: call(name)) for name in names] for _ in range(runs)]
        figures["per_call_cpu_s"] = [statistics.median(column) for column in zip(*times, strict=True)]
        figures["outputs"] = [hashlib.sha1(output.encode()).hexdigest() for output in outputs]
        if hasattr(index, "files_using"):
            floors = [[_cpu(lambda name=name: _floor(tools, name)) for name in names] for _ in range(runs)]
            figures["floor_cpu_s"] = [statistics.median(column) for column in zip(*floors, strict=True)]
    return figures


def _floor(tools, name: str) -> int:
    """The lines holding the word, counted with the tool's own test, in only the files that hold it."""
    from reposearcher_plugin.tools.repo_tools import _has_whole_word

    word = name.strip().rsplit(".", 1)[-1]
    lines = (line for path in tools.index.files_using(word) for line in tools.lines(path))
    return sum(1 for line in lines if word in line and _has_whole_word(line, word))


def _side(checkout: Path, root: Path, names_file: Path, runs: int, build: bool) -> dict:
    command = [sys.executable, __file__, str(root), "--measure", str(names_file), "--runs", str(runs)]
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [*command, *(["--build"] if build else [])], env=environment, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"the side at {checkout} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def _summary(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(ordered) * 1e3:.3f} | {p90 * 1e3:.3f} | {max(ordered) * 1e3:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--after", type=Path, default=HERE, help="the checkout measured (default: this one)")
    parser.add_argument("--names", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--build", action="store_true", help="also time a cold build and a warm load")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # one side, names from this file
    args = parser.parse_args()
    root = args.root.resolve()
    if args.measure:
        print(json.dumps(measure(root, json.loads(args.measure.read_text()), args.runs, args.build)))
        return
    sys.path.insert(0, str(args.after))
    names = pick_names(root, args.names, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        names_file = Path(scratch) / "names.json"
        names_file.write_text(json.dumps(names))
        sides = {"after": _side(args.after, root, names_file, args.runs, args.build)}
        if args.before:
            sides["before"] = _side(args.before.resolve(), root, names_file, args.runs, args.build)
    print(f"find_references on {root} ({len(names)} names, {args.runs} runs, CPU ms per call)\n")
    print("| | median | p90 | max | first pass (s) |\n| --- | --- | --- | --- | --- |")
    for side in ("before", "after"):
        if side in sides:
            figures = sides[side]
            print(f"| {side} | {_summary(figures['per_call_cpu_s'])} | {figures['first_pass_cpu_s']:.2f} |")
    print(f"| floor | {_summary(sides['after']['floor_cpu_s'])} | |")
    if "before" in sides:
        pairs = zip(sides["before"]["outputs"], sides["after"]["outputs"], strict=True)
        differing = sum(before != after for before, after in pairs)
        print(f"\noutputs of the {len(names)} names that differ between before and after: {differing}")
    if args.build:
        print("\n| | cold build CPU (s) | warm load CPU (s) | snapshot (MB) |\n| --- | --- | --- | --- |")
        for side in ("before", "after"):
            if side in sides:
                figures = sides[side]
                print(
                    f"| {side} | {figures['cold_build_cpu_s']:.2f} | {figures['warm_load_cpu_s']:.3f} | "
                    f"{figures['snapshot_bytes'] / 1e6:.1f} |"
                )
    if args.json:
        args.json.write_text(json.dumps({"root": str(root), "names": names, "sides": sides}, indent=1))


if __name__ == "__main__":
    main()
