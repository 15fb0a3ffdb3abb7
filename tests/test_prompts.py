"""Prompts are package-data Jinja templates; a directory of templates overrides them by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from reposearcher_plugin.agent import chat
from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.agent.loop import Agent
from reposearcher_plugin.agent.policy import LiteLLMPolicy
from reposearcher_plugin.tools import profile_specs
from tests.scripted_llm import scripted_model

REPO = {"shop/__init__.py": "", "shop/pricing.py": "def total(items):\n    return sum(items)\n"}
ANSWER = "```\nshop/pricing.py\nfunction: total\n```"


def test_every_template_ships_and_renders_with_exactly_its_variables():
    shipped = {path.stem for path in chat.PACKAGED_PROMPTS.glob("*.jinja")}
    assert shipped == set(chat.PROMPT_NAMES)
    prompts = chat.default_prompts()
    for name, variables in chat.PROMPT_VARIABLES.items():
        text = prompts.render(name, **{variable: f"<{variable}>" for variable in variables})
        assert all(f"<{variable}>" in text for variable in variables), name
        assert "{{" not in text and "{%" not in text, name


def test_values_are_inserted_as_written():
    """An issue is user text: braces, Jinja syntax and HTML in it reach the model unchanged."""
    issue = "x = {'a': 1} {{ not a variable }} {% raw %} <b>&amp;</b>"
    system, user = chat.default_prompt(issue, "overview", profile_specs("default"), "native", 5)
    assert issue in user["content"] and "`submit`" in system["content"]


def test_a_prompts_directory_overrides_templates_by_name(make_index, tmp_path):
    custom = tmp_path / "prompts"
    custom.mkdir()
    (custom / "default_system.jinja").write_text("Find the bug. {{ how_to_answer }}\n{{ answer_format }}\n")
    model, handler = scripted_model([ANSWER])
    config = AgentConfig(prompts=str(custom))
    Agent(LiteLLMPolicy(model, retries=0), config).localize(make_index(REPO), "total() is wrong")
    system = handler.requests[0]["messages"][0]["content"]
    assert system.startswith("Find the bug. When you know the answer, either call `submit`")
    assert system.endswith(chat.answer_format("search", 5))
    # the other templates stay the packaged ones
    assert handler.requests[0]["messages"][1]["content"].startswith("<issue>\ntotal() is wrong\n</issue>")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"default_sytem.jinja": "x"}, "unknown prompt template(s) in"),
        ({"default_user.jinja": "{{ issue }} {{ repository }}"}, "'repository' is undefined"),
        ({"hints.jinja": "{% if %}"}, "hints.jinja"),
    ],
)
def test_broken_prompt_directories_are_clear_errors(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match="prompt") as raised:
        AgentConfig(prompts=str(tmp_path))
    assert message in str(raised.value)
    with pytest.raises(ValueError, match="does not exist"):
        AgentConfig(prompts=str(tmp_path / "missing"))


def test_the_rl_dataset_renders_the_same_override(make_index, tmp_path):
    from reposearcher_plugin.evaluation.instances import Instance
    from reposearcher_plugin.rl.datasets import build_row
    from reposearcher_plugin.tools import RepoTools

    custom = tmp_path / "prompts"
    custom.mkdir()
    (custom / "reply_only.jinja").write_text("Reply with the answer when done.\n")
    index = make_index(REPO)
    instance = Instance(
        instance_id="i", repo="a/b", base_commit="0" * 40, problem_statement="total() is wrong"
    )
    row = build_row(
        instance, ["shop/pricing.py::total"], RepoTools(index), "default", 0, chat.Prompts(custom)
    )
    assert "Reply with the answer when done." in row["prompt"][0]["content"]
    assert (
        Path(chat.PACKAGED_PROMPTS / "reply_only.jinja").read_text().strip()
        not in row["prompt"][0]["content"]
    )
