"""RepoSearcher with real served models on a fixed set of SWE-bench Lite instances.

Every configuration is one resumable ``reposearcher run`` (rerun the same command after a kill: finished
instances are skipped), then one summary over all of them, beside the offline default on the same
instances. The instances are fixed before any run (``eval/real_models_instances.txt``: the first 20 of
SWE-bench Lite test by sha256 of the instance id); ``hermes`` and ``tooltrain`` run on its first 5.

    python eval/real_models.py run --model qwen2.5-coder-1.5b --api-base http://127.0.0.1:8000/v1 \\
        --repos-dir MIRRORS [--configs native,native-hints,hermes,tooltrain] [--runs-dir DIR]
    python eval/real_models.py summary [--runs-dir DIR] [--out eval/results/real_models]

A configuration's predictions go to ``RUNS/<model>__<config>.jsonl`` (trajectories beside it). The summary
writes, per configuration: strict function and file Recall@5, the share of runs whose answer the model
wrote itself (not the fallback), the fallback share, the invalid and repeated tool-call rates, and the
median turns, tokens and wall time per issue; ``summary.md`` and ``summary.json`` plus one line per run in
``trajectories.jsonl`` (what each run did, without the conversation).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.result import Trajectory
from reposearcher_plugin.evaluation.metrics import evaluate
from reposearcher_plugin.evaluation.readers import read_predictions

HERE = Path(__file__).resolve().parent
INSTANCES_FILE = HERE / "real_models_instances.txt"
DATA = HERE.parent.parent / "shared" / "data" / "swe-bench-lite"
SMALL_SET = 5  # hermes and tooltrain run on the first 5 instances only


@dataclass(frozen=True)
class Configuration:
    name: str
    flags: tuple[str, ...]
    instances: int | None  # None: all of them


CONFIGURATIONS = {
    "native": Configuration("native", ("--tool-format", "native"), None),
    "native-hints": Configuration("native-hints", ("--tool-format", "native", "--hints", "10"), None),
    "hermes": Configuration("hermes", ("--tool-format", "hermes"), SMALL_SET),
    "tooltrain": Configuration("tooltrain", ("--profile", "tooltrain", "--tool-format", "native"), SMALL_SET),
}
DEFAULT_ALIASES = (
    "django/django=apprent1c3/django",
    "matplotlib/matplotlib=williamlus/matplotlib",
    "scikit-learn/scikit-learn=Agent-Benchmarking/scikit-learn",
)


def instance_ids(path: Path = INSTANCES_FILE) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def run_configuration(args: argparse.Namespace, configuration: Configuration) -> int:
    ids = instance_ids()[: configuration.instances][: args.first]
    out = Path(args.runs_dir) / f"{args.model}__{configuration.name}.jsonl"
    command = [
        sys.executable, "-m", "reposearcher_plugin.cli.main", "run",
        "--dataset", str(args.dataset), "--instances", ",".join(ids), "--out", str(out),
        "--model", f"openai/{args.model}", "--api-base", args.api_base,
        "--max-wall", str(args.max_wall), "--retry-errors",
        *configuration.flags, *args.extra,
    ]  # fmt: skip
    for repos_dir in args.repos_dir:
        command += ["--repos-dir", repos_dir]
    for alias in args.repo_alias or DEFAULT_ALIASES:
        command += ["--repo-alias", alias]
    print("+", shlex.join(command), flush=True)
    return subprocess.call(command)


def cmd_run(args: argparse.Namespace) -> int:
    Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
    status = 0
    for name in args.configs.split(","):
        if name not in CONFIGURATIONS:
            raise SystemExit(f"unknown configuration {name!r}; choose from {', '.join(CONFIGURATIONS)}")
        status = run_configuration(args, CONFIGURATIONS[name]) or status
    return status


# --- the summary -----------------------------------------------------------------------------------------


def trajectory_of(row: dict[str, Any], predictions: Path) -> Trajectory | None:
    stored = row.get("trajectory")
    if isinstance(stored, dict):
        return Trajectory.from_dict(stored)
    if isinstance(stored, str):
        path = Path(stored)
        for candidate in (path, predictions.parent / path):
            if candidate.is_file():
                return Trajectory.read(candidate)
    return None


def run_facts(row: dict[str, Any], trajectory: Trajectory | None) -> dict[str, Any]:
    """What one run did: its answer's source, its calls, its cost."""
    usage = row.get("usage") or {}
    calls = [call for step in trajectory.steps for call in step.calls] if trajectory else []
    answered = bool(row.get("locations")) and trajectory is not None and trajectory.fallback is None
    return {
        "instance_id": row["instance_id"],
        "answered": answered,
        "fallback": trajectory.fallback if trajectory else None,
        "error": row.get("error"),
        "locations": len(row.get("locations") or []),
        "turns": usage.get("turns", 0),
        "tool_calls": len(calls),
        "invalid_calls": sum(1 for call in calls if not call.ok),
        "repeated_calls": sum(1 for call in calls if call.repeated),
        "tokens": int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
        "wall_s": float(usage.get("wall_s", 0.0)),
        "notes": [step.note for step in trajectory.steps if step.note] if trajectory else [],
    }


def score(predictions: Path, ids: list[str], gold: dict[str, list[str]]) -> dict[str, float | None]:
    found, _ = read_predictions(predictions, known_ids=ids)
    scores = evaluate(found, {key: gold[key] for key in ids if key in gold}, "strict").percentages()
    return {"function_recall@5": scores["function"]["recall@5"], "file_recall@5": scores["file"]["recall@5"]}


def summarize(predictions: Path, gold: dict[str, list[str]], baseline: Path | None) -> dict[str, Any]:
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()]
    facts = [run_facts(row, trajectory_of(row, predictions)) for row in rows]
    ids = [fact["instance_id"] for fact in facts]
    calls = sum(fact["tool_calls"] for fact in facts)

    def median(key: str) -> float:
        return round(statistics.median(fact[key] for fact in facts), 1) if facts else 0.0

    summary = {
        "runs": len(facts),
        **score(predictions, ids, gold),
        "answered_share": _share(sum(fact["answered"] for fact in facts), len(facts)),
        "fallback_share": _share(sum(fact["fallback"] is not None for fact in facts), len(facts)),
        "error_share": _share(sum(fact["error"] is not None for fact in facts), len(facts)),
        "invalid_call_rate": _share(sum(fact["invalid_calls"] for fact in facts), calls),
        "repeated_call_rate": _share(sum(fact["repeated_calls"] for fact in facts), calls),
        "median_turns": median("turns"),
        "median_tool_calls": median("tool_calls"),
        "median_tokens": median("tokens"),
        "median_wall_s": median("wall_s"),
        "completion_tokens_per_s": round(
            sum(f["completion_tokens"] for f in facts) / max(1e-9, sum(f["wall_s"] for f in facts)), 2
        ),
    }
    if baseline is not None and baseline.is_file():
        summary["offline_default_same_instances"] = score(baseline, ids, gold)
    return {"summary": summary, "facts": facts}


def _share(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


COLUMNS = (
    ("runs", "runs"),
    ("function_recall@5", "fn R@5"),
    ("file_recall@5", "file R@5"),
    ("answered_share", "answered %"),
    ("fallback_share", "fallback %"),
    ("error_share", "error %"),
    ("invalid_call_rate", "invalid calls %"),
    ("repeated_call_rate", "repeated calls %"),
    ("median_turns", "turns"),
    ("median_tool_calls", "calls"),
    ("median_tokens", "tokens"),
    ("median_wall_s", "wall s"),
)


def cmd_summary(args: argparse.Namespace) -> int:
    gold = json.loads(Path(args.gold).read_text(encoding="utf-8"))
    runs = Path(args.runs_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    baseline = runs / "retrieval.jsonl"
    results: dict[str, Any] = {}
    trajectories = []
    for predictions in sorted(runs.glob("*__*.jsonl")):
        name = predictions.stem
        summarized = summarize(predictions, gold, baseline)
        results[name] = summarized["summary"]
        trajectories += [{"configuration": name, **fact} for fact in summarized["facts"]]
    if baseline.is_file():
        results["offline-default"] = {"runs": len(instance_ids()), **score(baseline, instance_ids(), gold)}
    lines = [
        "# RepoSearcher with real models: SWE-bench Lite, fixed instances (eval/real_models_instances.txt)",
        "",
        "Strict protocol, Recall@5 in percent over the configuration's instances (20, or the first 5 for",
        "hermes / tooltrain); medians per issue. `answered`: the model wrote a readable answer; `fallback`:",
        "the result is the locations its tool calls returned, ranked by the offline default.",
        "",
        "| configuration | "
        + " | ".join(label for _, label in COLUMNS)
        + " | offline default fn R@5 (same) |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for name, summary in results.items():
        same = summary.get("offline_default_same_instances", {}).get("function_recall@5", "")
        cells = [_cell(summary.get(key)) for key, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_cell(same)} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    with (out / "trajectories.jsonl").open("w", encoding="utf-8") as sink:
        sink.writelines(json.dumps(fact) + "\n" for fact in trajectories)
    print("\n".join(lines))
    return 0


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run configurations (resumable)")
    run.add_argument("--model", required=True, help="the served model name, e.g. qwen2.5-coder-1.5b")
    run.add_argument("--api-base", required=True)
    run.add_argument("--configs", default="native,native-hints,hermes,tooltrain")
    run.add_argument("--repos-dir", action="append", required=True)
    run.add_argument("--repo-alias", action="append")
    run.add_argument("--dataset", default=str(DATA / "test.jsonl"))
    run.add_argument("--runs-dir", default="eval/results/real_models/runs")
    run.add_argument("--max-wall", type=float, default=900.0)
    run.add_argument("--first", type=int, help="only the first N of each configuration's instances")
    run.add_argument("extra", nargs="*", help="more `reposearcher run` flags, after --")
    run.set_defaults(handler=cmd_run)
    summary = commands.add_parser("summary", help="tables over every configuration run so far")
    summary.add_argument("--runs-dir", default="eval/results/real_models/runs")
    summary.add_argument("--gold", default=str(DATA / "gold_functions.json"))
    summary.add_argument("--out", default="eval/results/real_models")
    summary.set_defaults(handler=cmd_summary)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
