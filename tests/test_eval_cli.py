"""`reposearcher eval loc` end to end, as users run it (the installed command, in a subprocess), and the
bootstrap behind its intervals."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reposearcher_plugin.evaluation.metrics import LevelScores, SystemScores
from reposearcher_plugin.evaluation.report import bootstrap
from tests.conftest import git, needs_shared_data, write_tree

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LITE = SHARED / "swe-bench-lite"
LITE_BASELINES = SHARED / "baselines" / "swe-bench-lite"

GOLD = {
    "i1": ["a.py::A.f", "b.py::g"],
    "i2": ["c.py::h", "c.py"],
    "i3": ["d.py::D.m"],
}
# Agentless-style; i3 missing; plus a malformed line and an instance the dataset lacks
SYSTEM_A = [
    {
        "instance_id": "i1",
        "found_files": ["a.py", "x.py"],
        "found_related_locs": {"a.py": ["function: A.f"], "x.py": ["function: g"]},
    },
    {"instance_id": "i2", "found_files": ["c.py"], "found_related_locs": {"c.py": ["function: h"]}},
    "{oops",
    {"instance_id": "elsewhere", "found_files": ["q.py"]},
]
# LocAgent-style
SYSTEM_B = [
    {
        "instance_id": "i1",
        "found_files": ["b.py", "a.py"],
        "found_modules": ["b.py:g", "a.py:A"],
        "found_entities": ["b.py:g", "a.py:A.f"],
    },
    {"instance_id": "i2", "found_files": ["z.py"], "found_entities": []},
    {"instance_id": "i3", "found_files": ["d.py"], "found_entities": ["d.py:D.m"]},
]


def reposearcher(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["reposearcher", *args], capture_output=True, text=True, env=dict(os.environ, **(env or {}))
    )


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


@pytest.fixture
def small(tmp_path: Path) -> dict[str, Path]:
    rows = [
        {"instance_id": i, "repo": "o/r", "base_commit": "c0", "problem_statement": "p"}
        for i in ("i1", "i2", "i3")
    ]
    (tmp_path / "gold.json").write_text(json.dumps(GOLD))
    return {
        "dataset": write_jsonl(tmp_path / "dataset.jsonl", rows),
        "gold": tmp_path / "gold.json",
        "a": write_jsonl(tmp_path / "sysA.jsonl", SYSTEM_A),
        "b": write_jsonl(tmp_path / "sysB.jsonl", SYSTEM_B),
    }


def eval_loc(
    small: dict[str, Path], *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return reposearcher(
        "eval", "loc", "--dataset", str(small["dataset"]), "--gold", str(small["gold"]),
        "--predictions", str(small["a"]), str(small["b"]), *extra, env=env,
    )  # fmt: skip


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-3)


def test_json_strict(small):
    done = eval_loc(small, "--json", "--bootstrap", "200")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result) == ["sysA", "sysB"]
    a, b = result["sysA"], result["sysB"]
    assert a["n"] == 3 and a["n_scored"] == {"file": 3, "module": 3, "function": 3}
    # sysA: i1 [a, x] vs {a, b}; i2 [c] vs {c}; i3 nothing
    assert a["file"]["recall@5"] == approx((1 / 2 + 1 + 0) / 3 * 100)
    assert a["file"]["acc@5"] == approx((0 + 1 + 0) / 3 * 100)
    assert a["file"]["empty"] == approx(1 / 3 * 100)
    # x.py::g is not b.py::g under strict
    assert a["function"]["recall@5"] == approx((1 / 2 + 1 + 0) / 3 * 100)
    assert a["function"]["mrr"] == approx((1 + 1 + 0) / 3 * 100)
    assert a["module"]["recall@5"] == approx((1 / 2 + 1 + 0) / 3 * 100)
    # sysB: i1 [b, a] vs {a, b}; i2 [z] vs {c}; i3 [d] vs {d}
    assert b["file"]["recall@5"] == approx((1 + 0 + 1) / 3 * 100)
    assert b["file"]["acc@1"] == approx((0 + 0 + 1) / 3 * 100)
    assert b["function"]["recall@5"] == approx((1 + 0 + 1) / 3 * 100)
    assert b["function"]["empty"] == approx(1 / 3 * 100)
    diagnostics = a["diagnostics"]
    assert [diagnostics[key] for key in ("malformed_lines", "unknown_ids", "missing_ids")] == [1, 1, 1]
    assert diagnostics["examples"]["unknown_ids"] == ["elsewhere"]
    assert result["sysB"]["diagnostics"]["missing_ids"] == 0
    # intervals hold the estimate; the difference is paired against the first system
    low, high = a["ci95"]["file"]["recall@5"]
    assert low <= a["file"]["recall@5"] <= high
    assert b["difference_from"] == "sysA" and "difference_ci95" not in a
    low, high = b["difference_ci95"]["file"]["recall@5"]
    assert low <= b["file"]["recall@5"] - a["file"]["recall@5"] <= high


def test_json_tooltrain(small):
    done = eval_loc(small, "--json", "--protocol", "tooltrain", "--bootstrap", "0")
    assert done.returncode == 0, done.stderr
    a, b = json.loads(done.stdout).values()
    assert a["module"] == {} and a["n_scored"] == {"file": 3, "function": 3}
    assert "ci95" not in a
    # names without files: x.py's g now matches the gold g
    assert a["function"]["recall@5"] == approx((1 + 1 + 0) / 3 * 100)
    assert a["file"]["acc@1"] == approx((1 + 1 + 0) / 3 * 100)  # a hit is enough
    assert a["file"]["recall@5"] == approx((1 / 2 + 1 + 0) / 3 * 100)
    assert b["function"]["recall@5"] == approx((1 + 0 + 1) / 3 * 100)
    assert "precision@5" not in a["file"]


def test_markdown_tables_and_plot(small, tmp_path):
    plot = tmp_path / "plots" / "recall.png"
    done = eval_loc(
        small, "--markdown", "--bootstrap", "100", "--plot", str(plot), "--metrics", "recall@1,map"
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "# Localization — protocol `strict`" in text
    for level in ("File", "Module", "Function"):
        assert f"## {level} level (3 instances scored)" in text
    assert "| system | recall@1 | map |" in text
    assert "| sysA | 50.0 (" in text  # file recall@1: (1/2 + 1 + 0) / 3
    assert "Difference from `sysA`" in text
    assert "| sysA | 2 | 1 | 0 | 0 | 1 | 1 | 0 |" in text  # the input table: 2 kept, 1 missing, ...
    assert "`sysA`: 1 malformed lines" in text
    assert f"wrote {plot}" in done.stderr
    import matplotlib.image

    image = matplotlib.image.imread(plot)
    assert image.shape[0] > 400 and image.shape[1] > 1000  # three panels side by side


def test_default_output_is_a_table_for_people(small):
    done = eval_loc(small, "--bootstrap", "50", env={"COLUMNS": "160"})
    assert done.returncode == 0, done.stderr
    assert "file level (3 instances scored)" in done.stdout
    assert "sysA" in done.stdout and "recall@5" in done.stdout
    assert "1 malformed lines" in done.stdout


def test_errors_are_one_line_and_exit_2(small, tmp_path):
    other = tmp_path / "other_gold.json"
    other.write_text(json.dumps({"i1": [], "i9": []}))
    mismatch = reposearcher(
        "eval",
        "loc",
        "--dataset",
        str(small["dataset"]),
        "--gold",
        str(other),
        "--predictions",
        str(small["a"]),
    )
    assert mismatch.returncode == 2
    assert "2 dataset instances have no gold (first: i2, i3)" in mismatch.stderr
    assert "1 gold instances are not in the dataset (first: i9)" in mismatch.stderr
    assert "Traceback" not in mismatch.stderr
    missing = eval_loc(small, "--predictions", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "predictions file not found" in missing.stderr
    bad_metric = eval_loc(small, "--metrics", "recall")
    assert bad_metric.returncode == 2 and "unknown metric 'recall'" in bad_metric.stderr
    bad_protocol = eval_loc(small, "--protocol", "paper")
    assert bad_protocol.returncode == 2 and "invalid choice" in bad_protocol.stderr


def test_inputs_that_produce_nothing_useful_are_errors_not_zero_tables(small, tmp_path):
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"id": "i1", "answer": "a.py"}] * 3 + ["{oops"])
    done = reposearcher(
        "eval", "loc", "--dataset", str(small["dataset"]), "--gold", str(small["gold"]),
        "--predictions", str(wrong),
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "none of its 4 non-empty lines is a prediction (line 1: " in done.stderr
    assert "docs/formats.md" in done.stderr and done.stdout == ""
    plot = eval_loc(small, "--plot", str(tmp_path / "x.txt"))
    assert plot.returncode == 2 and "Traceback" not in plot.stderr
    assert "name it .png, .svg or .pdf" in plot.stderr and plot.stdout == ""  # before any table


@pytest.mark.skipif(
    importlib.util.find_spec("reposearcher_plugin.evaluation.gold") is None,
    reason="deriving gold from patches needs reposearcher_plugin.evaluation.gold",
)
def test_without_gold_file_gold_comes_from_the_patch(tmp_path):
    repo = write_tree(
        tmp_path / "repos" / "o__r", {"m.py": "def f():\n    return 1\n\n\ndef g():\n    return 2\n"}
    )
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    patch = "--- a/m.py\n+++ b/m.py\n@@ -5,2 +5,2 @@\n def g():\n-    return 2\n+    return 3\n"
    row = {
        "instance_id": "o__r-1",
        "repo": "o/r",
        "base_commit": base,
        "problem_statement": "p",
        "patch": patch,
    }
    dataset = write_jsonl(tmp_path / "d.jsonl", [row])
    preds = write_jsonl(
        tmp_path / "p.jsonl", [{"instance_id": "o__r-1", "locations": ["m.py::f", "m.py::g"]}]
    )
    done = reposearcher(
        "eval", "loc", "--dataset", str(dataset), "--repos-dir", str(tmp_path / "repos"),
        "--predictions", str(preds), "--json", "--bootstrap", "0",
        env={"REPOSEARCHER_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    function = json.loads(done.stdout)["p"]["function"]
    assert function["recall@1"] == 0.0 and function["recall@3"] == 100.0 and function["mrr"] == 50.0


@needs_shared_data
def test_real_lite_baselines_match_numbers_checked_by_hand():
    """Numbers recomputed independently from the raw files (see eval/results/README.md):
    CoSIL-32B function recall@5: tooltrain 54.75 (also what ToolTrain's script gives), strict 55.375
    over the 293 instances with gold entities; LocAgent-Claude strict function recall@5 69.738;
    OrcaLoca-14B tooltrain file acc@1 130/300 (one './sympy/...' path misses as written)."""
    names = ["cosil_qwen2.5-coder-32b", "locagent_claude-3-5", "orcaloca_qwen2.5-coder-14b"]
    common = ["--dataset", str(LITE / "test.jsonl"), "--gold", str(LITE / "gold_functions.json"), "--json"]
    common += ["--bootstrap", "0", "--predictions", *(str(LITE_BASELINES / f"{n}.jsonl") for n in names)]
    strict = json.loads(reposearcher("eval", "loc", *common).stdout)
    tooltrain = json.loads(reposearcher("eval", "loc", *common, "--protocol", "tooltrain").stdout)
    assert tooltrain["cosil_qwen2.5-coder-32b"]["function"]["recall@5"] == approx(54.75)
    assert strict["cosil_qwen2.5-coder-32b"]["function"]["recall@5"] == approx(55.3754)
    assert strict["locagent_claude-3-5"]["function"]["recall@5"] == approx(69.7383)
    assert strict["locagent_claude-3-5"]["n_scored"] == {"file": 300, "module": 293, "function": 293}
    assert tooltrain["orcaloca_qwen2.5-coder-14b"]["file"]["acc@1"] == approx(130 / 300 * 100)
    assert all(system["diagnostics"]["malformed_lines"] == 0 for system in strict.values())


# ---------------------------------------------------------------------------------------------------
# The bootstrap behind the intervals


def one_level_system(values: list[float]) -> SystemScores:
    ids = tuple(f"i{number}" for number in range(len(values)))
    level = LevelScores("file", ids, {"recall@5": np.asarray(values, dtype=float)})
    return SystemScores("strict", len(values), {"file": level})


def test_bootstrap_is_seeded_and_is_the_percentile_of_resampled_means():
    values = [1.0, 0.0, 0.5, 1.0, 0.0, 0.25, 1.0, 0.0] * 5
    system = one_level_system(values)
    intervals, _ = bootstrap([system], resamples=500, seed=3)
    again, _ = bootstrap([system], resamples=500, seed=3)
    other, _ = bootstrap([system], resamples=500, seed=4)
    assert intervals == again and intervals != other
    # the same draws, resampled the plain way
    draws = np.random.default_rng([3, 0]).integers(0, len(values), size=(500, len(values)))
    means = np.asarray(values)[draws].mean(axis=1) * 100
    expected = tuple(np.percentile(means, [2.5, 97.5]))
    assert intervals[0]["file"]["recall@5"] == pytest.approx(expected)


def test_bootstrap_differences_are_paired():
    base = [1.0, 0.0] * 25  # 50 instances, mean 50 %
    better = list(base)
    better[1] = 1.0  # one more hit: +2 points
    intervals, differences = bootstrap([one_level_system(base), one_level_system(better)], resamples=1000)
    low, high = intervals[0]["file"]["recall@5"]
    assert high - low > 20  # alone, each system is uncertain by about +-14 points
    low, high = differences[1]["file"]["recall@5"]
    assert low >= 0.0 and high <= 6.0  # paired, the gap is certain to be >= 0
    assert differences[0] == {}
    same, _ = bootstrap([one_level_system([1.0] * 10)], resamples=100)
    assert same[0]["file"]["recall@5"] == (100.0, 100.0)
    assert bootstrap([one_level_system(base)], resamples=0) == ([{}], [{}])


MANY_METRICS = "acc@1,acc@3,acc@5,acc@10,recall@1,recall@3,recall@5,recall@10,precision@5,map,mrr,ndcg@5"


def test_tables_are_never_cut_when_piped(small):
    done = eval_loc(small, "--metrics", MANY_METRICS, "--bootstrap", "50")
    assert done.returncode == 0 and "…" not in done.stdout
    header = next(line for line in done.stdout.splitlines() if line.strip().startswith("system"))
    assert header.split() == ["system", *MANY_METRICS.split(",")]


def test_tables_too_wide_for_the_terminal_are_split_not_cut(small, monkeypatch, capsys):
    import io

    from rich.console import Console

    from reposearcher_plugin.cli import console as console_module
    from reposearcher_plugin.cli.main import main

    screen = io.StringIO()
    monkeypatch.setattr(console_module, "output_console", lambda: Console(file=screen, width=60))
    args = ["eval", "loc", "--dataset", str(small["dataset"]), "--gold", str(small["gold"])]
    assert main([*args, "--predictions", str(small["a"]), "--metrics", MANY_METRICS]) == 0
    text = screen.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 60
    shown = [word for line in text.splitlines() if line.strip().startswith("system") for word in line.split()]
    assert sorted(set(shown) - {"system"}) == sorted(MANY_METRICS.split(","))
    assert "function level (3 instances scored), continued" in text
