"""Write everything the offline default computes from real issues to one JSON file, so that two versions
of the code can be compared byte for byte (a refactor or a speed-up must not change a single ranking).

Usage: nice -n 19 python eval/check_ranking_identity.py OUT.json [--data ../shared/data]
       [--mirrors /work/.mirror] [--work /tmp/rank-identity] [--no-rank]

Then ``cmp OLD.json NEW.json``. Keys are written in the order the code made them (no sorting), so a
change in the order of a dict in the evidence shows too. To get OLD.json, run this same script with
PYTHONPATH pointing at an export of the old code (``git archive <commit> | tar -x -C /tmp/old``, and run
from outside the worktree, or the worktree's package is imported first); it imports the ranking from
wherever that code keeps it (``reposearcher_plugin.rank`` or, before issue 14,
``reposearcher_plugin.agent.retrieval``).

What it writes:

1. ``mentions``: ``extract_mentions`` (as a dict) of every issue text in the data directory: the
   ``problem_statement`` and ``hints_text`` of SWE-bench Lite test and dev and the ``problem_statement`` of
   Loc-Bench, keyed ``<file>:<instance_id>:<field>``.
2. ``rankings``: ``RetrievalLocalizer(index).rank(problem_statement)`` (files, locations, evidence) for the
   SWE-bench Lite instances in INSTANCES, whose repositories are git mirrors under ``--mirrors``. Each base
   commit is exported once (``git archive``) under ``--work`` and kept there, and indexed with the
   package's own builder through a parse cache under ``--work``, so a second run (the other version of the
   code) reads its parses from that cache instead of parsing again.

It runs on one core (no index workers); run it under ``nice -n 19`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reposearcher_plugin.index import ParseCache, build_index

try:
    from reposearcher_plugin.rank import RetrievalLocalizer, extract_mentions
except ImportError:  # the code before issue 14 (move 3), for the "before" side of the comparison
    from reposearcher_plugin.agent.retrieval import RetrievalLocalizer, extract_mentions  # type: ignore

ISSUE_FILES = {
    "swe-bench-lite/test.jsonl": ("problem_statement", "hints_text"),
    "swe-bench-lite/dev.jsonl": ("problem_statement", "hints_text"),
    "loc-bench/test.jsonl": ("problem_statement",),
}
# 25 SWE-bench Lite test instances from the five mirrored repositories that are quickest to index, chosen
# to include the longest issues of each (pytest-7490, pylint-7080, sympy-21171) and two sharing a commit.
INSTANCES = (
    "pytest-dev__pytest-5221",
    "pytest-dev__pytest-11148",
    "pytest-dev__pytest-11143",
    "pytest-dev__pytest-8906",
    "pytest-dev__pytest-7168",
    "pytest-dev__pytest-7490",
    "pytest-dev__pytest-5413",
    "sympy__sympy-21171",
    "sympy__sympy-20590",
    "sympy__sympy-16792",
    "sympy__sympy-15345",
    "sympy__sympy-15346",
    "pydata__xarray-4493",
    "pydata__xarray-3364",
    "pydata__xarray-4094",
    "pydata__xarray-4248",
    "pydata__xarray-5131",
    "mwaskom__seaborn-2848",
    "mwaskom__seaborn-3010",
    "mwaskom__seaborn-3190",
    "mwaskom__seaborn-3407",
    "pylint-dev__pylint-7228",
    "pylint-dev__pylint-7114",
    "pylint-dev__pylint-7080",
    "pylint-dev__pylint-5859",
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def all_mentions(data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fields in ISSUE_FILES.items():
        for row in read_jsonl(data / name):
            for field_name in fields:
                text = row.get(field_name) or ""
                out[f"{name}:{row['instance_id']}:{field_name}"] = asdict(extract_mentions(text))
    return out


def snapshot(mirrors: Path, work: Path, repo: str, commit: str) -> Path:
    """The repository at ``commit``, exported once from its bare mirror and kept for later runs."""
    target = work / "snapshots" / f"{repo.replace('/', '+')}@{commit}"
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    archive = subprocess.Popen(["git", f"--git-dir={git_dir}", "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {commit} failed for {repo}")
    (target / ".complete").touch()
    return target


def all_rankings(data: Path, mirrors: Path, work: Path) -> dict[str, Any]:
    rows = {row["instance_id"]: row for row in read_jsonl(data / "swe-bench-lite/test.jsonl")}
    cache = ParseCache(work / "parse-cache")
    localizers: dict[str, Any] = {}  # one index per snapshot
    out: dict[str, Any] = {}
    for instance_id in INSTANCES:
        row = rows[instance_id]
        root = snapshot(mirrors, work, row["repo"], row["base_commit"])
        key = str(root)
        if key not in localizers:
            print(f"indexing {root.name}", file=sys.stderr, flush=True)
            localizers[key] = RetrievalLocalizer(build_index(root, cache=cache, workers=1))
        ranking = localizers[key].rank(row["problem_statement"])
        out[instance_id] = {
            "files": ranking.files,
            "locations": ranking.locations,
            "evidence": ranking.evidence,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/rank-identity"))
    parser.add_argument("--no-rank", action="store_true", help="mentions only (no snapshots, no index)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"mentions": all_mentions(args.data)}
    print(f"{len(result['mentions'])} issue texts", file=sys.stderr, flush=True)
    if not args.no_rank:
        result["rankings"] = all_rankings(args.data, args.mirrors, args.work)
        print(f"{len(result['rankings'])} rankings", file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
