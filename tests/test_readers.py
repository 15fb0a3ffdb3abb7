"""Readers of published localization outputs, gold files, and the bad input both meet in practice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reposearcher_plugin.evaluation.gold_source import (
    GoldError,
    check_gold_matches,
    ordered_like,
    read_gold_file,
)
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.evaluation.locations import (
    Prediction,
    module_of,
    name_of,
    normalize_location,
    normalize_path,
)
from reposearcher_plugin.evaluation.readers import (
    PredictionsError,
    parse_prediction,
    read_predictions,
)
from tests.conftest import needs_shared_data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LITE_BASELINES = SHARED / "baselines" / "swe-bench-lite"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------
# Entity ids


def test_paths_and_locations_are_normalized():
    assert normalize_path("./a/b.py") == "a/b.py"
    assert normalize_path(" /a//b.py ") == "a/b.py"
    assert normalize_path("a\\b\\c.py") == "a/b/c.py"
    assert normalize_location("./a.py::A.f") == "a.py::A.f"
    assert normalize_location("a.py:A.f") == "a.py::A.f"  # LocAgent's single colon
    assert normalize_location("a.py") == "a.py"
    assert normalize_location("a.py::") == "a.py"
    assert normalize_location("C:\\src\\a.py") == "C:/src/a.py"  # a drive letter is not a name
    assert normalize_location("./a.py:f", clean_paths=False) == "./a.py::f"
    assert module_of("a.py::A.b.c") == "a.py::A" and module_of("a.py::f") == "a.py::f"
    assert module_of("a.py") is None and name_of("a.py") is None
    assert name_of("a.py::A.b") == "A.b"


# ---------------------------------------------------------------------------------------------------
# Formats


def test_agentless_dict_form():
    row = {
        "instance_id": "i",
        "found_files": ["./b.py", "a.py", "b.py"],
        "found_related_locs": {
            "a.py": ["function: A.f\nclass: C\nmethod: A.g\nvariable: X\nline: 12", "function: helper"],
            "./b.py": ["", "function: A.f\nfunction: A.f"],
        },
    }
    prediction, unparsed = parse_prediction(row)
    assert prediction == Prediction(
        "i",
        files=["b.py", "a.py"],
        modules=["a.py::A", "a.py::C", "a.py::helper", "b.py::A"],
        functions=["a.py::A.f", "a.py::C", "a.py::helper", "b.py::A.f"],
    )
    assert unparsed == []


def test_agentless_list_form_is_aligned_with_found_files():
    row = {
        "instance_id": "i",
        "found_files": ["a.py", "b.py", "c.py"],
        "found_related_locs": [["function: f"], ["class: B\nfunction: B.g"], []],
    }
    prediction, _ = parse_prediction(row)
    assert prediction.functions == ["a.py::f", "b.py::B", "b.py::B.g"]
    assert prediction.modules == ["a.py::f", "b.py::B"]
    assert prediction.files == ["a.py", "b.py", "c.py"]


def test_location_lines_are_read_leniently_and_odd_ones_reported():
    row = {
        "instance_id": "i",
        "found_files": ["a.py"],
        "found_related_locs": {
            "a.py": ["  function:f  \nclass: Axes.function: bar\nfunction: \nfoo: bar\nplain"]
        },
    }
    prediction, unparsed = parse_prediction(row)
    assert prediction.functions == ["a.py::f", "a.py::Axes.function"]
    assert unparsed == ["function:", "foo: bar", "plain"]


def test_locagent_form():
    row = {
        "instance_id": "i",
        "found_files": ["a.py", "b.py"],
        "found_modules": ["a.py:A", "b.py:g", "a.py:A"],
        "found_entities": ["a.py:A.f", "b.py:g", "a.py:A", "./a.py:A.f"],
        "raw_output_loc": ["..."],
    }
    prediction, _ = parse_prediction(row)
    assert prediction.functions == ["a.py::A.f", "b.py::g", "a.py::A"]
    assert prediction.modules == ["a.py::A", "b.py::g"]
    assert prediction.files == ["a.py", "b.py"]


def test_our_format_prefers_locations():
    row = {
        "instance_id": "i",
        "found_files": ["a.py", "b.py"],
        "found_related_locs": {"b.py": ["function: ignored"]},
        "locations": ["a.py::A.f", "b.py", "b.py::g"],
        "trajectory": "t.json",
        "model": "m",
    }
    prediction, _ = parse_prediction(row)
    assert prediction.functions == ["a.py::A.f", "b.py::g"]
    assert prediction.modules == ["a.py::A", "b.py::g"]
    assert prediction.files == ["a.py", "b.py"]
    # without found_files, the files are those of the locations, in order
    bare, _ = parse_prediction({"instance_id": "i", "locations": ["c.py::f", "a.py", "c.py::g"]})
    assert bare.files == ["c.py", "a.py"]


def test_paths_can_be_kept_as_written():
    row = {"instance_id": "i", "found_files": ["./a.py"], "found_related_locs": {"./a.py": ["function: f"]}}
    prediction, _ = parse_prediction(row, clean_paths=False)
    assert prediction.files == ["./a.py"] and prediction.functions == ["./a.py::f"]


# ---------------------------------------------------------------------------------------------------
# Bad input: counted, reported, never a crash


def test_every_kind_of_bad_input_is_counted(tmp_path):
    path = write_jsonl(
        tmp_path / "preds.jsonl",
        [
            {"instance_id": "a", "found_files": ["a.py"], "found_related_locs": {"a.py": ["function: f"]}},
            "{not json",
            "[1, 2]",
            {"found_files": ["x.py"]},  # no instance_id
            {"instance_id": "b"},  # no prediction field
            {"instance_id": "b", "found_files": "b.py"},  # not a list
            {
                "instance_id": "b",
                "found_files": ["b.py"],
                "found_related_locs": [["function: f"], ["class: C"]],
            },
            {"instance_id": "a", "found_files": ["other.py"]},  # duplicate: the first is kept
            {"instance_id": "zzz", "found_files": ["z.py"]},  # not in the dataset
            {"instance_id": "c", "found_files": [], "found_related_locs": {}},  # empty
            {"instance_id": "d", "found_files": ["d.py"], "found_related_locs": {"d.py": ["funtion: x"]}},
            "",
        ],
    )
    predictions, diagnostics = read_predictions(path, known_ids=["a", "b", "c", "d", "e"])
    assert sorted(predictions) == ["a", "c", "d"]
    assert predictions["a"].files == ["a.py"]
    summary = diagnostics.to_dict()
    assert {key: summary[key] for key in diagnostics.COUNTED} == {
        "malformed_lines": 6,
        "duplicate_ids": 1,
        "unknown_ids": 1,
        "missing_ids": 2,  # b (all its lines were malformed) and e
        "empty_predictions": 1,
        "unparsed_locations": 1,
    }
    assert summary["lines"] == 11 and summary["predictions"] == 3
    reasons = summary["examples"]["malformed_lines"]
    assert reasons[0].startswith("line 2: not JSON")
    assert reasons[1] == "line 3: a JSON list, not an object"
    assert reasons[2] == "line 4: no instance_id"
    assert "none of the fields" in reasons[3]
    assert "found_files is not a list of strings" in reasons[4]
    assert "more entries than found_files" in diagnostics.malformed_lines[5]
    assert summary["examples"]["missing_ids"] == ["b", "e"]
    assert summary["examples"]["unparsed_locations"] == ["d: 'funtion: x'"]
    assert not diagnostics.clean
    assert any(line.startswith("6 malformed lines") for line in diagnostics.problems())


def test_a_clean_file_reports_nothing(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"instance_id": "a", "locations": ["a.py::f"]}])
    predictions, diagnostics = read_predictions(path, known_ids=["a"])
    assert diagnostics.clean and diagnostics.problems() == [] and len(predictions) == 1


def test_a_missing_predictions_file_is_an_error(tmp_path):
    with pytest.raises(PredictionsError, match="not found"):
        read_predictions(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------------------------------------------
# The published SWE-bench Lite outputs


@pytest.mark.parametrize("path", sorted(LITE_BASELINES.glob("*.jsonl")), ids=lambda path: path.stem)
@needs_shared_data
def test_every_published_lite_output_parses(path):
    gold = read_gold_file(SHARED / "swe-bench-lite" / "gold_functions.json")
    predictions, diagnostics = read_predictions(path, known_ids=gold)
    assert diagnostics.malformed_lines == [] and diagnostics.duplicate_ids == []
    assert diagnostics.unknown_ids == []
    assert len(predictions) + len(diagnostics.missing_ids) == 300
    assert len(predictions) >= 296
    with_functions = sum(1 for prediction in predictions.values() if prediction.functions)
    assert with_functions >= 0.75 * len(predictions)
    # entity ids are file-qualified, and every module is the module of some predicted entity
    for prediction in predictions.values():
        assert all("::" in entity for entity in prediction.functions)
        if "locagent_claude" not in path.name:  # LocAgent lists its modules itself
            assert set(prediction.modules) == {module_of(entity) for entity in prediction.functions}


@needs_shared_data
def test_lite_locagent_claude_row_by_hand():
    predictions, _ = read_predictions(LITE_BASELINES / "locagent_claude-3-5.jsonl")
    prediction = predictions["django__django-14787"]
    assert prediction.files == ["django/utils/decorators.py"]
    assert prediction.functions == [
        "django/utils/decorators.py::method_decorator",
        "django/utils/decorators.py::_multi_decorate",
        "django/utils/decorators.py::_update_method_wrapper",
    ]


# ---------------------------------------------------------------------------------------------------
# Gold


@needs_shared_data
def test_gold_files_in_both_published_forms(tmp_path):
    lite = read_gold_file(SHARED / "swe-bench-lite" / "gold_functions.json")
    assert len(lite) == 300
    assert lite["matplotlib__matplotlib-24265"] == [
        "lib/matplotlib/style/core.py",
        "lib/matplotlib/style/core.py::fix_style",
        "lib/matplotlib/style/core.py::reload_library",
    ]
    loc_bench = read_gold_file(SHARED / "loc-bench" / "gold_functions.json")
    assert len(loc_bench) == 560
    assert loc_bench["ultralytics__ultralytics-17810"] == ["ultralytics/utils/ops.py::segment2box"]
    assert all("::" in item for items in loc_bench.values() for item in items)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "not JSON"),
        ('["a.py"]', "expected an object"),
        ('{"i": "a.py"}', "not a list of strings"),
    ],
)
def test_bad_gold_files(tmp_path, content, message):
    path = tmp_path / "gold.json"
    path.write_text(content)
    with pytest.raises(GoldError, match=message):
        read_gold_file(path)
    with pytest.raises(GoldError, match="cannot read"):
        read_gold_file(tmp_path / "missing.json")


def instance(instance_id: str) -> Instance:
    return Instance(instance_id=instance_id, repo="o/r", base_commit="c", problem_statement="p")


def test_gold_must_match_the_dataset():
    instances = [instance("a"), instance("b"), instance("c")]
    check_gold_matches(instances, {"c": [], "a": [], "b": []}, "g.json")
    with pytest.raises(GoldError) as error:
        check_gold_matches(instances, {"a": [], "x": [], "y": []}, "g.json")
    message = str(error.value)
    assert "gold g.json does not match the dataset" in message
    assert "2 dataset instances have no gold (first: b, c)" in message
    assert "2 gold instances are not in the dataset (first: x, y)" in message
    assert list(ordered_like(instances, {"c": ["z"], "a": ["x"], "b": ["y"]})) == ["a", "b", "c"]
