"""One rendering of a localization result for every host (issue 14, move 2): the sections layout of the
SWE-agent and mini-swe-agent prompts, the compact one of the OpenHands hook and the MCP summary."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.hosts.localization_text import render_localization
from reposearcher_plugin.hosts.mcp_service import localize_summary
from reposearcher_plugin.hosts.openhands_hook import render_context
from reposearcher_plugin.hosts.swe_agent_instances import instance_row

INVOICE = {
    "billing/invoice.py": (
        "class Invoice:\n    def total(self):\n        return 1\n\n\ndef helper():\n    return 2\n"
    )
}


def test_sections_list_definitions_then_files_with_spans_from_the_index(make_index):
    index = make_index(INVOICE)
    text = render_localization(
        ["billing/invoice.py::Invoice.total", "gone.py::f", "billing/invoice.py::helper"],
        ["billing/invoice.py", "gone.py"],
        header="Hints:",
        max_locations=2,
        index=index,
    )
    assert text == (
        "Hints:\n"
        "Functions and classes most likely to need changes, most likely first:\n"
        "1. billing/invoice.py::Invoice.total (method, lines 2-3)\n"
        "2. gone.py::f\n"
        "\n"
        "Files, most likely first:\n"
        "1. billing/invoice.py\n"
        "2. gone.py"
    )
    assert render_localization([], []) == "" and render_localization([], [], header="Hints:") == ""
    assert render_localization(["a.py::f"], []) == (
        "Functions and classes most likely to need changes, most likely first:\n1. a.py::f"
    )


def test_compact_says_when_a_list_is_empty(make_index):
    index = make_index(INVOICE)
    located = render_localization(["billing/invoice.py::helper"], [], compact=True, index=index)
    assert located == "1. billing/invoice.py::helper (function, lines 6-7)\nFiles: (none)"
    files = render_localization([], ["a.py", "b.py", "c.py"], compact=True, max_files=2)
    assert files == "(no functions or classes located)\nFiles: a.py, b.py"
    assert index.find("billing/invoice.py") is None  # a file id names no definition
    assert index.find("billing/invoice.py::Invoice").kind == "class"


def test_every_host_shows_the_same_ranking(make_index):
    index = make_index(INVOICE)
    row = {
        "locations": ["billing/invoice.py::Invoice.total", "billing/invoice.py::helper"],
        "found_files": ["billing/invoice.py"],
        "model": "retrieval",
        "usage": {"wall_s": 0.5},
        "error": "ran out of turns",
    }
    compact = render_localization(row["locations"], row["found_files"], compact=True, index=index)
    assert render_context(index, row, 10, 0.5).split("\n", 1)[1] == compact
    assert localize_summary(row, index).split("\n")[1:-1] == compact.split("\n")  # then "error: ..."
    shown = instance_row(Instance("a__b-1", "a/b", "c0ffee", "x"), {**row, "error": None})
    assert shown["extra_fields"]["localization"] == render_localization(row["locations"], row["found_files"])


_ids = st.lists(st.text(string.ascii_letters + "/._:", min_size=1, max_size=12), max_size=12)


@given(_ids, _ids, st.integers(1, 12), st.integers(1, 12))
def test_sections_number_exactly_the_cut_rankings(locations, files, max_locations, max_files):
    text = render_localization(locations, files, max_locations=max_locations, max_files=max_files)
    numbered = [line.split(". ", 1)[1] for line in text.splitlines() if line[:1].isdigit()]
    assert numbered == locations[:max_locations] + files[:max_files]
    assert (text == "") == (not locations and not files)
