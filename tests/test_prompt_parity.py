"""Training and inference see one conversation: the RL dataset's prompt, templated with the tool config
verl loads, is token for token the first request the agent sends with the profile RL trains."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

pytest.importorskip("verl")

from verl.tools.tool_registry import initialize_tools_from_config

from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.agent.loop import Agent
from reposearcher_plugin.agent.policy import LiteLLMPolicy
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.rl.datasets import build_row
from reposearcher_plugin.rl.verl_tools import write_tool_config
from reposearcher_plugin.tools import RepoTools, rl_profile
from tests.scripted_llm import scripted_model
from tests.tiny_tokenizer import build_tiny_tokenizer

REPO = {
    "shop/__init__.py": "",
    "shop/cart.py": "from shop.pricing import total\n\n\nclass Cart:\n    def checkout(self):\n"
    "        return total(self.items)\n",
    "shop/pricing.py": "def total(items):\n    return sum(price for price, quantity in items)\n",
}
ISSUE = "Cart.checkout ignores the quantity of items: total() multiplies wrong."
ANSWER = "```\nshop/pricing.py\nfunction: total\n```"


def verl_tool_schemas(path: Path) -> list[dict]:
    """The schemas verl 0.9.1's ToolAgentLoop hands the chat template (``tool_agent_loop.py``)."""
    with contextlib.redirect_stdout(io.StringIO()):  # BaseTool.__init__ prints every schema
        tools = initialize_tools_from_config(str(path))
    return [tool.tool_schema.model_dump(exclude_unset=True, exclude_none=True) for tool in tools]


def served_tokens(index, profile: str, tokenizer) -> list[int]:
    """The agent's first request with ``profile``, templated as the server would."""
    model, handler = scripted_model([ANSWER, ANSWER])
    policy = LiteLLMPolicy(model, retries=0, backoff_s=0.0)
    Agent(policy, AgentConfig(profile=profile, tool_format="native")).localize(index, ISSUE)
    request = handler.requests[0]
    return tokenizer.apply_chat_template(
        request["messages"], tools=request["tools"], add_generation_prompt=True
    )


@pytest.mark.parametrize("profile", ["default", "tooltrain"])
def test_rl_prompt_tokens_equal_the_inference_prompt_tokens(profile, make_index, tmp_path):
    index = make_index(REPO)
    instance = Instance(instance_id="shop-1", repo="acme/shop", base_commit="0" * 40, problem_statement=ISSUE)
    row = build_row(instance, ["shop/pricing.py::total"], RepoTools(index), profile, 0)
    assert row["extra_info"]["inference_profile"] == rl_profile(profile)
    schemas = verl_tool_schemas(write_tool_config(tmp_path / "tools.yaml", profile))

    tokenizer = build_tiny_tokenizer(tmp_path / "tokenizer")
    trained = tokenizer.apply_chat_template(row["prompt"], tools=schemas, add_generation_prompt=True)
    assert served_tokens(index, rl_profile(profile), tokenizer) == trained
    # the profile itself (submit offered, or the official two stages) is another conversation
    assert served_tokens(index, profile, tokenizer) != trained
    assert "submit" not in row["prompt"][0]["content"]  # RL's loop has no submit, and says so
