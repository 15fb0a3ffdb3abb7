"""The Agentless-compatible ``found_related_locs`` we write, read the way the ToolTrain paper's script reads it.

``evaluation/FLEval.py`` of the paper's repository (RepoDeepSearch) takes the names of an output from the
values of ``found_related_locs`` in dict order, keeps the first five, and ignores the keys; our
``tooltrain`` protocol reads ``locations`` when a row has it. Both must see the same five names.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reposearcher_plugin.agent.result import RELATED_LOCS_NAMES, LocalizationResult
from reposearcher_plugin.evaluation.metrics import TOOLTRAIN_CUTOFF, evaluate
from reposearcher_plugin.evaluation.readers import parse_prediction
from reposearcher_plugin.index.locations import name_of, unique

# Each file's best location comes after another file's: grouping all of a file's names together would
# put a.py's low-ranked f3, f4 before b.py's g1.
INTERLEAVED = [
    "a.py::A.f1",
    "b.py::g1",
    "a.py::A.f2",
    "c.py::h1",
    "a.py::A.f3",
    "b.py::g2",
    "a.py::A.f4",
    "a.py::A.f5",
]
SET_METRICS = ("acc@1", "acc@5", "recall@1", "recall@5")  # the five names as a set, and the first


def script_names(row: dict[str, Any]) -> list[str]:
    """The names FLEval.py scores for one row (its reading, reimplemented): every value of
    ``found_related_locs`` in dict order, each a list of strings split into lines; a line holding
    ``function:`` or ``class:`` gives the text after its first ``": "``; repeats dropped keeping the first;
    then the first five."""
    names = []
    for value in row["found_related_locs"].values():  # the script calls .items(): a dict is required
        for block in value:
            for line in block.split("\n"):
                if "function:" in line or "class:" in line:
                    parts = line.split(": ")
                    if len(parts) > 1:
                        names.append(parts[1])
    return list(dict.fromkeys(names))[:5]


def ranked_names(locations: list[str]) -> list[str]:
    return unique(name for name in map(name_of, locations) if name)[:TOOLTRAIN_CUTOFF]


def row_for(locations: list[str]) -> dict[str, Any]:
    return LocalizationResult(instance_id="i", model="retrieval", locations=locations).to_dict()


def tooltrain_scores(row: dict[str, Any], gold: list[str]) -> dict[str, dict[str, float | None]]:
    prediction, _ = parse_prediction(row, clean_paths=False)  # as eval loc reads for tooltrain
    return evaluate({"i": prediction}, {"i": gold}, "tooltrain").percentages()


def without_locations(row: dict[str, Any]) -> dict[str, Any]:
    """The row as an Agentless-style consumer has it: our readers then read found_related_locs."""
    return {key: value for key, value in row.items() if key != "locations"}


def test_the_cut_is_the_scripts_cut() -> None:
    assert RELATED_LOCS_NAMES == TOOLTRAIN_CUTOFF == 5


def test_the_script_reads_the_top_five_names_of_an_interleaved_ranking() -> None:
    row = row_for(INTERLEAVED)
    assert row["found_related_locs"] == {
        "a.py": ["function: A.f1\nfunction: A.f2\nfunction: A.f3"],
        "b.py": ["function: g1"],
        "c.py": ["function: h1"],
    }
    assert list(row["found_related_locs"]) == ["a.py", "b.py", "c.py"]  # files as they first rank
    assert set(script_names(row)) == set(ranked_names(INTERLEAVED))
    assert script_names(row)[0] == "A.f1"
    assert row["locations"] == INTERLEAVED  # the whole ranking is still there


def test_tooltrain_gives_the_same_numbers_from_locations_and_from_found_related_locs() -> None:
    row = row_for(INTERLEAVED)
    for gold in (["b.py::g1", "c.py::h1"], ["a.py::A.f1", "c.py::h1"], ["a.py::A.f4"], ["b.py"]):
        from_locations = tooltrain_scores(row, gold)
        from_related = tooltrain_scores(without_locations(row), gold)
        assert from_locations["file"] == from_related["file"], gold
        for metric in SET_METRICS:
            assert from_locations["function"][metric] == from_related["function"][metric], (gold, metric)
    # the case that used to differ: both gold names ranked in the top five, behind a.py's
    assert tooltrain_scores(without_locations(row), ["b.py::g1", "c.py::h1"])["function"]["recall@5"] == 100.0


def test_every_number_agrees_when_the_top_five_keep_each_file_together() -> None:
    ranking = ["a.py::A.f1", "a.py::A.f2", "b.py::g1", "c.py::h1", "c.py::h2", "a.py::A.f3", "b.py::g2"]
    row = row_for(ranking)
    assert script_names(row) == ranked_names(ranking)
    for gold in (["b.py::g1"], ["c.py::h2", "a.py::A.f2"], ["a.py::A.f3"]):
        assert tooltrain_scores(row, gold) == tooltrain_scores(without_locations(row), gold)


def test_one_name_in_two_files_counts_once_as_the_script_counts_it() -> None:
    ranking = ["a.py::save", "b.py::save", "a.py::f", "b.py::g", "c.py::h", "d.py::k", "e.py::late"]
    row = row_for(ranking)
    assert script_names(row) == ["save", "f", "g", "h", "k"] == ranked_names(ranking)
    assert "e.py" not in row["found_related_locs"]


FILES = ("a.py", "b.py", "c.py")
NAMES = ("f", "g", "C.m", "C.n", "h", "k", "D")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FILES), st.sampled_from(NAMES)), max_size=14))
def test_any_ranking_reads_as_its_top_five(pairs: list[tuple[str, str]]) -> None:
    locations = [f"{path}::{name}" for path, name in pairs]
    row = row_for(locations)
    top = ranked_names(row["locations"])
    assert set(script_names(row)) == set(top)
    assert script_names(row)[:1] == top[:1]
    # Agentless reads each key as the file of its lines: a name is only ever written under its own file
    written = {
        f"{path}::{line.removeprefix('function: ')}"
        for path, blocks in row["found_related_locs"].items()
        for block in blocks
        for line in block.split("\n")
    }
    assert written <= set(locations)
    assert set(row["found_related_locs"]) <= set(row["found_files"])
