"""Time to read hostile text: model output through the answer parser and the reward, issue text through
the offline default's mention extractor, at 10 KB, 100 KB and 1 MB, beside a floor measured on the same text.

Usage: python eval/bench_hostile_text.py [--runs 5] [--issues FILE.jsonl] [--md OUT.md] [--json OUT.json]
       [--only FUNCTION ...]

Every shape is one that took quadratic time before issue 12 (item 4) or stresses a pattern that could:
many unclosed ``<think>`` / ``<tool_call>``, a user turn of many tool results, a deep ``[``, one long word,
blank-padded call lines, and for issues long words, many error-message lines (with unclosed brackets and
path words), tracebacks, dotted and slashed chains, plus real issues (SWE-bench Lite / Loc-Bench problem
statements, concatenated) when ``--issues`` names a file of them. Times are CPU seconds of this process
(``time.process_time``): the machine is shared, and wall-clock time would add the waits for a core. Each
figure is the median of ``--runs`` runs. ``linearity`` is the time per byte at 1 MB over the time per byte
at 10 KB (1.0 = linear; below 1 where fixed costs dominate the small size). The floor is
``re.findall(r"\\w+")`` over the same 1 MB, run right after each run of the function: one
regular-expression pass, the least any reader of the text pays. ``RetrievalLocalizer.rank`` (this
repository's own index) shows the input cap: past MAX_RANKED_ISSUE_CHARS the time stops growing.
A case that is already slow at 100 KB and grows faster than linearly is not run at 1 MB (marked so).
``--only`` keeps the rows of the functions named (``extract_mentions``, ``RetrievalLocalizer.rank``, ...).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.parse import parse_answer
from reposearcher_plugin.agent.tool_calls import hermes_tool_calls, loose_tool_calls
from reposearcher_plugin.rank import MAX_RANKED_ISSUE_CHARS, extract_mentions
from reposearcher_plugin.rl.reward import compute_score

SIZES = (10_000, 100_000, 1_000_000)
GOAL_S_PER_MB = 0.2
# run from the repository root with ../shared/data beside it (eval/results/README.md)
DEFAULT_ISSUES = Path("../shared/data/swe-bench-lite/test.jsonl")
LOOSE_TOOLS = {"search_code": ["query"], "show_code": ["path"], "search_class": ["class_name"]}
_FLOOR = re.compile(r"\w+")


def repeated(unit: str, size: int, head: str = "", tail: str = "") -> str:
    body = size - len(head) - len(tail)
    return head + (unit * (body // len(unit) + 1))[:body] + tail


def distinct_lines(pattern: str, size: int, head: str = "", tail: str = "") -> str:
    body = size - len(head) - len(tail)
    lines: list[str] = []
    length = 0
    while length < body:
        lines.append(pattern.format(len(lines)))
        length += len(lines[-1]) + 1
    return head + "\n".join(lines)[:body] + tail


MODEL_OUTPUT: dict[str, Callable[[int], str]] = {
    "unclosed <think>": lambda n: repeated("<think>", n),
    "unclosed <tool_call>": lambda n: repeated("<tool_call>", n),
    "one user turn of tool results": lambda n: repeated(
        "<tool_response>\nok\n</tool_response>\n", n, head="assistant\nlooking\nuser\n"
    ),
    "deep [": lambda n: repeated("[", n),
    "deep [ in a fence": lambda n: repeated("[", n, head="```json\n", tail="\n```"),
    "one long word": lambda n: repeated("a", n),
    "blank-padded call lines": lambda n: repeated('search_code("x")' + " " * 2000 + "x\n", n),
    "long answer (normal)": lambda n: repeated(
        "pkg/module.py\nfunction: Class.method\n", n, head="```\n", tail="\n```"
    ),
    # no line twice, so reading each distinct line once saves nothing
    "distinct dotted lines in a fence": lambda n: distinct_lines(
        "see a.b then line {}", n, head="```\n", tail="\n```"
    ),
}
ISSUES: dict[str, Callable[[int], str]] = {
    "one long word": lambda n: repeated("a", n),
    "16 KB words then (": lambda n: repeated("a" * 16_000 + " (", n),
    "error lines, unclosed brackets": lambda n: repeated("ValueError: " + "(" * 100 + "<[{" * 60 + "\n", n),
    "error lines, path words": lambda n: repeated(
        "E   TypeError: cannot read 'a b' (x) 1.5 of pkg/mod.py here " + "w" * 200 + "\n", n
    ),
    "tracebacks": lambda n: repeated('  File "pkg/sub/module.py", line 123, in some_function\n', n),
    "dotted chain": lambda n: repeated("a.", n),
    "slashed chain": lambda n: repeated("a/", n, tail=".py"),
    "backticks and fences": lambda n: repeated("`x` ``` ``", n),
}


def model_output_functions() -> dict[str, Callable[[str], Any]]:
    return {
        "parse_answer": parse_answer,
        "hermes_tool_calls": hermes_tool_calls,
        "loose_tool_calls": lambda text: loose_tool_calls(text, LOOSE_TOOLS),
        "compute_score": lambda text: compute_score("reposearcher", text, ["pkg/module.py::Class.method"]),
    }


def cpu_seconds(function: Callable[[str], Any], text: str) -> float:
    started = time.process_time()
    function(text)
    return time.process_time() - started


def measure(function: Callable[[str], Any], make: Callable[[int], str], runs: int) -> dict[str, Any]:
    seconds: dict[int, float | None] = {}
    floor = None
    for size in SIZES:
        text = make(size)
        if size == SIZES[-1] and seconds[SIZES[1]] is not None:
            grown = seconds[SIZES[1]] / max(seconds[SIZES[0]], 1e-6)
            if seconds[SIZES[1]] > 1.0 and grown > 30:  # quadratic: 1 MB would take minutes
                seconds[size] = None
                continue
        times, floors = [], []
        for _ in range(runs):
            times.append(cpu_seconds(function, text))
            if size == SIZES[-1]:
                floors.append(cpu_seconds(_FLOOR.findall, text))
        seconds[size] = statistics.median(times)
        floor = statistics.median(floors) if floors else None
    small, big = seconds[SIZES[0]], seconds[SIZES[-1]]
    return {
        "seconds": {str(size): value for size, value in seconds.items()},
        "s_per_mb": None if big is None else big * 1_000_000 / SIZES[-1],
        "linearity": None if big is None or not small else (big / SIZES[-1]) / (small / SIZES[0]),
        "floor_s": floor,
        "to_floor": None if big is None or not floor else big / floor,
    }


def retrieval_ranker() -> Callable[[str], Any]:
    from reposearcher_plugin.index import build_index
    from reposearcher_plugin.rank import RetrievalLocalizer

    package = Path(__file__).resolve().parents[1] / "reposearcher_plugin"
    index = build_index(package, use_cache=False, workers=1)
    ranker = RetrievalLocalizer(index)
    ranker.rank("warm up: build the BM25 index once")
    return ranker.rank


def real_issues(path: Path | None) -> str | None:
    if path is None or not path.exists():
        return None
    texts = [json.loads(line)["problem_statement"] for line in path.read_text().splitlines() if line]
    return "\n\n".join(texts)


def run(runs: int, issues_file: Path | None, only: set[str] | None = None) -> list[dict[str, Any]]:
    def wanted(name: str) -> bool:
        return only is None or name in only

    rows: list[dict[str, Any]] = []
    for name, function in model_output_functions().items():
        if not wanted(name):
            continue
        for shape, make in MODEL_OUTPUT.items():
            rows.append({"function": name, "shape": shape, **measure(function, make, runs)})
            print(f"{name:18s} {shape:32s} {rows[-1]['s_per_mb']}", file=sys.stderr, flush=True)
    issue_shapes = dict(ISSUES)
    corpus = real_issues(issues_file)
    if corpus:
        issue_shapes["real issues (normal)"] = lambda n: repeated(corpus, n)
    for shape, make in issue_shapes.items():
        if not wanted("extract_mentions"):
            break
        row = measure(extract_mentions, make, runs)
        rows.append({"function": "extract_mentions", "shape": shape, **row})
        print(f"extract_mentions   {shape:32s} {rows[-1]['s_per_mb']}", file=sys.stderr, flush=True)
    if not wanted("RetrievalLocalizer.rank"):
        return rows
    rank = retrieval_ranker()
    for shape in ("one long word", "real issues (normal)"):
        if shape in issue_shapes:
            row = measure(rank, issue_shapes[shape], runs)
            rows.append({"function": "RetrievalLocalizer.rank", "shape": shape, **row})
    return rows


def seconds_text(value: float | None) -> str:
    return "not run (quadratic)" if value is None else f"{value:.4f}"


def markdown(rows: list[dict[str, Any]], runs: int, command: str) -> str:
    lines = [
        "# Reading hostile text: parser, reward and mention extractor at 10 KB / 100 KB / 1 MB",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Median of {runs} runs per cell, CPU seconds of the process (`time.process_time`: the machine is "
        "shared, wall-clock would add the waits for a core). `linearity` = time per byte at 1 MB / at 10 KB "
        '(1.0 is linear). Floor: `re.findall(r"\\w+")` over the same 1 MB text, right after each run. '
        f"Goal: under {GOAL_S_PER_MB} s per MB, linear. `RetrievalLocalizer.rank` reads at most "
        f"{MAX_RANKED_ISSUE_CHARS:,} characters (MAX_RANKED_ISSUE_CHARS) and says so in its evidence.",
        "",
        "| function | shape | 10 KB | 100 KB | 1 MB | s per MB | linearity | floor 1 MB | / floor | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        seconds = row["seconds"]
        per_mb = row["s_per_mb"]
        goal = "-" if per_mb is None else ("yes" if per_mb < GOAL_S_PER_MB else "no")
        cells = [
            row["function"],
            row["shape"],
            *(seconds_text(seconds[str(size)]) for size in SIZES),
            seconds_text(per_mb),
            "-" if row["linearity"] is None else f"{row['linearity']:.2f}",
            "-" if row["floor_s"] is None else f"{row['floor_s']:.4f}",
            "-" if row["to_floor"] is None else f"{row['to_floor']:.1f}",
            goal,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--issues", type=Path, default=DEFAULT_ISSUES, help="JSONL with problem_statement")
    parser.add_argument("--md", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="+", metavar="FUNCTION", help="measure only these functions")
    args = parser.parse_args(argv)
    rows = run(args.runs, args.issues, set(args.only) if args.only else None)
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python eval/bench_hostile_text.py", *given])
    text = markdown(rows, args.runs, command)
    print(text)
    if args.md:
        args.md.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
