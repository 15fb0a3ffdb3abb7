"""The reply and answer parser, and the wire rendering of the one chat format."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from reposearcher_plugin.agent.chat import assistant_message, to_wire, tool_message
from reposearcher_plugin.agent.parse import parse_answer
from reposearcher_plugin.agent.tool_calls import (
    ParsedCall,
    hermes_tool_calls,
    loose_tool_calls,
    native_tool_calls,
    render_hermes_call,
)


def test_agentless_block_with_entity_ids_and_rank_prefixes():
    text = """Reasoning first.
```
django/db/models/query.py
function: QuerySet.union
class: EmptyQuerySet
variable: MAX_GET_RESULTS

Top_2 : django/db/models/sql/compiler.py::SQLCompiler.get_combinator_sql
3. ./django/db/models/sql/query.py:Query.combine
```"""
    answer = parse_answer(text)
    assert answer.problem is None
    assert answer.locations == [
        "django/db/models/query.py::QuerySet.union",
        "django/db/models/query.py::EmptyQuerySet",
        "django/db/models/sql/compiler.py::SQLCompiler.get_combinator_sql",
        "django/db/models/sql/query.py::Query.combine",
    ]
    assert answer.files == [
        "django/db/models/query.py",
        "django/db/models/sql/compiler.py",
        "django/db/models/sql/query.py",
    ]


def test_the_last_block_with_locations_wins_and_thinking_is_ignored():
    text = (
        "<think>\n```\nwrong/guess.py\nfunction: nope\n```\n</think>\n"
        "Example format:\n```\nsrc/a.py\nfunction: first\n```\nFinal:\n```\nsrc/b.py\nfunction: second\n```\n"
        "```python\nprint('no locations here')\n```"
    )
    assert parse_answer(text).locations == ["src/b.py::second"]


def test_answer_tag_narrows_the_search():
    text = "```\nnot/this.py\n```\n<answer>\n```\nsrc/x.py\nfunction: C.m\n```\n</answer>"
    assert parse_answer(text).locations == ["src/x.py::C.m"]


def test_files_only_answer():
    answer = parse_answer("```\nsklearn/base.py\nsklearn/linear_model/__init__.py\n```")
    assert answer.files == ["sklearn/base.py", "sklearn/linear_model/__init__.py"]
    assert answer.locations == []


def test_unfenced_text_only_takes_lines_that_are_locations():
    text = "The bug is in src/a.py, clearly.\nsrc/b.py::f\nsrc/c.py\nfunction: g"
    answer = parse_answer(text)
    assert answer.locations == ["src/b.py::f", "src/c.py::g"]
    assert "no ``` block" in answer.problem


def test_unreadable_answers_say_why():
    assert parse_answer("").problem == "the answer is empty"
    assert parse_answer("I could not find it.").problem == "the answer has no ``` block"
    assert parse_answer("```\nno idea\n```").problem == "no location found in the answer's ``` block"


def test_hermes_edge_cases():
    text = (
        'a <tool_call>{"name": "f", "parameters": {"x": 1}}</tool_call>'
        '<tool_call>{"name": "g", "arguments": "{\\"y\\": 2}"}</tool_call>'
        "<tool_call>[1, 2]</tool_call>"
        '<tool_call>{"name": "h", "arguments": {"z": 3}}'  # cut off by the end of generation
    )
    content, calls = hermes_tool_calls(text, first_id=7)
    assert content == "a"
    assert [call.id for call in calls] == ["call_7", "call_8", "call_9", "call_10"]
    assert (calls[0].name, calls[0].arguments) == ("f", {"x": 1})
    assert (calls[1].name, calls[1].arguments) == ("g", {"y": 2})  # JSON-encoded twice
    assert calls[2].name == "" and "must be" in calls[2].error
    assert (calls[3].name, calls[3].arguments) == ("h", {"z": 3})


def test_unreadable_hermes_block_replays_verbatim():
    block = '{"name": "search_class", "arguments": {"class_name": }'
    _, [call] = hermes_tool_calls(f"<tool_call>\n{block}\n</tool_call>")
    assert call.name == "" and "search_class" in call.error and "not valid JSON" in call.error
    assert render_hermes_call(call.name, call.raw_arguments) == f"<tool_call>\n{block}\n</tool_call>"


def test_native_calls_from_dicts_and_objects():
    from types import SimpleNamespace

    litellm_like = SimpleNamespace(id="x1", function=SimpleNamespace(name="f", arguments={"a": 1}))
    calls = native_tool_calls([litellm_like, {"id": "x2", "function": {"name": "", "arguments": "[]"}}])
    assert calls[0] == ParsedCall("x1", "f", {"a": 1}, '{"a": 1}')
    assert calls[1].arguments is None and "must be a JSON object" in calls[1].error


@given(
    st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(), st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3)),
        max_size=4,
    ),
)
def test_hermes_rendering_round_trips(name, arguments):
    raw = json.dumps(arguments, ensure_ascii=False)
    _, [call] = hermes_tool_calls("thinking\n" + render_hermes_call(name, raw))
    assert (call.name, call.arguments, call.error) == (name, arguments, None)


def test_hermes_wire_merges_tool_results_into_one_user_turn():
    calls = [ParsedCall("c0", "f", {"a": 1}, '{"a": 1}'), ParsedCall("c1", "g", {}, "{}")]
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "issue"},
        assistant_message("Looking.", calls),
        tool_message(calls[0], "result f"),
        tool_message(calls[1], "result g"),
    ]
    wire = to_wire(messages, "hermes")
    assert wire[2] == {
        "role": "assistant",
        "content": 'Looking.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>',
    }
    assert wire[3] == {
        "role": "user",
        "content": "<tool_response>\nresult f\n</tool_response>\n<tool_response>\nresult g\n</tool_response>",
    }
    assert len(wire) == 4
    assert to_wire(messages, "native") == messages  # native: the canonical form is the wire form


def test_prompt_mentions_submit_only_when_it_is_offered():
    from reposearcher_plugin.agent.chat import default_prompt
    from reposearcher_plugin.rl.toolset import tool_names
    from reposearcher_plugin.tools import profile_specs

    specs = profile_specs("default")
    with_submit = default_prompt("issue", "overview", specs, "native", 5)[0]["content"]
    offered = set(tool_names("default"))
    without = default_prompt("issue", "overview", [s for s in specs if s.name in offered], "native", 5)[0][
        "content"
    ]
    assert "call `submit`" in with_submit
    assert "submit" not in without and "reply with the answer" in without


# --- tool calls in the forms small models write ---------------------------------------------------------

LOOSE_TOOLS = {
    "search_class": ["class_name", "file"],
    "show_code": ["file", "start_line", "end_line"],
    "get_repo_structure": ["path", "depth"],
}


def test_fenced_json_call_is_read_and_cut_from_the_text():
    text = 'Let me look.\n```json\n{"name": "search_class", "arguments": {"class_name": "Session"}}\n```\nThen more.'
    content, calls = loose_tool_calls(text, LOOSE_TOOLS)
    assert [(c.name, c.arguments, c.error) for c in calls] == [
        ("search_class", {"class_name": "Session"}, None)
    ]
    assert content == "Let me look.\n\nThen more."


def test_loose_json_variants():
    forms = [
        '{"name": "show_code", "parameters": {"file": "a.py", "start_line": 1, "end_line": 3}}',
        '{"function": {"name": "show_code", "arguments": "{\\"file\\": \\"a.py\\", \\"start_line\\": 1, \\"end_line\\": 3}"}}',
        '[{"name": "show_code", "arguments": {"file": "a.py", "start_line": 1, "end_line": 3}}]',
    ]
    for text in forms:
        _, calls = loose_tool_calls(text, LOOSE_TOOLS)
        assert [(c.name, c.arguments) for c in calls] == [
            ("show_code", {"file": "a.py", "start_line": 1, "end_line": 3})
        ], text


def test_several_calls_keep_their_written_order_and_ids():
    text = (
        "```python\nshow_code('a.py', 1, 9)\n```\n"
        '```json\n{"name": "search_class", "arguments": {"class_name": "B"}}\n```\n'
        "get_repo_structure(depth=1)"
    )
    _, calls = loose_tool_calls(text, LOOSE_TOOLS, first_id=4)
    assert [(c.id, c.name) for c in calls] == [
        ("call_4", "show_code"),
        ("call_5", "search_class"),
        ("call_6", "get_repo_structure"),
    ]
    assert calls[0].arguments == {"file": "a.py", "start_line": 1, "end_line": 9}
    assert calls[2].arguments == {"depth": 1}


def test_answers_prose_and_unknown_tools_are_not_calls():
    texts = [
        "```\nrequests/sessions.py\nfunction: Session.request\n```",
        'Use {"name": "grep", "arguments": {}} to search.',
        "Calling search_class(name) with a variable is not a literal call",
        "print(search_class('x'))",
        "search_class('a', 'b', 'c')",  # more positional arguments than the tool takes
    ]
    for text in texts:
        content, calls = loose_tool_calls(text, LOOSE_TOOLS)
        assert calls == [] and content == text.strip(), text


@given(st.text(alphabet=st.sampled_from(list("{}[]\"name:search_class()`\n ,'0123")), max_size=400))
def test_loose_calls_never_raise(text):
    content, calls = loose_tool_calls(text, LOOSE_TOOLS)
    assert isinstance(content, str)
    assert all(call.name in LOOSE_TOOLS for call in calls)


def test_answer_written_as_submit_arguments_in_a_json_block():
    text = (
        '```json\n{\n  "locations": [\n    "src/matplotlib/widgets.py::RangeSlider.on_changed",\n'
        '    "src/matplotlib/widgets.py::Button.on_clicked"\n  ],\n  "reason": "callbacks"\n}\n```'
    )
    answer = parse_answer(text)
    assert answer.locations == [
        "src/matplotlib/widgets.py::RangeSlider.on_changed",
        "src/matplotlib/widgets.py::Button.on_clicked",
    ]
    assert answer.problem is None
    wrapped = '```json\n{"name": "submit", "arguments": {"locations": ["a.py::f"]}}\n```'
    assert parse_answer(wrapped).locations == ["a.py::f"]
    assert parse_answer('```\n["a.py::f", "b.py::C.g"]\n```').locations == ["a.py::f", "b.py::C.g"]
    # an empty list is still no answer
    assert parse_answer('```json\n{"locations": [], "reason": "not found"}\n```').empty


def test_quoted_comma_separated_lines_read_as_locations():
    answer = parse_answer("```\n\"a.py::f\",\n'b.py::C.g',\n```")
    assert answer.locations == ["a.py::f", "b.py::C.g"]


HOSTILE_JSON = [
    "[" * 3000,  # RecursionError inside the decoder
    '{"a": ' * 3000 + "1" + "}" * 3000,
    '{"x": ' + "9" * 5000 + "}",  # ValueError: over the 4,300-digit limit
]


def test_hostile_json_in_arguments_is_an_error_not_an_exception():
    from reposearcher_plugin.agent.tool_calls import read_arguments
    from reposearcher_plugin.rl.reward import compute_score

    for raw in HOSTILE_JSON:
        arguments, _, error = read_arguments("show_code", raw)
        assert (arguments is None) == (error is not None)
        calls = native_tool_calls([{"id": "c", "function": {"name": "show_code", "arguments": raw}}])
        assert len(calls) == 1
        _, calls = hermes_tool_calls(f'<tool_call>{{"name": "show_code", "arguments": {raw}}}</tool_call>')
        assert len(calls) == 1 and calls[0].error
        _, calls = hermes_tool_calls(f"<tool_call>{raw}</tool_call>")
        assert len(calls) == 1 and calls[0].error
        rollout = f"<tool_call>{raw}</tool_call>\n```\nshop/pricing.py::total\n```"
        assert compute_score("reposearcher", rollout, ["shop/pricing.py::total"])["score"] >= 0.0
    assert read_arguments("x", json.dumps(json.dumps({"a": 1})))[0] == {"a": 1}  # twice-encoded still reads
    assert read_arguments("x", json.dumps(""))[0] == {}
    encoded = json.dumps({"a": 1})
    for _ in range(12):  # encoded over and over (each layer doubles the escapes): an error, no recursion
        encoded = json.dumps(encoded)
    assert "must be a JSON object, got str" in read_arguments("x", encoded)[2]
    assert "nested too deeply" in read_arguments("x", "[" * 3000)[2]


@given(st.text(alphabet=st.sampled_from(list('{}[]":,0123456789\\ ae')), max_size=3000))
def test_argument_parsing_never_raises(raw):
    from reposearcher_plugin.agent.tool_calls import read_arguments

    arguments, text, error = read_arguments("show_code", raw)
    assert isinstance(text, str) and (arguments is None) == (error is not None)
