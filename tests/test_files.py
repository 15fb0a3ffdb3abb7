"""reposearcher_plugin.files: JSONL rows, atomic replacement, safe names."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reposearcher_plugin.evaluation.batch import finished_ids
from reposearcher_plugin.files import (
    JsonlError,
    append_row,
    json_line,
    jsonl_lines,
    parse_jsonl,
    read_jsonl,
    safe_name,
    write_atomic,
    write_jsonl,
)

# any text, lone surrogates and the line breaks str.splitlines knows (U+2028, NEL, \x1c) included
odd_text = st.text(st.characters(codec=None, categories=None, blacklist_categories=()))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | odd_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(json_values, max_size=6))
def test_jsonl_round_trip_of_any_rows(tmp_path_factory: pytest.TempPathFactory, rows: list[Any]) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    write_jsonl(path, rows)
    path.read_bytes().decode("utf-8")  # valid UTF-8 even with lone surrogates in the rows
    assert read_jsonl(path) == rows
    with path.open("a", encoding="utf-8") as sink:
        append_row(sink, {"more": rows})
    assert read_jsonl(path) == [*rows, {"more": rows}]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.dictionaries(odd_text, json_values, max_size=3), min_size=1, max_size=5), cut=st.data()
)
def test_a_cut_last_line_is_dropped_and_the_whole_rows_kept(rows: list[Any], cut: st.DataObject) -> None:
    text = "".join(json_line(row) for row in rows)
    last = json_line({"instance_id": "cut", "text": "a longer row the writer was killed in"})
    cut_text = text + last[: cut.draw(st.integers(1, len(last) - 3))]
    assert parse_jsonl(cut_text, "out.jsonl", drop_cut_tail=True) == rows
    with pytest.raises(JsonlError, match=r"^out\.jsonl:\d+: not JSON \("):
        parse_jsonl(cut_text, "out.jsonl")


def test_a_bad_line_before_the_last_is_an_error_even_when_cut_tails_are_dropped() -> None:
    with pytest.raises(JsonlError, match=r"^f:2: not JSON"):
        parse_jsonl('{"a": 1}\n{oops\n\n{"b": 2}', "f", drop_cut_tail=True)


def test_lines_end_at_newlines_only() -> None:
    row = {"text": "a\u2028b\x85c\u2029d"}
    lines = jsonl_lines(json.dumps(row, ensure_ascii=False) + "\n\n" + json.dumps(row))
    assert [(line.number, line.value, line.last) for line in lines] == [(1, row, False), (3, row, True)]


def test_resuming_keeps_a_row_holding_a_unicode_line_separator(tmp_path: Path) -> None:
    # str.splitlines cut such a row in two, and resuming refused the file as "line 1 is not JSON"
    out = tmp_path / "run.jsonl"
    out.write_text(json_line({"instance_id": "a-1", "error": "said \u2028 and \x85"}), encoding="utf-8")
    assert finished_ids(out) == {"a-1"}


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "new \ud800")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left beside it


def test_atomic_write_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.json"
    write_atomic(path, "first\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0600
    path.chmod(0o640)
    write_atomic(path, "second\n")
    assert path.read_text(encoding="utf-8") == "second\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(path.parent) == ["out.json"]


def test_safe_name() -> None:
    assert safe_name("django__django-11099") == "django__django-11099"
    assert safe_name("org/repo:1 x") == "org_repo_1_x"
