"""Hostile text: model output through the answer parser and the reward, issue text through the offline
default's mention extractor (issue 12, item 4).

Three parts. Properties (hypothesis) over arbitrary text built from the pieces that matter (every tag the
parser knows, opened and not closed, deep brackets, numbers past the decoder's limits, location lines,
traceback and error lines): nothing raises and every output is bounded by the input. Exactness: each
pattern rewritten to run in linear time gives what the old one gave, on inputs short enough for the old
one to finish. Regressions: one test per case that was quadratic, at a size where the old code takes
several seconds on this machine (measured; each docstring says how long) and the new a few milliseconds.
The time budgets themselves are measured by eval/bench_hostile_text.py, not asserted here.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reposearcher_plugin.agent.parse import (
    MAX_ANSWER_ITEMS,
    MAX_ANSWER_LINES,
    MAX_PATH_CHARS,
    Answer,
    answer_blocks,
    drop_thinking,
    parse_answer,
    parse_location_lines,
)
from reposearcher_plugin.agent.tool_calls import (
    hermes_tool_calls,
    load_json,
    loose_tool_calls,
    native_tool_calls,
    render_hermes_call,
)
from reposearcher_plugin.index.locations import normalize_path
from reposearcher_plugin.rank import (
    MAX_MESSAGES,
    cap_issue,
    extract_mentions,
    literal_pieces,
    message_fragments,
)
from reposearcher_plugin.rl.reward import assistant_turns, compute_score

TOOLS = {"search_code": ["query"], "show_code": ["path", "start"], "submit": ["locations"]}
GOLD = ["pkg/mod.py::Cls.meth"]
SCORE_KEYS = {
    "score",
    "entity_score",
    "file_score",
    "ndcg@5",
    "recall@5",
    "file_ndcg@5",
    "file_recall@5",
    "parsed",
    "predicted",
    "invalid_calls",
    "penalty",
}

MODEL_PIECES = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<tool_response>",
    "</tool_response>",
    "<|im_start|>",
    "<|im_end|>",
    "assistant\n",
    "user\n",
    "```",
    "```json\n",
    "\n",
    " ",
    "\t",
    '{"name": "submit", "arguments": {"locations": [',
    '{"name": "search_code", "arguments": "{\\"query\\": \\"x\\"}"}',
    '"pkg/mod.py::Cls.meth"',
    "]}}",
    "pkg/mod.py",
    "function: Cls.meth",
    "class: Cls",
    "Top_1 : pkg/mod.py::Cls.meth",
    "./",
    "//",
    "\\",
    "9" * 5000,
    "1e999",
    "NaN",
    'search_code("q")',
    "show_code(path='a.py', start=1)",
    ";",
    "\x00",
    "é",
    "\u2028",
    ",",
    ":",
    '"',
    "'",
]
ISSUE_PIECES = [
    "\n",
    " ",
    "```",
    "```python\n",
    "`",
    'File "pkg/mod.py", line 12, in Cls.meth',
    "pkg/mod.py:12: in meth",
    "File ~/pkg/mod.py:3, in f(x)",
    "  pkg/mod.py in f(",
    "E   ValueError: the header line is not valid: 'x' (1) in a/b.py here",
    "TypeError: ",
    "Error:",
    "E" * 50,
    "obj.method(",
    "django.db.models.QuerySet",
    "snake_case",
    "CamelCase",
    "__dunder__",
    "a/b/c.py",
    "./",
    "a.",
    "a/",
    "9abc(",
    "é",
    "\x00",
    "\ue000",
]


def hostile(pieces: list[str]) -> st.SearchStrategy[str]:
    deep = st.builds(
        lambda mark, depth: mark * depth, st.sampled_from(list("[{(<`'\"")), st.integers(1, 3000)
    )
    word = st.builds(
        lambda letter, length: letter * length, st.sampled_from(list("aE_9 ")), st.integers(1, 3000)
    )
    part = st.one_of(st.sampled_from(pieces), st.text(max_size=12), deep, word)
    return st.lists(part, max_size=30).map("".join)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXACT = settings(max_examples=250, deadline=None)


def assert_bounded_answer(answer: Answer, text: str) -> None:
    assert isinstance(answer, Answer)
    assert len(answer.files) <= MAX_ANSWER_ITEMS and len(answer.locations) <= MAX_ANSWER_ITEMS
    assert all(isinstance(path, str) and len(path) <= MAX_PATH_CHARS for path in answer.files)
    # a location is a path and a name written on one line of the text
    assert all(len(location) <= MAX_PATH_CHARS + 2 + len(text) for location in answer.locations)


# --- nothing raises, everything is bounded ----------------------------------------------------------


@PROPERTY
@given(hostile(MODEL_PIECES))
def test_the_answer_parser_reads_any_text(text):
    assert_bounded_answer(parse_answer(text), text)
    blocks, _ = answer_blocks(text)
    assert blocks and all(len(block) <= len(text) for block in blocks)
    assert len(drop_thinking(text)) <= len(text)
    for strict in (False, True):
        assert_bounded_answer(parse_location_lines(text.splitlines(), strict=strict), text)
    load_json(text)


@PROPERTY
@given(hostile(MODEL_PIECES))
def test_tool_calls_are_read_from_any_text(text):
    content, calls = hermes_tool_calls(text)
    assert len(content) <= len(text) and len(calls) <= text.count("<tool_call>")
    loose_content, loose_calls = loose_tool_calls(text, TOOLS)
    assert len(loose_content) <= len(text) and len(loose_calls) <= 64
    assert all(call.name in TOOLS for call in loose_calls)
    native = native_tool_calls([{"id": text[:20], "function": {"name": text[:50], "arguments": text}}])
    for call in [*calls, *loose_calls, *native]:
        assert (call.arguments is None) == (call.error is not None) or call.error
        # re-serialised arguments grow at most by JSON's spacing (", ", ": ", Infinity for 1e999)
        assert len(call.raw_arguments) <= 3 * len(text) + 16
        call.key()
        render_hermes_call(call.name, call.raw_arguments)


@PROPERTY
@given(hostile(MODEL_PIECES), st.sampled_from([None, 2, -5, math.inf, "x", [1, 2], 10**400]))
def test_compute_score_scores_any_text(text, reported):
    result = compute_score("reposearcher", text, GOLD, extra_info={"invalid_tool_calls": reported})
    assert set(result) == SCORE_KEYS
    assert all(isinstance(value, float) and math.isfinite(value) for value in result.values())
    assert 0.0 <= result["score"] <= 1.0 and result["parsed"] in (0.0, 1.0)
    assert result["predicted"] <= MAX_ANSWER_ITEMS
    penalised = compute_score("r", text, GOLD, format_penalty=0.5, invalid_call_penalty=0.1)
    assert -1.5 <= penalised["score"] <= 1.0
    turns, _ = assistant_turns(text)
    assert sum(len(turn) for turn in turns) <= len(text)


@PROPERTY
@given(hostile(ISSUE_PIECES))
def test_mentions_are_extracted_from_any_issue(text):
    mentions = extract_mentions(text)
    assert all(name in text for name in mentions.names)
    assert all(dotted in text for dotted in mentions.dotted)
    assert all(path in text and function in text for path, _, function in mentions.frames)
    assert all(len(path) <= len(text) for path in mentions.paths)
    assert len(mentions.messages) <= MAX_MESSAGES and all(fragment in text for fragment in mentions.messages)
    capped, note = cap_issue(text, limit=500)
    assert len(capped) <= 500 and (note is None) == (len(text) <= 500)


# --- the linear patterns read what the old ones read ----------------------------------------------------

OLD_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
OLD_MESSAGE_BREAK = re.compile(
    r"\||'[^']*'|\"[^\"]*\"|`[^`]*`|<[^>]*>|\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|(?<!\w)[-+]?\d[\w.,:]*|\S*[/\\]\S*"
)
OLD_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")
OLD_MESSAGE = re.compile(
    r"^[ \t>E]*(?:[\w.]*(?:Error|Exception|Warning|Exit|Failure)):[ \t]*(.{8,300})$", re.M
)
OLD_PY_CALL_LINE = re.compile(
    r"^[ \t]*`{0,3}(?:[A-Za-z_]\w*\.)?([A-Za-z_]\w*)\(.*\)`{0,3}[ \t]*;?[ \t]*$", re.MULTILINE
)
OLD_EMPTY_FENCE = re.compile(r"```[^\n`]*\s*```")


def joined(pieces: list[str], size: int = 16) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=size).map("".join)


@EXACT
@given(joined(["<think>", "</think>", "<think", "a", "\n", "</think", ">"]))
def test_thinking_is_dropped_as_before(text):
    assert drop_thinking(text) == OLD_THINK.sub("", text)


@EXACT
@given(st.text(alphabet=st.sampled_from(list("ab1-+./\\ '\"`<>()[]{}|:,_é\ue000")), max_size=40))
def test_message_pieces_are_split_as_before(text):
    assert literal_pieces(text) == OLD_MESSAGE_BREAK.split(text)


@EXACT
@given(st.text(alphabet=st.sampled_from(list("aZ_9é( \t\n.x")), max_size=30))
def test_call_mentions_are_found_as_before(text):
    from reposearcher_plugin.rank.mentions import _CALL

    assert _CALL.findall(text) == OLD_CALL.findall(text)


@EXACT
@given(
    joined(["E", " ", "\t", ">", "Error", "Exception", "Exit", "EOF", "rror", "Value", ".", ":", "x", "\n"])
    .map(lambda head: head + ": abcdefgh ijk lmnop qr")
    .flatmap(lambda text: st.sampled_from([text, text.replace(": ", ":     "), text + "\nE " + text]))
)
def test_error_messages_are_found_as_before(text):
    from reposearcher_plugin.rank.mentions import _MESSAGE

    def fragments(pattern: re.Pattern[str]) -> list[str]:
        return [
            fragment for match in pattern.finditer(text) for fragment in message_fragments(match.group(1))
        ]

    # a line whose message is under 8 characters once its blanks are read is no longer a match; such a
    # message never made a fragment (fragments have 12 characters or more), so what is found is the same
    assert fragments(_MESSAGE) == fragments(OLD_MESSAGE)


# --- the mention extractor's fast finders read what full scans of the text read -------------------------

OLD_WORD = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
OLD_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
MENTION_PIECES = [
    *[
        "```",
        "`",
        "``",
        'File "',
        '", line ',
        "12",
        ", in ",
        "foo",
        "Bar",
        "x_y",
        "__init__",
        "_",
        "CamelCase",
    ],
    *[
        "a.b",
        ".py",
        ".pyx",
        ".py:",
        ":3:",
        " in ",
        ".py in ",
        "(",
        ")",
        " ",
        "\n",
        "\t",
        ">",
        "E ",
        ".",
        ".1",
    ],
    *["Error", "ValueError: ", "Exception:", "Warning:", "Exit:", "Failure:", "/", "\\", "-", "é", "2", "'"],
    *['"', "<", "[", "]", "{", "}", "|", "self.x(", "a..b", "x.2ab(", "~/v/p/q.py in _c(self, o)\n"],
    *['  File "pkg/m.py", line 3, in f\n', "src/a/b.py:10: in test_x\n", "File ~/x/y.py:12, in A.b(self)\n"],
    "TypeError: cannot read 'a b' (x) of pkg/mod.py here ",
]


def plain_mentions(issue: str) -> dict:
    """extract_mentions as it was before its passes were merged (issue 12, the 0.2 s per MB goal): one full
    scan of the text per pattern, each pattern as it was then."""
    from reposearcher_plugin.rank import implied
    from reposearcher_plugin.rank import mentions as m
    from reposearcher_plugin.tools.tokens import STOPWORDS

    def unique(items):
        return list(dict.fromkeys(items))

    fences = list(m._FENCE.finditer(issue))
    without_fences = m._FENCE.sub(" ", issue)
    code = [match.group(0) for match in fences] + m._BACKTICK.findall(without_fences)
    frames = [
        (match.start(), match.group(1), int(match.group(2)), match.group(3) or "")
        for pattern in (m._FRAME, m._PYTEST_FRAME, m._IPYTHON_FRAME)
        for match in pattern.finditer(issue)
    ]
    frames += [
        (match.start(), match.group(1), 0, match.group(2)) for match in m._IPYTHON_OLD_FRAME.finditer(issue)
    ]
    frames = [(path, line, function) for _, path, line, function in sorted(frames)]
    without_frames = issue
    for pattern in (m._FRAME, m._PYTEST_FRAME, m._IPYTHON_FRAME, m._IPYTHON_OLD_FRAME):
        without_frames = pattern.sub(" ", without_frames)
    paths = unique(normalize_path(path) for path in m._PATH.findall(without_frames))
    without_paths = m._PATH.sub(" ", without_frames)
    dotted = [name for name in unique(OLD_DOTTED.findall(without_paths)) if not m._NOT_A_NAME.fullmatch(name)]
    names = [word for word in OLD_WORD.findall("\n".join(code)) if word not in STOPWORDS]
    names += m._CALL.findall(without_paths)
    names += [word for word in unique(OLD_WORD.findall(without_paths)) if m._code_like(word)]
    names += [part for name in dotted for part in name.split(".")]
    names += [
        part for _, _, function in frames if not function.startswith("<") for part in function.split(".")
    ]
    fragments: dict[str, None] = {}
    for message in unique(match.group(1) for match in m._MESSAGE.finditer(issue)):
        for fragment in message_fragments(m._PYTHON_MESSAGES.sub("|", message)):
            fragments[fragment] = None
        if len(fragments) >= MAX_MESSAGES:
            break
    return {
        "dotted": dotted,
        "names": [name for name in unique(names) if len(name) > 1 and not name.isdigit()],
        "paths": paths,
        "frames": frames,
        "messages": list(fragments)[:MAX_MESSAGES],
        # read by plain scans already (issue 15, item 3): the same calls
        "dunders": implied.implied_dunders("\n".join(code), issue),
        "missing": implied.missing_members(issue),
        "asks_to_add": implied.asks_to_add(issue),
    }


@EXACT
@given(joined(MENTION_PIECES, size=40))
def test_mentions_are_extracted_as_by_full_scans(text):
    assert asdict(extract_mentions(text)) == plain_mentions(text)


@EXACT
@given(joined(MENTION_PIECES, size=40))
def test_each_fast_finder_finds_what_a_full_scan_finds(text):
    from reposearcher_plugin.rank import mentions as m

    def spans(matches):
        return [match.span() for match in matches]

    assert m._fences(text) == ([match.group() for match in m._FENCE.finditer(text)], m._FENCE.sub(" ", text))
    for pattern, run, needle in (
        (m._PATH, m._PATH_RUN, m._PATH_NEEDLE),
        (m._DOTTED, m._DOTTED_RUN, m._DOTTED_NEEDLE),
    ):
        assert spans(m._run_start_matches(pattern, run, needle, text)) == spans(pattern.finditer(text))
    lines = (
        (m._PYTEST_FRAME, (".py:",)),
        (m._IPYTHON_OLD_FRAME, (".py in ",)),
        (m._MESSAGE, m._MESSAGE_NEEDLES),
    )
    for pattern, needles in lines:
        assert spans(m._line_matches(pattern, needles, text)) == spans(pattern.finditer(text))
    assert m._calls(text) == m._CALL.findall(text)
    assert m._WORD.findall(text) == OLD_WORD.findall(text)
    assert m._DOTTED.findall(text) == OLD_DOTTED.findall(text)


@EXACT
@given(joined(["f", "o.", "(", ")", " ", "\t", ";", "`", "x", "\n", "1"]))
def test_python_call_lines_are_found_as_before(text):
    from reposearcher_plugin.agent.tool_calls import _PY_CALL_LINE

    assert [m.span() for m in _PY_CALL_LINE.finditer(text)] == [
        m.span() for m in OLD_PY_CALL_LINE.finditer(text)
    ]


@EXACT
@given(joined(["```", "`", " ", "\n", "\t", "py", "x"], size=12))
def test_empty_fences_are_cut_as_before(text):
    from reposearcher_plugin.agent.tool_calls import _EMPTY_FENCE

    assert _EMPTY_FENCE.sub("", text) == OLD_EMPTY_FENCE.sub("", text)


# --- regressions: each took seconds before (times measured on this machine, niced) ---------------------


def test_many_unclosed_think_tags():
    """84 KB of unclosed ``<think>``: 7.3 s before (``<think>.*?</think>`` rescanned the rest of the text
    from each one), about a millisecond now."""
    unclosed = "<think>" * 12_000
    assert parse_answer(unclosed).empty
    assert compute_score("reposearcher", unclosed, GOLD)["parsed"] == 0.0
    answer = "<think>pkg/other.py::f</think>\n```\npkg/mod.py::Cls.meth\n```\n" + unclosed
    assert parse_answer(answer).locations == GOLD


def test_a_user_turn_of_many_tool_results():
    """One user turn of 60,000 tool results (2.2 MB): a copy of the rest of the text per result before,
    1.7 s for 30,000 of them, so about 7 s here; tens of milliseconds now."""
    results = "<tool_response>\nok\n</tool_response>\n" * 60_000
    rollout = f"assistant\nlooking\nuser\n{results}assistant\n```\npkg/mod.py::Cls.meth\n```"
    turns, truncated = assistant_turns(rollout)
    assert turns == ["looking", "```\npkg/mod.py::Cls.meth\n```"] and not truncated
    assert compute_score("reposearcher", rollout, GOLD)["score"] == 1.0


def test_a_long_word_in_an_issue():
    """A 16 KB word: 3.1 s before (``name(`` was tried from every letter of it), a millisecond now."""
    assert extract_mentions("a" * 16_000 + " x_y(").names == ["x_y"]


def test_a_long_run_of_e_in_an_issue():
    """12,000 E's on one line: 7.9 s before (pytest's ``E`` marks and the exception's name could share
    them in every way), a millisecond now."""
    issue = "E" * 12_000 + "\nE   ValueError: the header line is not valid here\n"
    assert extract_mentions(issue).messages == ["the header line is not valid here"]


def test_message_pieces_of_long_words_and_unclosed_brackets():
    """A 20 KB word or 20,000 unclosed brackets in a message: 4.7 s and 4.9 s before (a path word was
    looked for from each letter, a closing bracket from each opening one), milliseconds now."""
    assert literal_pieces("a" * 20_000) == ["a" * 20_000]
    assert literal_pieces("(" * 20_000) == ["(" * 20_000]
    assert literal_pieces("<" * 10_000 + " a/b " + "x" * 10_000) == ["<" * 10_000 + " ", " " + "x" * 10_000]


def test_blank_padded_python_call_lines():
    """A call line padded with 20,000 blanks: 3.1 s before (two blank runs split the padding every
    way), well under a millisecond now."""
    padded = " " * 20_000
    assert loose_tool_calls(f"search_code() {padded}x", TOOLS)[1] == []
    _, calls = loose_tool_calls(f'search_code("q"){padded}', TOOLS)
    assert [(call.name, call.arguments) for call in calls] == [("search_code", {"query": "q"})]


def test_blanks_after_a_fence_left_by_a_cut_call():
    """40,000 blanks after the fence that held a call: 5.1 s before, about a millisecond now."""
    content, calls = loose_tool_calls('search_code("q")\n```' + " " * 40_000 + "x", TOOLS)
    assert len(calls) == 1 and content == "```" + " " * 40_000 + "x"


def test_a_path_of_many_dot_slashes():
    """``./`` 300,000 times before a file name: a slice per ``./`` before, 2.2 s for 200,000 of them, so
    about 5 s here; 30 ms now."""
    written = "./" * 300_000 + "pkg/mod.py"
    assert normalize_path(written) == "pkg/mod.py"
    assert parse_answer(f"```\n{written}\n```").files == ["pkg/mod.py"]


def test_an_answer_is_never_much_larger_than_the_reply():
    """Each ``function:`` line repeats its file's path: a 2,000-character "path" and 3,000 such lines made
    3,000 locations of 2 KB each (6 MB from a 40 KB reply); now such a path is no path, and an answer
    holds at most MAX_ANSWER_ITEMS locations."""
    lines = "".join(f"function: f{number}\n" for number in range(3_000))
    long_path = "p" * 2_000 + ".py"
    assert parse_answer(f"```\n{long_path}\n{lines}```").empty
    answer = parse_answer(f"```\npkg/mod.py\n{lines}```")
    assert len(answer.locations) == MAX_ANSWER_ITEMS and answer.locations[0] == "pkg/mod.py::f0"
    assert "1,000" in (answer.problem or "")


def test_a_looping_answer_is_read_up_to_its_line_cap():
    """A 1 MB answer that repeats two lines took 0.22 s per MB, over the 0.2 s goal: every line was
    parsed again. Each distinct line is now read once, and at most MAX_ANSWER_LINES lines are read."""
    loop = "pkg/mod.py\nfunction: Cls.meth\n" * (MAX_ANSWER_LINES // 2)
    answer = parse_answer(f"```\n{loop}pkg/late.py\nfunction: late\n```")
    assert answer.files == ["pkg/mod.py"] and answer.locations == ["pkg/mod.py::Cls.meth"]
    assert f"over {MAX_ANSWER_LINES:,} lines" in (answer.problem or "")
    short = parse_answer(f"```\n{'pkg/mod.py' + chr(10) * 3}pkg/late.py\nfunction: late\n```")
    assert short.locations == ["pkg/late.py::late"] and short.problem is None


def test_a_repeated_keyword_line_belongs_to_the_path_above_it():
    """Reading each distinct line once must not tie a ``function:`` line to the first path it followed."""
    answer = parse_answer("```\na.py\nfunction: f\nb.py\nfunction: f\na.py\nfunction: g\n```")
    assert answer.files == ["a.py", "b.py"]
    assert answer.locations == ["a.py::f", "b.py::f", "a.py::g"]
