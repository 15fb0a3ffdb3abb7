"""The ``locagent`` protocol (Acc@k as LocAgent and SweRank report it) and LocAgent's gold rules.

Each rule is checked on hand-made instances; the protocol is also checked against a reimplementation of
how LocAgent's ``evaluation/eval_metric.py`` scores (its 0/1 label vectors), and, with ../shared, the
published LocAgent + Claude-3.5 output must give the numbers LocAgent published for it.
"""

from __future__ import annotations

import difflib
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reposearcher_plugin.cli.main import main
from reposearcher_plugin.evaluation.gold_locagent import locagent_gold
from reposearcher_plugin.evaluation.gold_source import read_gold_file
from reposearcher_plugin.evaluation.locations import Prediction
from reposearcher_plugin.evaluation.metrics import LOCAGENT_CUTOFFS, evaluate, get_protocol
from reposearcher_plugin.evaluation.readers import parse_prediction, read_predictions
from reposearcher_plugin.evaluation.report import PROTOCOL_NOTES, TABLE_METRICS
from tests.conftest import needs_shared_data

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LOCAGENT_CLAUDE = SHARED / "baselines" / "swe-bench-lite" / "locagent_claude-3-5.jsonl"
LITE_GOLD = REPO_ROOT / "eval" / "results" / "locagent_lite_gold.json"


def prediction(files: list[str] = (), modules: list[str] = (), functions: list[str] = ()) -> Prediction:
    return Prediction("i", list(files), list(modules), list(functions))


def scores(
    predictions: dict[str, Prediction], gold: dict[str, list[str]]
) -> dict[str, dict[str, float | None]]:
    return evaluate(predictions, gold, "locagent").percentages()


# ---------------------------------------------------------------------------------------------------
# The protocol


def test_a_hit_needs_every_gold_location_in_the_top_k() -> None:
    gold = {"i": ["a.py::A.f", "b.py::g"]}
    stranger_first = prediction(functions=["x.py::h", "a.py::A.f", "b.py::g"])
    function = scores({"i": stranger_first}, gold)["function"]
    assert (function["acc@1"], function["acc@3"], function["acc@5"], function["acc@10"]) == (0, 100, 100, 100)
    one_missing = prediction(functions=["a.py::A.f", "x.py::h"])
    assert scores({"i": one_missing}, gold)["function"]["acc@10"] == 0
    # at k below the gold count, a top k of gold alone is a hit: one gold item is all that k = 1 holds
    assert scores({"i": one_missing}, gold)["function"]["acc@1"] == 100


def test_more_gold_than_k_needs_the_top_k_to_be_all_gold() -> None:
    gold = {"i": [f"a.py::f{n}" for n in range(7)]}  # seven gold functions, k = 5
    all_gold_first = prediction(functions=[f"a.py::f{n}" for n in range(5)] + ["a.py::other"])
    assert scores({"i": all_gold_first}, gold)["function"]["acc@5"] == 100  # 5 of 7 is as many as 5 can hold
    assert scores({"i": all_gold_first}, gold)["function"]["acc@10"] == 0  # 5 of 7 when 7 fit
    one_stranger = prediction(functions=["a.py::f0", "a.py::other", "a.py::f1", "a.py::f2", "a.py::f3"])
    assert scores({"i": one_stranger}, gold)["function"]["acc@5"] == 0


def test_levels_come_from_the_gold_entities() -> None:
    rules = get_protocol("locagent")
    levels = rules.gold_by_level(["a.py::A.f", "a.py::A.g", "b.py::h", "b.py::C.D.m", "c.py"])
    assert levels == {
        "file": frozenset({"a.py", "b.py"}),  # c.py, a bare path, is not LocAgent gold: left out
        "module": frozenset({"a.py::A", "b.py::h", "b.py::C"}),
        "function": frozenset({"a.py::A.f", "a.py::A.g", "b.py::h", "b.py::C.D.m"}),
    }
    assert rules.levels == ("file", "module", "function")
    assert rules.metrics == tuple(f"acc@{k}" for k in LOCAGENT_CUTOFFS)


def test_found_modules_rank_the_module_level_and_single_colon_ids_read() -> None:
    row = {
        "instance_id": "i",
        "found_files": ["x.py", "b.py", "a.py"],
        "found_modules": ["x.py:X", "b.py:h", "a.py:A"],
        "found_entities": ["x.py:X.y", "b.py:h", "a.py:A.g", "a.py:A.f"],
    }
    found, _ = parse_prediction(row, clean_paths=get_protocol("locagent").clean_paths)
    result = scores({"i": found}, {"i": ["a.py::A.f", "b.py::h"]})  # (eval loc reads a.py:A.f so too)
    assert result["file"]["acc@1"] == 0 and result["file"]["acc@3"] == 100
    assert result["module"]["acc@1"] == 0 and result["module"]["acc@3"] == 100
    assert result["function"]["acc@3"] == 0 and result["function"]["acc@5"] == 100


def test_missing_and_empty_predictions_score_zero_and_still_count() -> None:
    gold = {"i": ["a.py::f"], "j": ["b.py::g"], "k": ["c.py::h"]}
    predictions = {
        "i": Prediction("i", ["a.py"], ["a.py::f"], ["a.py::f"]),
        "j": Prediction("j", ["b.py"], [], []),  # files, but no entities
    }  # k: no prediction at all
    result = evaluate(predictions, gold, "locagent")
    assert {level: scores.n for level, scores in result.levels.items()} == {
        "file": 3,
        "module": 3,
        "function": 3,
    }
    percent = result.percentages()
    assert percent["file"]["acc@1"] == pytest.approx(200 / 3)
    assert percent["function"]["acc@1"] == pytest.approx(100 / 3)


def test_an_instance_whose_gold_names_no_function_is_not_scored_at_any_level() -> None:
    gold = {"i": ["a.py::f"], "none": [], "file_only": ["c.py"]}
    result = evaluate({"i": Prediction("i", ["a.py"], ["a.py::f"], ["a.py::f"])}, gold, "locagent")
    assert all(scores.instance_ids == ("i",) for scores in result.levels.values())
    assert result.percentages()["file"]["acc@1"] == 100


def test_paths_are_compared_as_written() -> None:
    row = {"instance_id": "i", "found_files": ["./a.py"], "found_entities": ["./a.py:f"]}
    found, _ = parse_prediction(row, clean_paths=get_protocol("locagent").clean_paths)
    assert scores({"i": found}, {"i": ["a.py::f"]})["file"]["acc@1"] == 0  # LocAgent's script misses it too


def locagent_script_acc(predicted: list[str], gold: list[str], k: int, max_k: int) -> float:
    """LocAgent's ``acc_at_k`` on one instance, reimplemented: label vectors of length ``max_k``
    (predictions cut to ``max_k``, 1 where the item is gold; gold: 1 in the first min(|gold|, max_k)),
    both cut to k; a hit when their sums are equal."""
    predicted_labels = [1 if item in gold else 0 for item in predicted[:max_k]]
    predicted_labels += [0] * (max_k - len(predicted_labels))
    gold_labels = [1 if position < len(gold) else 0 for position in range(max_k)]
    return 1.0 if sum(predicted_labels[:k]) == sum(gold_labels[:k]) else 0.0


ENTITIES = [f"{path}::{name}" for path in ("a.py", "b.py") for name in ("f", "g", "C.m", "C.n", "h")]


@settings(max_examples=40, deadline=None)
@given(
    st.sets(st.sampled_from(ENTITIES), min_size=1, max_size=8),
    st.permutations(ENTITIES),
    st.integers(min_value=0, max_value=len(ENTITIES)),
)
def test_the_protocol_agrees_with_locagents_script(gold: set[str], order: list[str], length: int) -> None:
    ranked = order[:length]
    rules = get_protocol("locagent")
    for k in LOCAGENT_CUTOFFS:
        assert rules.score(f"acc@{k}", ranked, frozenset(gold)) == locagent_script_acc(
            ranked, list(gold), k, 10
        )


def test_eval_loc_takes_the_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text(
        json.dumps({"instance_id": "i", "repo": "o/r", "base_commit": "c0", "problem_statement": "p"})
    )
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps({"i": ["a.py:A.f"]}))
    outputs = tmp_path / "system.jsonl"
    outputs.write_text(
        json.dumps({"instance_id": "i", "found_files": ["a.py"], "found_entities": ["a.py:A.f"]})
    )
    args = ["eval", "loc", "--dataset", str(dataset), "--gold", str(gold), "--predictions", str(outputs)]
    assert main([*args, "--protocol", "locagent", "--json", "--bootstrap", "0"]) == 0
    report = json.loads(capsys.readouterr().out)["system"]
    assert report["protocol"] == "locagent"
    assert report["function"] == {"acc@1": 100.0, "acc@3": 100.0, "acc@5": 100.0, "acc@10": 100.0}
    assert "locagent" in PROTOCOL_NOTES and TABLE_METRICS["locagent"] == get_protocol("locagent").metrics


# ---------------------------------------------------------------------------------------------------
# LocAgent's gold rules

BASE = textwrap.dedent(
    """\
    import os


    LIMIT = 3


    class Cart:
        \"\"\"A cart.\"\"\"

        size = 1

        def __init__(self):
            self.items = []

        @property
        def total(self):
            return sum(self.items)

        class Inner:
            def deep(self):
                return 1


    def helper(x):
        def nested():
            return x
        return nested()
    """
)


def patch_of(old: str, new: str, path: str = "shop.py") -> str:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}")
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


def gold_after(change: tuple[str, str], merge_init: bool = False) -> list[str]:
    new = BASE.replace(*change)
    assert new != BASE
    return locagent_gold("i", patch_of(BASE, new), {"shop.py": BASE}.get, merge_init=merge_init)


def test_an_edited_method_and_an_edited_function_are_gold() -> None:
    assert gold_after(("return sum(self.items)", "return sum(self.items) or 0")) == ["shop.py::Cart.total"]
    assert gold_after(("return nested()", "return nested() + 1")) == ["shop.py::helper"]


def test_a_nested_function_labels_its_outer_function() -> None:
    assert gold_after(("        return x\n", "        return -x\n")) == ["shop.py::helper"]


def test_class_bodies_module_code_decorators_imports_and_comments_are_not_gold() -> None:
    assert gold_after(("size = 1", "size = 2")) == []  # class body outside methods
    assert gold_after(("LIMIT = 3", "LIMIT = 4")) == []  # module level
    assert gold_after(("    @property\n", "    @property  # cached\n")) == []  # a decorator is not the def
    assert gold_after(('"""A cart."""', '"""A shopping cart."""')) == []  # the class docstring
    assert gold_after(("return 1", "return 2")) == []  # a nested class's method: inside Cart's body
    in_function = ("    def nested():\n", "    import sys\n    def nested():\n")
    assert gold_after(in_function) == []  # an import, even inside a function
    comment = (
        "        return sum(self.items)\n",
        "        # the items' prices\n        return sum(self.items)\n",
    )
    assert gold_after(comment) == []


def test_a_new_method_is_not_gold_an_edited_one_is() -> None:
    added = ("    class Inner:", "    def clear(self):\n        self.items = []\n\n    class Inner:")
    assert gold_after(added) == []


def test_init_edits_label_the_class_with_merge_init() -> None:
    change = ("self.items = []", "self.items = list()")
    assert gold_after(change) == ["shop.py::Cart.__init__"]
    assert gold_after(change, merge_init=True) == ["shop.py::Cart"]


def test_a_patch_of_two_python_files_has_no_gold() -> None:
    new = BASE.replace("return nested()", "return nested() + 1")
    patch = patch_of(BASE, new) + patch_of(BASE, new, "other.py")
    assert locagent_gold("i", patch, {"shop.py": BASE, "other.py": BASE}.get) == []


# ---------------------------------------------------------------------------------------------------
# The published row

PUBLISHED_CLAUDE = {  # LocAgent's run_evaluation.ipynb output for this file, in percent
    "file": {"acc@1": 77.74, "acc@3": 91.97, "acc@5": 94.16},
    "module": {"acc@5": 86.50, "acc@10": 87.59},
    "function": {"acc@5": 73.36, "acc@10": 77.37},
}


@needs_shared_data
def test_locagent_claude_reproduces_the_published_row() -> None:
    gold = read_gold_file(LITE_GOLD)  # eval/locagent_gold.py --merge-init on SWE-bench Lite
    assert len(gold) == 300 and sum(1 for items in gold.values() if items) == 274
    predictions, diagnostics = read_predictions(LOCAGENT_CLAUDE, known_ids=gold, clean_paths=False)
    assert diagnostics.clean
    result = evaluate(predictions, gold, "locagent")
    assert {level: scores.n for level, scores in result.levels.items()} == {
        "file": 274,
        "module": 274,
        "function": 274,
    }
    percent = result.percentages()
    for level, published in PUBLISHED_CLAUDE.items():
        for metric, value in published.items():
            assert round(percent[level][metric], 2) == value, (level, metric)


@pytest.mark.parametrize("protocol", ["strict", "tooltrain", "locagent"])
def test_loc_bench_gold_scores_our_run_output_in_every_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    # Loc-Bench's published gold: single colon, an __init__ edit listed as the method (merge_init off),
    # scored against a line as `reposearcher run` writes it (eval/results/locbench/).
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text(
        json.dumps({"instance_id": "i", "repo": "o/r", "base_commit": "c0", "problem_statement": "p"})
    )
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps({"i": ["pkg/a.py:C.__init__", "pkg/b.py:helper"]}))
    outputs = tmp_path / "retrieval.jsonl"
    run_line = {
        "instance_id": "i",
        "found_files": ["pkg/a.py", "pkg/b.py"],
        "found_related_locs": {"pkg/a.py": ["function: C.__init__"], "pkg/b.py": ["function: helper"]},
        "locations": ["pkg/a.py::C.__init__", "pkg/b.py::helper"],
        "model": "retrieval",
        "error": None,
    }
    outputs.write_text(json.dumps(run_line) + "\n")
    args = ["eval", "loc", "--dataset", str(dataset), "--gold", str(gold), "--predictions", str(outputs)]
    assert main([*args, "--protocol", protocol, "--json", "--bootstrap", "0"]) == 0
    report = json.loads(capsys.readouterr().out)["retrieval"]
    assert report["diagnostics"]["unparsed_locations"] == 0
    assert report["file"]["acc@5"] == 100.0
    assert report["function"]["acc@5"] == 100.0
    if protocol != "tooltrain":  # the ToolTrain script has no module level
        assert report["module"]["acc@5"] == 100.0
