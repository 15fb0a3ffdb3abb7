"""`eval resolve` (SWE-bench's harness; no Docker here) and `eval report` (localization next to %Resolved).

The harness reports below are test fixtures written in swebench 5.0.2's exact format (its
``harness/reporting.py: make_run_report`` and ``harness/grading.py: get_eval_report``); they are not
results of any run.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reposearcher_plugin.cli.resolve_cmd import add_resolve_commands, parse_system
from reposearcher_plugin.evaluation import resolve
from reposearcher_plugin.evaluation.resolve import HarnessOptions, harness_command, read_harness_report

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LITE = SHARED / "swe-bench-lite"
RETRIEVAL = Path(__file__).resolve().parents[1] / "eval" / "results" / "lite_retrieval" / "retrieval.jsonl"
IDS = [
    "django__django-15202",
    "django__django-17087",
    "sphinx-doc__sphinx-8721",
    "scikit-learn__scikit-learn-10508",
    "django__django-11422",
]
needs_lite = pytest.mark.skipif(not (LITE / "test.jsonl").is_file(), reason="../shared/data not present")


def parse(argv: list[str]) -> argparse.Namespace:
    # The lead wires add_resolve_commands into `eval`; a parser of our own tests it without that.
    parser = argparse.ArgumentParser(prog="reposearcher eval")
    add_resolve_commands(parser.add_subparsers(dest="eval_command", required=True))
    return parser.parse_args(argv)


def harness_final_report(predictions: dict[str, str], full_dataset: list[str], **outcome: set[str]) -> dict:
    """The dict make_run_report writes (schema_version 2, no Docker client fields)."""
    resolved = outcome.get("resolved", set())
    unresolved = outcome.get("unresolved", set())
    errors = outcome.get("errors", set())
    empty = {i for i, patch in predictions.items() if not patch and i in full_dataset}
    completed = resolved | unresolved
    incomplete = {i for i in full_dataset if i not in predictions}
    return {
        "total_instances": len(full_dataset),
        "submitted_instances": len(predictions),
        "completed_instances": len(completed),
        "resolved_instances": len(resolved),
        "unresolved_instances": len(unresolved),
        "infra_failure_instances": 0,
        "ambiguous_failure_instances": 0,
        "empty_patch_instances": len(empty),
        "error_instances": len(errors),
        "completed_ids": sorted(completed),
        "incomplete_ids": sorted(incomplete),
        "empty_patch_ids": sorted(empty),
        "submitted_ids": sorted(predictions),
        "resolved_ids": sorted(resolved),
        "unresolved_ids": sorted(unresolved),
        "infra_failure_ids": [],
        "ambiguous_failure_ids": [],
        "failure_reasons": {},
        "error_ids": sorted(errors),
        "schema_version": 2,
    }


def write_predictions(path: Path, patches: dict[str, str], model: str = "org/patcher") -> Path:
    rows = [{"instance_id": i, "model_name_or_path": model, "model_patch": p} for i, p in patches.items()]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------------------------------------------
# The harness's command line, checked against swebench 5.0.2's own argparse


def official_parser() -> argparse.ArgumentParser:
    """run_evaluation.py builds its parser under `if __name__ == "__main__"`, so it cannot be imported:
    run that block's statements, up to `parse_args`, on the installed source."""
    from swebench.harness import run_evaluation, utils

    tree = ast.parse(inspect.getsource(run_evaluation))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and "__main__" in ast.unparse(node.test)
        and "__name__" in ast.unparse(node.test)
    )
    statements = [
        s for s in block.body if "parse_args" not in ast.unparse(s) and "main(" not in ast.unparse(s)
    ]
    namespace = {
        "ArgumentParser": argparse.ArgumentParser,
        "ArgumentDefaultsHelpFormatter": argparse.ArgumentDefaultsHelpFormatter,
        "str2bool": utils.str2bool,
    }
    exec(compile(ast.Module(body=statements, type_ignores=[]), "run_evaluation", "exec"), namespace)
    return namespace["parser"]


def test_harness_command_parses_with_the_official_parser():
    from swebench.harness import run_evaluation

    options = HarnessOptions(
        predictions="out/preds.jsonl",
        dataset="data/test.jsonl",
        split="test",
        max_workers=8,
        run_id="r1",
        timeout=900,
        report_dir="reports",
    )
    command = harness_command(options)
    assert command[1:3] == ["-m", "swebench.harness.run_evaluation"]
    parsed = vars(official_parser().parse_args(command[3:]))
    assert parsed["dataset_name"] == "data/test.jsonl"
    assert parsed["predictions_path"] == "out/preds.jsonl"
    assert (parsed["max_workers"], parsed["timeout"], parsed["run_id"]) == (8, 900, "r1")
    assert (parsed["split"], parsed["report_dir"], parsed["modal"]) == ("test", "reports", False)
    # What the harness then calls: every parsed key is a parameter of its main().
    assert set(parsed) <= set(inspect.signature(run_evaluation.main).parameters)


def test_run_id_defaults_to_the_predictions_stem():
    command = harness_command(HarnessOptions(predictions="x/loc_patches.jsonl", dataset="lite"))
    assert command[command.index("--run_id") + 1] == "loc_patches"


def test_local_datasets_are_read_by_the_harness_loader(tmp_path):
    # The claim behind passing local files straight through: load_swebench_dataset reads .jsonl itself.
    from swebench.harness.utils import load_swebench_dataset

    dataset = tmp_path / "d.jsonl"
    dataset.write_text(json.dumps({"instance_id": "a__b-1", "patch": ""}) + "\n")
    assert [row["instance_id"] for row in load_swebench_dataset(str(dataset), "test")] == ["a__b-1"]


# ---------------------------------------------------------------------------------------------------
# `eval resolve` without Docker


def test_resolve_without_docker_says_so(tmp_path, capsys):
    predictions = write_predictions(tmp_path / "preds.jsonl", {"a__b-1": "diff"})
    ran: list[list[str]] = []
    args = parse(["resolve", "--predictions", str(predictions), "--dataset", "lite", "--run-id", "r1"])
    status = args.handler(args, check_docker=lambda: "socket /var/run/docker.sock missing", run=ran.append)
    error = capsys.readouterr().err
    assert status == 3 and not ran
    assert "needs a running Docker engine" in error and "socket /var/run/docker.sock missing" in error
    assert "eval report" in error and "Traceback" not in error


def test_resolve_with_docker_runs_the_harness_and_reads_its_report(tmp_path, capsys):
    predictions = write_predictions(tmp_path / "preds.jsonl", {"a__b-1": "diff", "a__b-2": ""})
    ran: list[list[str]] = []

    def fake_harness(command: list[str]) -> int:
        ran.append(command)
        report = harness_final_report(
            {"a__b-1": "diff", "a__b-2": ""}, ["a__b-1", "a__b-2", "a__b-3"], resolved={"a__b-1"}
        )
        # make_run_report: <report_dir>/<model with "/" -> "__">.<run_id>.json
        (tmp_path / "org__patcher.r1.json").write_text(json.dumps(report, indent=4))
        return 0

    args = parse(
        [
            *("resolve", "--predictions", str(predictions), "--dataset", "lite"),
            *("--run-id", "r1", "--report-dir", str(tmp_path)),
        ]
    )
    assert args.handler(args, check_docker=lambda: None, run=fake_harness) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resolved"] == 1 and summary["empty_patches"] == 1 and summary["total_instances"] == 3
    assert ran and ran[0][ran[0].index("--report_dir") + 1] == str(tmp_path)


def test_resolve_rejects_bad_predictions_before_docker(tmp_path, capsys):
    bad = tmp_path / "preds.jsonl"
    bad.write_text(json.dumps({"instance_id": "a__b-1"}) + "\n")
    args = parse(["resolve", "--predictions", str(bad), "--dataset", "lite"])
    assert args.handler(args, check_docker=lambda: pytest.fail("checked Docker")) == 2
    assert "lacks model_name_or_path, model_patch" in capsys.readouterr().err


def test_resolve_in_a_subprocess_has_no_traceback(tmp_path):
    # The real Docker probe: this machine has no engine (if one answers, only --print-command is checked).
    predictions = write_predictions(tmp_path / "preds.jsonl", {"a__b-1": "diff"})
    script = (
        "import argparse, sys\n"
        "from reposearcher_plugin.cli.resolve_cmd import add_resolve_commands\n"
        "p = argparse.ArgumentParser(); add_resolve_commands(p.add_subparsers(required=True))\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.handler(a))\n"
    )
    base = [sys.executable, "-c", script, "resolve", "--predictions", str(predictions), "--dataset", "lite"]
    shown = subprocess.run([*base, "--print-command"], capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0 and "--predictions_path" in shown.stdout
    if resolve.docker_problem() is None:
        pytest.skip("a Docker engine is reachable here; not running the harness from a test")
    done = subprocess.run(base, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 3
    assert "needs a running Docker engine" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------------
# Reading harness reports


def test_read_final_report(tmp_path):
    dataset = ["i1", "i2", "i3", "i4", "i5"]
    predictions = {"i1": "d", "i2": "d", "i3": "", "i4": "d", "other": "d"}
    data = harness_final_report(predictions, dataset, resolved={"i1"}, unresolved={"i2"}, errors={"i4"})
    path = tmp_path / "org__model.v1.2.json"
    path.write_text(json.dumps(data, indent=4))
    report = read_harness_report(path, run_id="v1.2")
    assert report.model == "org__model"
    assert report.resolved == {"i1"} and report.unresolved == {"i2"} and report.errors == {"i4"}
    assert report.empty == {"i3"} and report.incomplete == {"i5"}
    assert report.submitted == {"i1", "i2", "i3", "i4", "other"}
    assert report.total_instances == 5 and report.schema_version == 2
    assert read_harness_report(path).model == "org__model.v1.2"  # run id unknown: not cut off


def test_read_per_instance_reports(tmp_path):
    folder = tmp_path / "logs" / "run_evaluation" / "r1" / "org__model"
    for instance_id, resolved in (("i1", True), ("i2", False)):
        (folder / instance_id).mkdir(parents=True)
        entry = {
            "patch_is_None": False,
            "patch_exists": True,
            "patch_successfully_applied": True,
            "resolved": resolved,
        }
        (folder / instance_id / "report.json").write_text(json.dumps({instance_id: entry}, indent=4))
    (folder / "i3").mkdir()  # run, but no report: the harness counts it as an error
    report = read_harness_report(folder)
    assert (report.resolved, report.unresolved, report.errors) == ({"i1"}, {"i2"}, {"i3"})


@pytest.mark.parametrize("content", ["{nope", json.dumps({"resolved": 3}), json.dumps([1])])
def test_read_bad_reports(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(resolve.ResolveError):
        read_harness_report(path)


def test_parse_system():
    assert parse_system("a=p.jsonl:r.json") == ("a", "p.jsonl", "r.json")
    assert parse_system("a=p.jsonl") == ("a", "p.jsonl", None)
    assert parse_system("gold=:gold.r1.json") == ("gold", None, "gold.r1.json")
    for bad in ("nameless", "a=", "a=:"):
        with pytest.raises(ValueError):
            parse_system(bad)


# ---------------------------------------------------------------------------------------------------
# The joint report


@pytest.fixture
def joint_inputs(tmp_path):
    if not (LITE / "test.jsonl").is_file() or not RETRIEVAL.is_file():
        pytest.skip("../shared/data or the committed retrieval outputs are not present")
    rows = {json.loads(line)["instance_id"]: line for line in (LITE / "test.jsonl").read_text().splitlines()}
    (tmp_path / "test.jsonl").write_text("".join(rows[i] + "\n" for i in IDS))
    gold = json.loads((LITE / "gold_functions.json").read_text())
    (tmp_path / "gold.json").write_text(json.dumps({i: gold[i] for i in IDS}))
    retrieval = {json.loads(line)["instance_id"]: line for line in RETRIEVAL.read_text().splitlines()}
    (tmp_path / "retrieval.jsonl").write_text("".join(retrieval[i] + "\n" for i in IDS))
    # Hand-written localization: one of the two gold functions of scikit-learn-10508, nothing else.
    one = {
        "instance_id": "scikit-learn__scikit-learn-10508",
        "found_files": ["sklearn/preprocessing/label.py"],
        "found_related_locs": {"sklearn/preprocessing/label.py": ["function: LabelEncoder.transform"]},
    }
    (tmp_path / "partial.jsonl").write_text(json.dumps(one) + "\n")
    patches = dict.fromkeys(IDS[:4], "diff") | {"astropy__astropy-12907": "diff"}
    report = harness_final_report(
        patches,
        IDS,
        # astropy-12907 is outside this dataset: resolved there, it must not count here
        resolved={IDS[0], IDS[1], IDS[3], "astropy__astropy-12907"},
        unresolved={IDS[2]},
    )
    (tmp_path / "retrieval.r1.json").write_text(json.dumps(report, indent=4))
    gold_report = harness_final_report(
        dict.fromkeys(IDS, "diff"), IDS, resolved=set(IDS[:4]), errors={IDS[4]}
    )
    (tmp_path / "gold.r1.json").write_text(json.dumps(gold_report, indent=4))
    return tmp_path


@pytest.fixture
def report_json(joint_inputs, capsys):
    def run(*extra: str) -> dict:
        args = parse(
            [
                "report",
                "--dataset",
                str(joint_inputs / "test.jsonl"),
                "--gold",
                str(joint_inputs / "gold.json"),
                "--systems",
                f"retrieval={joint_inputs / 'retrieval.jsonl'}:{joint_inputs / 'retrieval.r1.json'}",
                f"gold_patch=:{joint_inputs / 'gold.r1.json'}",
                f"partial={joint_inputs / 'partial.jsonl'}",
                *extra,
            ]
        )
        assert args.handler(args) == 0
        return capsys.readouterr()

    return run


def test_joint_report_values_by_hand(report_json):
    out = report_json("--json", "--bootstrap", "200").out
    data = json.loads(out)
    assert data["instances"] == 5 and data["protocol"] == "strict"
    retrieval = data["systems"]["retrieval"]
    # retrieval's top 5 functions hold the gold of 15202 (rank 1), sphinx-8721 (rank 3) and both gold
    # functions of sklearn-10508 (ranks 1, 2), not those of 17087 and 11422: Recall@5 3/5; files: all but
    # 17087 (migrations/serializer.py is not among its top 5 files): 4/5.
    assert retrieval["scores"]["function recall@5"] == 60.0
    assert retrieval["scores"]["file recall@5"] == 80.0
    # MAP: AP 1, 0, 1/3, 1, 0 (the gold of 17087 and 11422 is nowhere in its ranking)
    assert retrieval["scores"]["function map"] == round((1 + 1 / 3 + 1) / 5 * 100, 2)
    # resolved: 15202, 17087, 10508 of the dataset's 5 (astropy-12907 is outside it; 11422 never submitted)
    assert retrieval["scores"]["resolved"] == 60.0
    assert retrieval["resolve_ids_outside_dataset"] == 1
    groups = {row["group"]: row for row in retrieval["resolved_by_localization"]}
    assert (groups["all found"]["instances"], groups["all found"]["resolved"]) == (3, 2)
    assert (groups["none found"]["instances"], groups["none found"]["resolved"]) == (2, 1)
    assert groups["all found"]["percent"] == 66.67
    # resolve-only and localization-only systems
    gold_patch, partial = data["systems"]["gold_patch"], data["systems"]["partial"]
    assert gold_patch["scores"]["resolved"] == 80.0 and gold_patch["scores"]["function recall@5"] is None
    assert partial["scores"]["function recall@5"] == 10.0 and partial["scores"]["resolved"] is None
    assert gold_patch["resolved_by_localization"] == [] == partial["resolved_by_localization"]
    for name, system in data["systems"].items():
        for column, (low, high) in system["intervals"].items():
            assert low <= system["scores"][column] <= high, (name, column)


def test_joint_report_markdown_and_plot(report_json, joint_inputs):
    plot = joint_inputs / "scatter.png"
    captured = report_json("--markdown", "--bootstrap", "0", "--plot", str(plot), "--by-repo")
    lines = captured.out.splitlines()
    row = next(line for line in lines if line.startswith("| retrieval |"))
    assert row == "| retrieval | 80.0 | 60.0 | 46.7 | 60.0 |"
    assert (
        next(line for line in lines if line.startswith("| gold_patch |"))
        == "| gold_patch | - | - | - | 80.0 |"
    )
    assert next(line for line in lines if line.startswith("| partial |")).endswith("| 10.0 | 10.0 | - |")
    assert "| retrieval | none found | 2 | 1 | 50.0 |" in lines
    assert "| retrieval | django/django | 3 | 33.3 | 66.7 |" in lines
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in captured.err


def test_joint_intervals_are_paired():
    # One set of resamples for every column and system: a column whose per-instance values equal
    # another's gets exactly the same interval, whichever system or column it belongs to.
    import numpy as np

    from reposearcher_plugin.evaluation.joint_report import JointSystem, build_joint_report
    from reposearcher_plugin.evaluation.metrics import LevelScores, SystemScores
    from reposearcher_plugin.evaluation.resolve import ResolveReport

    ids = [f"i{n}" for n in range(8)]
    hits = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=float)

    def level(name: str, instance_ids: list[str], values: np.ndarray) -> LevelScores:
        return LevelScores(name, tuple(instance_ids), {"recall@5": values, "map": values})

    scores = SystemScores(
        "strict", 8, {"file": level("file", ids, hits), "function": level("function", ids, hits)}
    )
    resolved = frozenset(i for i, hit in zip(ids, hits, strict=True) if hit)
    first = JointSystem("a", scores, None, ResolveReport("a", "a.json", resolved))
    second = JointSystem("b", None, None, ResolveReport("b", "b.json", resolved))
    report = build_joint_report("strict", ids, [first, second], resamples=500, seed=3)
    a, b = report.intervals
    assert a["function recall@5"] == a["resolved"] == b["resolved"]
    assert report.values[0]["resolved"] == 50.0 and "function recall@5" not in b
    # A column that skips instances (no gold function) is averaged over the scored ones only.
    skipped = SystemScores(
        "strict", 8, {"file": level("file", ids, hits), "function": level("function", ids[:4], hits[:4])}
    )
    report = build_joint_report("strict", ids, [JointSystem("c", skipped)], resamples=200, seed=3)
    assert report.values[0]["function recall@5"] == 75.0 and report.values[0]["file recall@5"] == 50.0
