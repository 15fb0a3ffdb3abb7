"""One line model for the index and the tools: a line ends at "\\n" (tree-sitter's rows, git's line numbers).

Form feed, vertical tab, NEL, U+2028/U+2029, the file separators and a lone carriage return end a line
for ``str.splitlines`` but not for tree-sitter; entity spans from the index must show exactly their
definition's lines whatever a file holds before them (issue 12, item 5).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reposearcher_plugin.index import build_index
from reposearcher_plugin.index.languages import parse_source
from reposearcher_plugin.index.lines import line_count, split_lines
from reposearcher_plugin.tools import ToolBox
from tests.conftest import write_tree

# Everything str.splitlines() splits at except "\n" itself.
OTHER_LINE_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]

# Each character sits before the definitions, where Python allows it: a form feed alone on a line (as in
# litellm's base_secret_manager.py), the others inside comments and strings.
TRICKY = (
    "import os\n"
    "\x0c\n"
    "# vertical tab \x0b and form feed \x0c in a comment\n"
    'NEL = "a\x85b"\n'
    "# line separator \u2028 paragraph separator \u2029\n"
    "# file, group and record separators \x1c \x1d \x1e\n"
    "# a lone carriage return \r in a comment\n"
    "\x0c\n"
    "def first():\n"
    '    """Doc\x0c string."""\n'
    "    return 1\n"
    "\x0c\n"
    "\n"
    "class Second:\n"
    "    def method(self):\n"
    "        return 2\n"
)
EXPECTED = {
    "first": ["def first():", '    """Doc\\f string."""', "    return 1"],
    "Second.method": ["    def method(self):", "        return 2"],
}


def _body(observation: str) -> list[tuple[int, str]]:
    """(line number, text) of each numbered line of an observation."""
    rows = []
    for row in observation.split("\n"):
        number, bar, text = row.partition(" | ")
        if bar and number.strip().isdigit():
            rows.append((int(number), text))
    return rows


def _check_views(tmp_path, cache, name: str, content: bytes) -> None:
    root = write_tree(tmp_path / name, {"tricky.py": content})
    index = build_index(root, cache=cache, workers=1)
    parse = index.files["tricky.py"].parse
    spans = {entity.qualname: (entity.start, entity.end) for entity in parse.entities}
    assert spans == {"first": (9, 11), "Second": (14, 16), "Second.method": (15, 16)}
    box = ToolBox(index)
    function = box.call("search_function", {"function_name": "first"}).text
    method = box.call("search_class_method", {"class_name": "Second", "method_name": "method"}).text
    assert _body(function) == list(enumerate(EXPECTED["first"], start=9))
    assert _body(method) == list(enumerate(EXPECTED["Second.method"], start=15))
    whole = box.call("show_code", {"file": "tricky.py", "start_line": 1, "end_line": 100}).text
    assert whole.split("\n", 1)[0] == f"tricky.py (lines 1-{parse.lines} of {parse.lines})"
    # the observation itself splits into lines only at "\n": no host can renumber it
    assert whole.splitlines() == whole.split("\n")
    assert [number for number, _ in _body(whole)] == list(range(1, parse.lines + 1))
    raw = ToolBox(index, "tooltrain").call(
        "get_code_of_file_function", {"file_name": "tricky.py", "func_name": "first"}
    )
    assert raw.text == 'def first():\n    """Doc\x0c string."""\n    return 1'


def test_entity_spans_show_exactly_their_lines_after_every_line_break_character(tmp_path, cache):
    _check_views(tmp_path, cache, "lf", TRICKY.encode())


def test_crlf_files_number_lines_the_same_and_never_show_the_carriage_return(tmp_path, cache):
    _check_views(tmp_path, cache, "crlf", TRICKY.replace("\n", "\r\n").encode())


def test_references_and_search_read_lines_the_same_way(tmp_path, cache):
    root = write_tree(tmp_path / "repo", {"tricky.py": TRICKY.encode()})
    box = ToolBox(build_index(root, cache=cache, workers=1))
    references = box.call("find_references", {"name": "first"}).text
    assert "tricky.py:9 [first]: def first():" in references


def test_split_lines_examples():
    assert split_lines("") == []
    assert split_lines("a") == ["a"]
    assert split_lines("a\n") == ["a"]
    assert split_lines("a\n\n") == ["a", ""]
    assert split_lines("a\r\nb\r\n") == ["a", "b"]
    assert split_lines("a\rb\n") == ["a\rb"]
    assert split_lines("a\r") == ["a\r"]  # a carriage return ends a line only before "\n"
    assert split_lines("\x0c\n\u2028x\n") == ["\x0c", "\u2028x"]


_PIECES = [*OTHER_LINE_BREAKS, "a", " ", "é", "#"]
_LINE_TEXT = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)
# with CRLF inside a "line": the junk after it is a line of its own
_CRLF_TEXT = st.lists(st.sampled_from([*_PIECES, "\r\n"]), max_size=12).map("".join)


@given(st.lists(_CRLF_TEXT, max_size=8), st.booleans())
def test_split_lines_agrees_with_the_index_line_count(lines: list[str], final_newline: bool):
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    assert len(split_lines(text)) == line_count(text.encode())
    assert all("\n" not in line for line in split_lines(text))


@settings(max_examples=60, deadline=None)
@given(st.lists(_LINE_TEXT, max_size=6))
def test_tree_sitter_rows_are_split_lines_rows(junk: list[str]):
    """A definition after comment lines holding any line-break character starts where split_lines says."""
    text = "".join(f"#{line}\n" for line in junk) + "def marker():\n    return 1\n"
    entities = parse_source("lang_python", "x.py", text.encode()).entities
    assert [entity.qualname for entity in entities] == ["marker"]
    lines = split_lines(text)
    assert lines[entities[0].start - 1] == "def marker():"
    assert entities[0].end == len(lines)


def test_the_repair_prompt_shows_the_predicted_definition_by_the_same_lines(tmp_path, cache):
    from reposearcher_plugin.evaluation.locations import Prediction
    from reposearcher_plugin.repair.options import PatchOptions
    from reposearcher_plugin.repair.prompt import localized_code

    root = write_tree(tmp_path / "repo", {"tricky.py": TRICKY.encode()})
    index = build_index(root, cache=cache, workers=1)
    prediction = Prediction("x", files=["tricky.py"], functions=["tricky.py::first"])
    code, shown = localized_code(index, root, prediction, PatchOptions(context_lines=0))
    assert shown == ["tricky.py::first"]
    assert code == "### tricky.py\n" + "\n".join(
        f"{number:>5} | {text}"
        for number, text in enumerate(["def first():", '    """Doc\x0c string."""', "    return 1"], start=9)
    )
