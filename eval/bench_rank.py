"""How long does the offline default take to localize one issue, and how many issues a minute does a batch
localize, each beside the floor of the same run (BM25 scoring alone: ``EntitySearch.scores`` over the
issue's query tokens on the built index)?

Usage: python eval/bench_rank.py DJANGO_ROOT [--runs 5] [--data ../shared/data] [--mirrors /work/.mirror]
       [--batch 20] [--batch-workers 2] [--json OUT.json] [--work DIR]
       [--lite [--lite-repos DIR] [--lite-snapshots DIR] [--lite-index-cache DIR] [--lite-workers 2]
        [--lite-limit N] [--lite-out FILE]]

DJANGO_ROOT is a Django source tree (the 4.2.16 release: ``pip download --no-deps --no-binary :all:
django==4.2.16``). Every localization runs in a fresh process (``--worker``), as ``reposearcher localize``
does: build or load the index (``build_index`` with its default workers), the search index, the ranking's
maps, one ``RetrievalLocalizer.rank``; the issues are SWE-bench Lite Django problem statements, one per
run in turn. Scenarios, medians of ``--runs`` runs:

- ``warm``: the caches already hold this tree (its snapshot, parses, tokens and matrix) and what each issue
  asks of its history (the past edits of its similar changes: every issue is localized once before timing);
- ``cold``: an empty cache directory per run;
- ``another commit``: the caches hold this tree, and the run localizes in a copy of it (hard links) where
  1 % of the Python files changed (each run a different change, so nothing of a previous run helps);
- ``command``: ``reposearcher localize --repo DJANGO_ROOT --issue F --json`` with the warm caches, the
  whole command as a user runs it (its wall time and CPU time; no phases).

``batch``: ``reposearcher run`` over the first ``--batch`` SWE-bench Lite Django instances from the git
mirrors (``--repos-dir``, ``--repo-alias django/django=apprent1c3/django``, ``--offline``) with
``--batch-workers`` workers, once with empty caches (snapshots, index, search) and once more with the
caches it left; issues per minute from the command's wall time. Its floor is the warm runs' scoring floor
as issues per minute.

``--lite``: ``reposearcher run`` over SWE-bench Lite test (all 300, or the first ``--lite-limit``) with
``--lite-workers`` workers, the repositories from ``--lite-repos`` (clones or mirrors, ``--offline``), the
commit snapshots from ``--lite-snapshots`` and the parse cache in ``--lite-index-cache`` (``warm``: caches
that already hold the commits, as a previous run leaves them; give empty directories for ``cold``). Issues
per minute from the command's wall time, and the CPU seconds per issue of the command and its workers
(less sensitive to a shared machine's load than the wall time); its floor is the warm Django runs'
scoring floor as issues per minute. ``--lite-out`` keeps the predictions (to compare two versions).

To compare two versions of the code, run the same command with PYTHONPATH pointing at each (the worker
uses only APIs both have). The machines are shared: the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_STARTED = time.perf_counter()
PHASES = ("import", "index", "history", "search", "maps", "rank", "in_process", "floor")
DJANGO_ALIAS = "django/django=apprent1c3/django"
CHANGED_SHARE = 0.01


def worker(root: str, cache_dir: str, issue_file: str) -> dict[str, float]:
    """One localization, timed phase by phase (runs in its own process)."""
    from reposearcher_plugin.agent.offline import DEFAULT_MODEL, LEARNED, RETRIEVAL_MODELS
    from reposearcher_plugin.index import ParseCache, build_index
    from reposearcher_plugin.rank import RetrievalLocalizer
    from reposearcher_plugin.rank.learned import packaged_ranker
    from reposearcher_plugin.rank.mentions import cap_issue
    from reposearcher_plugin.tools.tokens import query_tokens
    from reposearcher_plugin.workspace.change_history import HistoryCache, checkout_history

    issue = Path(issue_file).read_text(encoding="utf-8")
    marks = {"import": time.perf_counter()}
    index = build_index(root, cache=ParseCache(cache_dir))
    marks["index"] = time.perf_counter()
    # the offline default as `reposearcher localize` runs it: its ranker, and the checkout's history
    # when the root is in git (none for a release directory)
    # where `reposearcher localize` keeps it with REPOSEARCHER_CACHE=cache_dir: the command scenario's too
    history = checkout_history(Path(root), HistoryCache(Path(cache_dir) / "snapshots" / ".history"))
    marks["history"] = time.perf_counter()
    ranker = packaged_ranker() if RETRIEVAL_MODELS[DEFAULT_MODEL] == LEARNED else None
    localizer = RetrievalLocalizer(index, ranker=ranker, history=history)
    localizer.search.documents  # noqa: B018  (builds or loads the search index)
    marks["search"] = time.perf_counter()
    localizer.maps  # noqa: B018
    marks["maps"] = time.perf_counter()
    localizer.rank(issue)
    marks["rank"] = time.perf_counter()
    tokens = query_tokens(cap_issue(issue)[0])
    floor_started = time.perf_counter()
    localizer.search.scores(tokens)
    floor = time.perf_counter() - floor_started
    times, previous = {}, _STARTED
    for phase, mark in marks.items():
        times[phase] = mark - previous
        previous = mark
    times["in_process"] = marks["rank"] - marks["import"]
    times["floor"] = floor
    times["cpu"] = time.process_time()  # the whole process's, imports included: less sensitive to load
    return times


def _localize(root: Path, cache: Path, issue: Path) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(root), str(cache), str(issue)],
        capture_output=True,
        text=True,
        check=True,
        cwd=issue.parent,  # not a checkout: PYTHONPATH alone says which code runs
    )
    times = json.loads(done.stdout.strip().splitlines()[-1])
    times["process"] = time.perf_counter() - started
    return times


def _changed_copy(root: Path, target: Path, run: int) -> int:
    """``root`` as hard links, with CHANGED_SHARE of its Python files rewritten (run-specific change)."""
    shutil.copytree(root, target, copy_function=os.link, symlinks=True)
    sources = sorted(path for path in target.rglob("*.py") if path.is_file())
    step = max(1, round(1 / CHANGED_SHARE))
    changed = sources[run % step :: step]
    for number, path in enumerate(changed):
        text = path.read_bytes()
        path.unlink()  # a new file, never the linked one
        path.write_bytes(text + f"\n\ndef _bench_change_{run}_{number}():\n    return {run}\n".encode())
    return len(changed)


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = [*PHASES, "process", "cpu"]
    present = [key for key in keys if rows and key in rows[0]]
    return {key: round(statistics.median(row[key] for row in rows), 4) for key in present}


def _issues(data: Path, count: int) -> list[dict[str, Any]]:
    rows = [
        json.loads(line) for line in (data / "swe-bench-lite/test.jsonl").read_text().splitlines() if line
    ]
    return [row for row in rows if row["repo"] == "django/django"][:count]


def _localize_command(root: Path, cache: Path, issue: Path) -> dict[str, float]:
    """``reposearcher localize --json`` as a user runs it: the whole process, wall and CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = ["localize", "--repo", str(root), "--issue", str(issue), "--json"]
    subprocess.run(
        [sys.executable, "-m", "reposearcher_plugin.cli.main", *command],
        capture_output=True,
        check=True,
        cwd=issue.parent,
        env=dict(os.environ, REPOSEARCHER_CACHE=str(cache)),
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"process": wall, "cpu": cpu}


SCENARIOS = ("warm", "cold", "another commit", "command")


def localize_scenarios(
    root: Path, work: Path, issues: list[Path], runs: int, scenarios: tuple[str, ...] = SCENARIOS
) -> dict[str, Any]:
    warm_cache = work / "warm-cache"
    # fills the caches with this tree, and with what each issue asks of its history (the definitions
    # its similar past changes edited, read from git once per commit): warm means nothing is read twice
    for issue in issues[:runs]:
        _localize(root, warm_cache, issue)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in scenarios}
    changed = 0
    for run in range(runs):
        issue = issues[run % len(issues)]
        if "warm" in scenarios:
            results["warm"].append(_localize(root, warm_cache, issue))
        if "command" in scenarios:
            results["command"].append(_localize_command(root, warm_cache, issue))
        if "cold" in scenarios:
            cold_cache = work / f"cold-cache-{run}"
            results["cold"].append(_localize(root, cold_cache, issue))
            shutil.rmtree(cold_cache)
        if "another commit" in scenarios:
            variant = work / f"commit-{run}"
            changed = _changed_copy(root, variant, run)
            results["another commit"].append(_localize(variant, warm_cache, issue))
            shutil.rmtree(variant)
    summary: dict[str, Any] = {name: _median(rows) for name, rows in results.items()}
    summary["changed_files"] = changed
    summary["all"] = {name: [_rounded(row) for row in rows] for name, rows in results.items()}
    return summary


def _rounded(row: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 4) for key, value in row.items()}


def batch(data: Path, mirrors: Path, work: Path, count: int, workers: int) -> dict[str, Any]:
    instances = [row["instance_id"] for row in _issues(data, count)]
    cache = work / "batch-cache"
    out = work / "batch.jsonl"
    figures: dict[str, Any] = {"instances": len(instances), "workers": workers}
    for name in ("cold", "warm"):
        _remove_run_outputs(out)
        command = [
            sys.executable,
            "-m",
            "reposearcher_plugin.cli.main",
            "run",
            "--dataset",
            str(data / "swe-bench-lite/test.jsonl"),
            "--instances",
            ",".join(instances),
            "--out",
            str(out),
            "--repos-dir",
            str(mirrors),
            "--repo-alias",
            DJANGO_ALIAS,
            "--offline",
            "--workers",
            str(workers),
        ]
        started = time.perf_counter()
        environment = dict(os.environ, REPOSEARCHER_CACHE=str(cache))
        subprocess.run(command, env=environment, check=True, capture_output=True, cwd=work)
        wall = time.perf_counter() - started
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        errors = sum(1 for row in rows if row.get("error"))
        figures[name] = {
            "wall_s": round(wall, 2),
            "issues_per_min": round(len(rows) * 60 / wall, 1),
            "errors": errors,
        }
    shutil.rmtree(cache, ignore_errors=True)
    return figures


def lite_batch(
    data: Path,
    repos: Path,
    snapshots: Path,
    index_cache: Path,
    out: Path,
    workers: int,
    limit: int | None,
) -> dict[str, Any]:
    """``reposearcher run`` over SWE-bench Lite test with the given caches: wall, issues/min, CPU/issue."""
    command = [
        sys.executable,
        "-m",
        "reposearcher_plugin.cli.main",
        "run",
        "--dataset",
        str(data / "swe-bench-lite/test.jsonl"),
        "--out",
        str(out),
        "--repos-dir",
        str(repos),
        "--offline",
        "--allow-missing-blobs",  # the fetched astropy mirror lacks two large data blobs Lite needs
        "--workers",
        str(workers),
        "--cache-dir",
        str(snapshots),
        "--max-cache-gb",
        "1000",  # a shared snapshot cache is never evicted by a benchmark
        "--index-cache-dir",
        str(index_cache),
        *(["--limit", str(limit)] if limit else []),
    ]
    _remove_run_outputs(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = _load()
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=out.parent)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"reposearcher run failed ({done.returncode}): {done.stderr[-2000:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "instances": len(rows),
        "workers": workers,
        "wall_s": round(wall, 1),
        "issues_per_min": round(len(rows) * 60 / wall, 1),
        "cpu_s_per_issue": round(cpu / max(1, len(rows)), 3),
        "errors": sum(1 for row in rows if row.get("error")),
        "load_before": load_before,
        "load_after": _load(),
    }


def _remove_run_outputs(out: Path) -> None:
    """A batch's predictions and trajectories from an earlier run, which would make it resume."""
    for stale in (out, out.with_suffix(".trajectories")):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(*sys.argv[2:5])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--batch", type=int, default=20, help="Lite Django instances in the batch (0: none)")
    parser.add_argument("--batch-workers", type=int, default=2)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated: warm and any of cold, another commit, command (`reposearcher localize`)",
    )
    parser.add_argument("--lite", action="store_true", help="also time a SWE-bench Lite test batch")
    parser.add_argument("--lite-repos", type=Path, default=Path("/work/scratch/repos"))
    parser.add_argument("--lite-snapshots", type=Path, help="snapshot cache (default: the user's)")
    parser.add_argument("--lite-index-cache", type=Path, help="parse cache (default: the user's)")
    parser.add_argument("--lite-workers", type=int, default=2)
    parser.add_argument("--lite-limit", type=int, help="only the first N Lite instances")
    parser.add_argument("--lite-out", type=Path, help="keep the batch's predictions here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    import reposearcher_plugin

    summary: dict[str, Any] = {
        "code": str(Path(reposearcher_plugin.__file__).parent),
        "root": str(args.root),
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "load_before": _load(),
    }
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        work = Path(scratch)
        issues = []
        for row in _issues(args.data, 5):
            issue = work / f"{row['instance_id']}.txt"
            issue.write_text(row["problem_statement"], encoding="utf-8")
            issues.append(issue)
        scenarios = tuple(name.strip() for name in args.scenarios.split(",") if name.strip())
        unknown = set(scenarios) - set(SCENARIOS)
        if unknown or "warm" not in scenarios:
            parser.error(f"--scenarios: warm and any of {', '.join(SCENARIOS)} (unknown: {sorted(unknown)})")
        summary["localize"] = localize_scenarios(args.root.resolve(), work, issues, args.runs, scenarios)
        if args.batch and (args.mirrors / "apprent1c3+django").exists():
            summary["batch"] = batch(args.data, args.mirrors, work, args.batch, args.batch_workers)
            floor = summary["localize"]["warm"]["floor"]
            summary["batch"]["floor_issues_per_min"] = round(60 / floor, 1) if floor else None
        if args.lite:
            from reposearcher_plugin.cache_home import default_cache_dir

            out = args.lite_out.resolve() if args.lite_out else work / "lite.jsonl"
            summary["lite"] = lite_batch(
                args.data.resolve(),
                args.lite_repos.resolve(),
                (args.lite_snapshots or default_cache_dir() / "snapshots").resolve(),
                (args.lite_index_cache or default_cache_dir()).resolve(),
                out,
                args.lite_workers,
                args.lite_limit,
            )
            floor = summary["localize"]["warm"]["floor"]
            summary["lite"]["floor_issues_per_min"] = round(60 / floor, 1) if floor else None
    summary["load_after"] = _load()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"code {summary['code']}; load {summary['load_before']} -> {summary['load_after']}")
    columns = [*PHASES, "process", "cpu"]
    print("scenario".ljust(16) + "".join(phase.rjust(11) for phase in columns))
    for name in SCENARIOS:
        figures = summary["localize"].get(name)
        if figures:
            print(name.ljust(16) + "".join(f"{figures.get(key, float('nan')):11.3f}" for key in columns))
    for part in ("batch", "lite"):
        if part in summary:
            print(part, json.dumps(summary[part]))


if __name__ == "__main__":
    main()
