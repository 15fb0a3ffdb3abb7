"""What the attack campaign (eval/attack_tools.py, issue 12) found, and a smoke test of its generators.

The campaign sends hostile arguments to every tool through every front end; each defect it found has a
test here that failed before its fix. The campaign itself is far too slow for a test: only its world,
its attempts and its judging are checked, on a few values.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest

from reposearcher_plugin.agent.tool_calls import read_arguments
from reposearcher_plugin.index import build_index
from reposearcher_plugin.tools import ToolBox
from tests.conftest import write_tree

HUGE = 10**4301 - 1  # one digit over what int() and repr() convert by default
SCRIPT = Path(__file__).resolve().parents[1] / "eval" / "attack_tools.py"


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> ToolBox:
    root = write_tree(
        tmp_path_factory.mktemp("attack") / "repo",
        {"pkg/core.py": "class Cart:\n    def total(self):\n        return 0\n"},
    )
    return ToolBox(build_index(root, workers=1))


# --- defects the campaign found ------------------------------------------------------------------------


def test_unknown_argument_names_are_cut_in_the_error(box):
    # a 1 MB key came back whole (a 1 MB observation), 10,000 keys as a 69 KB list
    one = box.call("search_class", {"class_name": "Cart", "a" * 1_000_000: 1})
    assert not one.ok and len(one.text) < 600
    assert one.text.startswith("Error: search_class() got unexpected argument(s) 'aaaa")
    assert "(cut; 1000000 characters)" in one.text and one.text.endswith(
        "search_class(class_name, file=null)"
    )
    many = box.call("search_class", {"class_name": "Cart", **{f"k{i}": i for i in range(10_000)}})
    assert not many.ok and len(many.text) < 600
    assert "got unexpected argument(s) k0, k1, k10, k100, k1000 and 9,995 more;" in many.text
    odd = box.call("search_class", {"class_name": "Cart", "file\nError: fake": 1, "colour": 2})
    assert "argument(s) colour, 'file\\nError: fake';" in odd.text  # no forged line in the observation


@pytest.mark.parametrize(
    "value",
    [[HUGE], {"n": HUGE}, [[-HUGE, "x"]]],
    ids=["list", "object", "nested"],
)
def test_a_wrong_type_holding_a_huge_integer_gets_the_type_error(box, value):
    # repr() of the value raised ValueError: the catch-all answered "failed on these arguments"
    observation = box.call("search_class", {"class_name": value})
    kind = type(value).__name__
    assert observation.text.startswith(
        f"Error: search_class(): argument 'class_name' must be string, got {kind} "
    )
    assert "an integer of over 18 digits" in observation.text and len(observation.text) < 300


@pytest.mark.parametrize(
    ("start_line", "end_line", "problem"),
    [
        (HUGE, 3, "pkg/core.py has only 3 lines; start_line (an integer of over 18 digits) is past its end"),
        (1e308, 3, "pkg/core.py has only 3 lines; start_line (an integer of over 18 digits) is past its end"),
        (1, -HUGE, "end_line (an integer of over 18 digits) is before start_line 1"),
    ],
    ids=["huge", "1e308", "negative end"],
)
def test_show_code_names_a_huge_line_number_it_cannot_print(box, start_line, end_line, problem):
    # the error printed the number: str() of one over 4,300 digits raised, the catch-all answered
    observation = box.call(
        "show_code", {"file": "pkg/core.py", "start_line": start_line, "end_line": end_line}
    )
    assert observation.text == f"Error: {problem}"
    past = box.call("show_code", {"file": "pkg/core.py", "start_line": 10**18 - 1, "end_line": 3})
    assert past.text == "Error: pkg/core.py has only 3 lines; start_line 999999999999999999 is past its end"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"class_name": HUGE}, "search_class(): argument 'class_name' must be string, got int "),
        ({"class_name": "Cart", "file": -HUGE}, "search_class(): argument 'file' must be string, got int "),
    ],
    ids=["class_name", "file"],
)
def test_a_string_argument_given_a_huge_integer_gets_the_type_error(box, arguments, problem):
    # a number is read as its text, and str() of one over 4,300 digits raised: the catch-all answered
    observation = box.call("search_class", arguments)
    assert observation.text == f"Error: {problem}(an integer of over 18 digits)"
    assert box.call("search_class", {"class_name": 42}).text == "No class named '42'."


def test_array_items_are_checked_against_their_type(box):
    # submit str()-ed every item: a 4,301-digit one raised and the catch-all answered; null became "None"
    for items in ([HUGE], ["pkg/core.py", None], [["pkg/core.py"]]):
        observation = box.call("submit", {"locations": items})
        assert observation.text.startswith(
            "Error: submit(): argument 'locations' must be array of string, got ["
        )
    assert box.call("submit", {"locations": ["pkg/core.py", 7]}).text == (
        "Submitted 2 locations. Not found in the index (kept as given): 7"
    )


def test_submit_checks_a_bounded_number_of_distinct_locations(box, monkeypatch):
    # 100,000 locations were each resolved on disk: 4.6 s for one call
    checked = []
    exists = box.tools.location_exists
    monkeypatch.setattr(
        box.tools, "location_exists", lambda location: checked.append(location) or exists(location)
    )
    same = box.call("submit", {"locations": ["x"] * 100_000})
    assert (
        same.text == "Submitted 100000 locations. Not found in the index (kept as given): x"
        and checked == ["x"]
    )
    checked.clear()
    many = box.call("submit", {"locations": ["pkg/core.py::Cart.total"] + [f"m{i}" for i in range(5_000)]})
    assert len(checked) == 1_000 and many.ok
    assert many.text.endswith(
        "m9, and 989 more; 4,001 distinct locations after the first 1,000 were not checked."
    )


@pytest.mark.parametrize(
    "raw", [HUGE, [HUGE], {"a": HUGE}, {"a": [HUGE]}], ids=["int", "list", "dict", "deep"]
)
def test_read_arguments_never_raises_on_decoded_values(raw):
    # str() or json.dumps() of a 4,301-digit integer raised out of the parser, and out of verl's execute
    arguments, text, problem = read_arguments("show_code", raw)
    if isinstance(raw, dict):
        assert arguments == raw and problem is None and len(text) < 300
    else:
        assert arguments is None and problem == (
            f"the arguments of show_code must be a JSON object, got {type(raw).__name__}"
        )


def test_verl_execute_answers_a_huge_integer(box):
    verl_tools = pytest.importorskip("reposearcher_plugin.rl.verl_tools")
    tool = verl_tools.RepoSearcherTool({"profile": "default", "name": "search_class"})
    tool._instances["one"] = verl_tools._Instance(box)
    response, _, metrics = asyncio.run(tool.execute("one", HUGE))
    assert metrics["ok"] is False
    assert response.text == (
        "Error: the arguments of search_class must be a JSON object, got int. Write the call again as valid JSON."
    )


@pytest.mark.parametrize(
    "model",
    ["a/" + "b" * 1_000_000, "openai/gpt-4o\nError: x", "hosted vllm/x"],
    ids=["1 MB", "newline", "blank"],
)
def test_mcp_localize_refuses_a_model_string_no_localizer_has(box, model):
    # a 1 MB model string came back four times over (a 4 MB answer): header, row, litellm's error
    from reposearcher_plugin.hosts.mcp_server import ReposearcherService

    outcome = ReposearcherService(box.tools.root).call(
        "localize", {"issue": "Cart.total is wrong", "model": model}
    )
    text = "\n".join(outcome.texts)
    assert outcome.is_error and len(text) < 600
    assert text.startswith("Error: localize(): model must be 'retrieval', 'bm25' or a litellm model string")


def test_localizer_options_refuse_a_model_string_no_localizer_has():
    from pydantic import ValidationError

    from reposearcher_plugin.agent.localizers import LocalizerOptions

    with pytest.raises(ValidationError, match="at most 200 characters"):
        LocalizerOptions(model="x" * 201)
    assert LocalizerOptions(model="hosted_vllm/Qwen2.5-Coder-7B-Instruct").uses_llm


# --- the campaign's own parts ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attack():
    spec = importlib.util.spec_from_file_location("attack_tools", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["attack_tools"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("attack_tools", None)


@pytest.fixture(scope="module")
def world(attack, tmp_path_factory):
    return attack.make_world(tmp_path_factory.mktemp("world"), random.Random(3))


def test_world_has_the_odd_entries_and_a_sentinel_outside(attack, world):
    repo = world.repo
    assert (repo / "link_out").is_symlink() and world.token in (repo / "link_out" / "secret.txt").read_text()
    assert (repo / "pkg" / "leak.py").resolve() == world.secret.resolve()
    assert (repo / "pipe.fifo").is_fifo() and (repo / "loop_a").is_symlink()
    assert b"bad_\xff.py" in os.listdir(os.fsencode(repo / "pkg"))
    assert (repo / "c:colon.py").exists() and not str(world.outside).startswith(str(repo))
    assert world.listing_token not in world.secret.read_text()


def test_attempts_are_deterministic_and_cover_every_argument(attack, world):
    first = attack.make_attempts(world, 3, seed=5)
    again = attack.make_attempts(world, 3, seed=5)
    assert [(a.tool, a.argument, a.label) for a in first] == [(a.tool, a.argument, a.label) for a in again]
    seen = {(a.profile, a.tool, a.argument) for a in first}
    for profile, specs in attack.PROFILES.items():
        for spec in specs:
            assert (profile, spec.name, "*") in seen
            assert all((profile, spec.name, p.name) in seen for p in spec.params)
    show = [a for a in first if a.tool == "show_code" and a.argument == "file"]
    assert len(show) == 6 and all(a.arguments["start_line"] == 1 for a in show)  # the others are ordinary
    labels = {label for label, _ in attack.path_values(world)}
    assert {"through the outside symlink", "absolute /etc/passwd", "NUL then ../", "UNC share"} <= labels
    spec = next(spec for spec in attack.PROFILES["default"] if spec.name == "show_code")
    beyond = attack.argument_attempts("default", spec, spec.params[0], world, 200, random.Random(1))
    assert len(beyond) == 200 and beyond[-1].label == "random path pieces"  # the catalog, then mutations


def test_judging_counts_escapes_and_leaks_but_not_echoes(attack, world):
    tally = attack.Tally("t")
    sent = attack.Attempt("default", "show_code", "file", "x", {"file": str(world.repo / "a.py")})
    tally.judge(world, sent, f"No file '{world.repo / 'a.py'}'", 0.0)  # an echo of what was sent
    assert (tally.escapes, tally.leaks, tally.crashes) == (0, 0, 0)
    plain = attack.Attempt("default", "show_code", "file", "x", {"file": "a.py"})
    tally.judge(world, plain, f"cannot read {world.repo}/a.py", 0.0)
    tally.judge(world, plain, f"class Sentinel{world.token}", 0.0)
    tally.judge(world, plain, "root:x:0:0:root:/root:/bin/bash\n", 0.0)
    tally.judge(world, plain, "Traceback (most recent call last):\n  File ...", 0.0)
    tally.judge(world, plain, "Error: show_code failed on these arguments (ValueError).", 0.0)
    assert (tally.leaks, tally.escapes, tally.crashes, tally.internal) == (1, 2, 1, 1)


def test_swe_agent_commands_quote_every_value(attack):
    from reposearcher_plugin.hosts.swe_agent import bundle_config

    config = bundle_config("default")
    command = attack.swe_agent_command(
        config, "show_code", {"file": "$(id)", "start_line": [1], "end_line": 2}
    )
    assert command == "show_code '$(id)' '[1]' 2"
    assert attack.swe_agent_command(config, "search_code", {"query": "a b"}) == "search_code 'a b'"
    assert attack.swe_agent_command(config, "search_code", ["x"]) == "search_code '[\"x\"]'"
