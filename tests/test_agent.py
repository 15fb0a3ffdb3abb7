"""The agent loop driven offline through litellm by a scripted provider (tests/scripted_llm.py)."""

from __future__ import annotations

import itertools
import json

import pytest

from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.agent.loop import ANSWER_MAX_TOKENS, Agent
from reposearcher_plugin.agent.policy import LiteLLMPolicy
from reposearcher_plugin.agent.result import LocalizationResult, Trajectory
from reposearcher_plugin.tools.session import REPEATED_NOTE
from tests.scripted_llm import litellm, scripted_model

REPO = {
    "shop/cart.py": '''
        from shop.pricing import total


        class Cart:
            """A shopping cart."""

            def __init__(self):
                self.items = []

            def add(self, item, quantity=1):
                self.items.append((item, quantity))

            def checkout(self):
                return total(self.items)
        ''',
    "shop/pricing.py": """
        def total(items):
            return sum(price * quantity for price, quantity in items)


        def discount(amount, rate):
            return amount * rate
        """,
    "tests/test_cart.py": """
        from shop.cart import Cart


        def test_add():
            Cart().add(1)
        """,
}
ISSUE = "Cart.checkout ignores the quantity of items: total() multiplies wrong."
ANSWER = "The bug is in total.\n```\nshop/pricing.py\nfunction: total\n\nshop/cart.py\nfunction: Cart.checkout\n```"


@pytest.fixture
def index(make_index):
    return make_index(REPO)


def run(index, replies, **config):
    model, handler = scripted_model(replies, chars_per_token=config.pop("chars_per_token", None))
    policy = LiteLLMPolicy(model, retries=config.pop("retries", 0), backoff_s=0.0)
    result = Agent(policy, AgentConfig(**config)).localize(index, ISSUE, instance_id="shop-1")
    return result, handler


def observations(result: LocalizationResult) -> list[str]:
    assert isinstance(result.trajectory, Trajectory)
    return [call.observation for step in result.trajectory.steps for call in step.calls]


def test_native_happy_path_submit(index):
    result, handler = run(
        index,
        [
            {
                "content": "Let me look.",
                "tool_calls": [("search_class_method", {"class_name": "Cart", "method_name": "checkout"})],
            },
            {
                "tool_calls": [
                    ("submit", {"locations": ["shop/pricing.py::total", "shop/cart.py::Cart.checkout"]})
                ]
            },
        ],
    )
    assert result.error is None
    assert result.locations == ["shop/pricing.py::total", "shop/cart.py::Cart.checkout"]
    assert result.files == ["shop/pricing.py", "shop/cart.py"]
    assert "return total(self.items)" in observations(result)[0]
    # native: the tool schemas went with every request, and the observation came back as a tool message
    assert {tool["function"]["name"] for tool in handler.requests[0]["tools"]} >= {"search_class", "submit"}
    second = handler.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and "return total(self.items)" in second[-1]["content"]
    assert result.usage["turns"] == 2 and result.usage["prompt_tokens"] == 200
    row = result.to_dict()
    assert row["found_related_locs"]["shop/cart.py"] == ["function: Cart.checkout"]
    json.dumps(row)  # the whole row, trajectory included, is JSON


def test_final_answer_as_text_block(index):
    result, _ = run(index, [{"tool_calls": [("search_function", {"function_name": "total"})]}, ANSWER])
    assert result.locations == ["shop/pricing.py::total", "shop/cart.py::Cart.checkout"]
    assert result.trajectory.answer.startswith("The bug is in total.")


def test_hermes_text_calls(index):
    call = '<tool_call>\n{"name": "search_function", "arguments": {"function_name": "total"}}\n</tool_call>'
    result, handler = run(index, [f"I will look.\n{call}", ANSWER], tool_format="hermes")
    assert result.locations[0] == "shop/pricing.py::total"
    assert handler.requests[0]["tools"] is None  # hermes: tools live in the system prompt
    assert "<tools>" in handler.requests[0]["messages"][0]["content"]
    replay = handler.requests[1]["messages"]
    assert replay[-2] == {"role": "assistant", "content": f"I will look.\n{call}"}
    assert replay[-1]["role"] == "user" and replay[-1]["content"].startswith("<tool_response>\n")
    # the recorded conversation is canonical: structured tool calls, tool role answers
    messages = result.trajectory.messages
    assert messages[2]["tool_calls"][0]["function"]["name"] == "search_function"
    assert messages[3]["role"] == "tool"


def test_parallel_calls_run_in_order_up_to_the_cap(index):
    calls = [
        ("search_function", {"function_name": "total"}),
        ("search_function", {"function_name": "discount"}),
        ("search_class", {"class_name": "Cart"}),
    ]
    result, _ = run(index, [{"tool_calls": calls}, ANSWER], max_calls_per_turn=2)
    seen = observations(result)
    assert "def total(items)" in seen[0] and "def discount(amount, rate)" in seen[1]
    assert seen[2].startswith("Not run: at most 2 tool calls")


def test_malformed_and_unknown_calls_get_errors_the_model_can_fix(index):
    result, handler = run(
        index,
        [
            {"tool_calls": [("search_function", '{"function_name": "total"'), ("grep", {"pattern": "x"})]},
            {"tool_calls": [("search_function", {"name": "total"})]},
            ANSWER,
        ],
    )
    bad_json, unknown, wrong_argument = observations(result)
    assert bad_json.startswith("Error: the arguments of search_function are not valid JSON")
    assert "Unknown tool 'grep'" in unknown and "search_class" in unknown
    assert "unexpected argument(s) name" in wrong_argument
    # the replayed malformed call is valid JSON on the wire (providers reject anything else)
    replayed = handler.requests[1]["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(replayed) == {}
    assert result.locations[0] == "shop/pricing.py::total"


def test_repeated_call_is_answered_with_a_note_not_its_result_again(index):
    """The earlier result is still in the conversation: sending it again only grows the prompt."""
    call = ("search_function", {"function_name": "discount"})
    result, handler = run(index, [{"tool_calls": [call]}, {"tool_calls": [call]}, ANSWER])
    first, second = observations(result)
    assert "def discount" in first and second == REPEATED_NOTE
    assert result.trajectory.steps[1].calls[0].repeated
    last_request = [m.get("content") or "" for m in handler.requests[-1]["messages"]]
    assert sum("def discount" in text for text in last_request) == 1


def test_budget_exhaustion_gives_one_last_turn_without_tools(index):
    looking = {"tool_calls": [("get_repo_structure", {})]}
    result, handler = run(index, [looking, looking, ANSWER], max_turns=3)
    assert len(handler.requests) == 3
    assert handler.requests[1]["tool_choice"] is None and handler.requests[2]["tool_choice"] == "none"
    # the tools are still listed, so the last prompt starts as the others did (a server's prefix cache)
    assert handler.requests[2]["tools"] == handler.requests[1]["tools"] is not None
    earlier = handler.requests[1]["messages"]
    assert handler.requests[2]["messages"][: len(earlier)] == earlier
    # the answer turn's reply is capped: a small model rambling to the search cap outlasts its grace
    assert (
        handler.requests[1]["max_tokens"] == 4096 and handler.requests[2]["max_tokens"] == ANSWER_MAX_TOKENS
    )
    assert "Do not call any more tools" in handler.requests[2]["messages"][-1]["content"]
    assert result.locations[0] == "shop/pricing.py::total"
    assert "budget spent" in result.trajectory.steps[-1].note


def test_calls_in_the_last_turn_are_not_run(index):
    looking = {"tool_calls": [("get_repo_structure", {})]}
    result, handler = run(index, [looking, looking, looking], max_turns=2)
    assert result.locations == [] and result.error is None
    assert "not run" in result.trajectory.steps[-2].note
    # an unreadable final answer is asked for once more, alone, still without callable tools
    assert handler.requests[-1]["tool_choice"] == "none"
    assert "nothing but the final answer" in handler.requests[-1]["messages"][-1]["content"]
    assert "asked for the answer alone" in result.trajectory.steps[-1].note
    # the structure names no definition: nothing to fall back on, and the trajectory says so
    assert "returned nothing" in result.trajectory.fallback


def test_no_answer_falls_back_to_observed_locations_ranked_by_the_default(index):
    searched = {
        "tool_calls": [
            ("search_class", {"class_name": "Cart"}),
            ("search_function", {"function_name": "total"}),
        ]
    }
    unsure = "I could not decide."
    result, _ = run(index, [searched, unsure, unsure, unsure], max_turns=3)
    # the model never answered: the definitions its calls showed, best-ranked for the issue first
    assert set(result.locations) == {"shop/cart.py::Cart", "shop/pricing.py::total"}
    assert result.locations[0] == "shop/pricing.py::total"  # the issue names total()
    assert result.files[:2] == ["shop/pricing.py", "shop/cart.py"]
    assert result.trajectory.fallback.startswith("the model gave no readable answer")


def test_an_answer_is_never_replaced_by_the_fallback(index):
    result, _ = run(index, [{"tool_calls": [("search_class", {"class_name": "Cart"})]}, ANSWER])
    assert result.locations[0] == "shop/pricing.py::total" and result.trajectory.fallback is None


def test_stalled_search_is_ended_with_a_final_turn(index):
    call = {"tool_calls": [("search_function", {"function_name": "discount"})]}
    broken = {"tool_calls": [("search_function", '{"function_name": ')]}
    result, handler = run(index, [call, call, broken, ANSWER], max_stalled_turns=2)
    # one new call, then two turns that bring nothing new (a repeat, a call that fails): the search ends
    assert len(handler.requests) == 4 and handler.requests[3]["tool_choice"] == "none"
    assert (
        "only repeated earlier calls or made calls that failed"
        in handler.requests[3]["messages"][-1]["content"]
    )
    assert result.trajectory.steps[-1].note == "stalled: no new successful call"
    assert result.locations[0] == "shop/pricing.py::total"


def test_a_new_successful_call_resets_the_stall_count(index):
    first = {"tool_calls": [("search_function", {"function_name": "discount"})]}
    other = {"tool_calls": [("search_function", {"function_name": "total"})]}
    result, handler = run(index, [first, first, other, first, ANSWER], max_stalled_turns=2)
    assert len(handler.requests) == 5 and handler.requests[4]["tools"] is not None
    assert result.locations[0] == "shop/pricing.py::total"


def test_fenced_json_and_python_style_calls_are_run(index):
    fenced = (
        'I will look.\n```json\n{"name": "search_function", "arguments": {"function_name": "total"}}\n```'
    )
    python_style = "```python\nsearch_class_method('Cart', 'checkout')\n```"
    result, handler = run(index, [fenced, python_style, ANSWER])
    calls = [call for step in result.trajectory.steps for call in step.calls]
    assert [(call.name, call.arguments) for call in calls] == [
        ("search_function", {"function_name": "total"}),
        ("search_class_method", {"class_name": "Cart", "method_name": "checkout"}),
    ]
    assert all(call.ok for call in calls)
    # replayed in the canonical form: the text without the block, and a structured call
    replayed = handler.requests[1]["messages"][2]
    assert (
        replayed["content"] == "I will look."
        and replayed["tool_calls"][0]["function"]["name"] == "search_function"
    )
    assert result.locations[0] == "shop/pricing.py::total"


def test_old_observations_are_dropped_to_fit_the_context_window(index):
    from reposearcher_plugin.agent.limits import DROPPED_OBSERVATION

    views = [
        {"tool_calls": [("show_code", {"file": "shop/cart.py", "start_line": n, "end_line": 14})]}
        for n in (1, 2, 3, 4)
    ]
    result, handler = run(index, [*views, ANSWER], context_window=1600, chars_per_token=4)
    sizes = [sum(len(m.get("content") or "") for m in request["messages"]) for request in handler.requests]
    dropped = [
        m for m in result.trajectory.messages if m["role"] == "tool" and m["content"] == DROPPED_OBSERVATION
    ]
    assert dropped, "nothing was dropped"
    # the newest observation is always kept: the model is answering it
    last_request_tools = [m for m in handler.requests[-1]["messages"] if m["role"] == "tool"]
    assert last_request_tools[-1]["content"] != DROPPED_OBSERVATION
    assert (
        max(sizes[2:])
        < sum(len(m.get("content") or "") for m in result.trajectory.messages if m["role"] != "tool")
        + 4 * 700
    )
    assert any("dropped to fit the context window" in (step.note or "") for step in result.trajectory.steps)
    assert result.locations[0] == "shop/pricing.py::total"


def test_a_dropped_observation_may_be_asked_for_again(index):
    from reposearcher_plugin.agent.limits import DROPPED_OBSERVATION

    view = {"tool_calls": [("show_code", {"file": "shop/cart.py", "start_line": 1, "end_line": 14})]}
    other = {"tool_calls": [("show_code", {"file": "shop/pricing.py", "start_line": 1, "end_line": 6})]}
    result, _ = run(index, [view, other, view, ANSWER], context_window=1300, chars_per_token=4)
    calls = [call for step in result.trajectory.steps for call in step.calls]
    assert not calls[2].repeated and calls[2].observation == calls[0].observation
    assert any(m["content"] == DROPPED_OBSERVATION for m in result.trajectory.messages if m["role"] == "tool")


def test_context_window_error_drops_observations_and_retries_once(index):
    overflow = litellm.exceptions.ContextWindowExceededError("too long", model="m", llm_provider="scripted")
    looking = {"tool_calls": [("search_class", {"class_name": "Cart"})]}
    more = {"tool_calls": [("search_function", {"function_name": "total"})]}
    result, handler = run(index, [looking, more, overflow, ANSWER])
    assert result.error is None and result.locations[0] == "shop/pricing.py::total"
    retried = handler.requests[3]["messages"]
    tool_texts = [m["content"] for m in retried if m["role"] == "tool"]
    assert "was removed to fit" in tool_texts[0] and "was removed to fit" not in tool_texts[-1]


def test_a_search_reply_cut_by_the_wall_budget_still_gets_its_answer_turn(index):
    from tests.openai_stub import ScriptedReply, StubServer

    replies = [
        ScriptedReply(tool_calls=[("search_function", {"function_name": "total"})]),
        ScriptedReply(
            tool_calls=[("search_class", {"class_name": "Cart"})], delay_s=11.0
        ),  # outlasts the run
        ScriptedReply(content=ANSWER),
    ]
    with StubServer(replies, model="slow") as server:
        policy = LiteLLMPolicy("openai/slow", api_base=server.base_url, retries=3, backoff_s=0.0)
        result = Agent(policy, AgentConfig(max_wall_s=10.0)).localize(index, ISSUE)
        assert len(server.requests) == 3  # the cut request was not retried
    assert result.error is None and result.locations[0] == "shop/pricing.py::total"
    cut, final = result.trajectory.steps[1], result.trajectory.steps[2]
    assert "time is up" in cut.error or "Timeout" in cut.error
    assert "time (a reply was cut)" in final.note
    assert result.trajectory.wall_s < 10.0 + 2.0  # the answer turn's grace: 20 % of the budget


def test_the_window_is_asked_of_the_server():
    from tests.openai_stub import StubServer

    with StubServer([], model="qwen-small", max_model_len=16384) as server:
        policy = LiteLLMPolicy("hosted_vllm/qwen-small", api_base=server.base_url)
        assert policy.context_window() == 16384
    with StubServer([], model="qwen-small", n_ctx=8192) as server:  # llama.cpp's server
        assert LiteLLMPolicy("openai/qwen-small", api_base=server.base_url).context_window() == 8192
    with StubServer([], model="other") as server:
        assert LiteLLMPolicy("hosted_vllm/qwen-small", api_base=server.base_url).context_window() is None
    assert LiteLLMPolicy("hosted_vllm/x", api_base="http://127.0.0.1:9/v1").context_window() is None


def test_answer_without_fenced_block(index):
    unfenced = "The fix belongs in\nshop/pricing.py::total\nand maybe elsewhere."
    result, handler = run(index, ["I am not sure what to do.", unfenced])
    # a reply with neither a call nor an answer is asked once more; prose locations are then accepted
    assert len(handler.requests) == 2
    assert "no ``` block" in handler.requests[1]["messages"][-1]["content"]
    assert result.locations == ["shop/pricing.py::total"]
    assert "no ``` block" in result.trajectory.steps[-1].note


def test_method_without_class_is_resolved_in_its_file(index):
    result, _ = run(index, ["```\nshop/cart.py\nfunction: checkout\nfunction: nowhere\n```"])
    assert result.locations == ["shop/cart.py::Cart.checkout", "shop/cart.py::nowhere"]


def test_llm_errors_are_retried_then_succeed(index):
    flaky = litellm.exceptions.InternalServerError("boom", model="m", llm_provider="scripted")
    limited = litellm.exceptions.RateLimitError("slow down", model="m", llm_provider="scripted")
    result, handler = run(index, [flaky, limited, ANSWER], retries=2)
    assert result.error is None and result.locations[0] == "shop/pricing.py::total"
    assert len(handler.requests) == 3


def test_llm_failure_is_recorded_not_raised(index):
    auth = litellm.exceptions.AuthenticationError("bad key", model="m", llm_provider="scripted")
    result, handler = run(index, [{"tool_calls": [("get_repo_structure", {})]}, auth], retries=3)
    assert len(handler.requests) == 2  # authentication errors are not retried
    assert "AuthenticationError" in result.error
    assert result.locations == [] and result.to_dict()["error"] == result.error
    assert "AuthenticationError" in result.trajectory.steps[-1].error


def test_retries_give_up(index):
    down = [litellm.exceptions.ServiceUnavailableError("down", model="m", llm_provider="scripted")] * 3
    result, handler = run(index, down, retries=2)
    assert len(handler.requests) == 3 and "after 3 tries" in result.error


def test_tooltrain_two_stages(index):
    result, handler = run(
        index,
        [
            {
                "tool_calls": [
                    ("get_code_of_file_function", {"file_name": "shop/pricing.py", "func_name": "total"})
                ]
            },
            {"tool_calls": [("exit", {})]},
            "```\nshop/pricing.py\nshop/cart.py\n```",
            {
                "tool_calls": [
                    (
                        "get_code_of_class_function",
                        {"file_name": "shop/cart.py", "class_name": "Cart", "func_name": "checkout"},
                    )
                ]
            },
            {"tool_calls": [("exit", {})]},
            "```\nshop/pricing.py\nfunction: total\n```",
        ],
        profile="tooltrain",
    )
    assert result.files == ["shop/pricing.py", "shop/cart.py"]
    assert result.locations == ["shop/pricing.py::total"]
    stages = [step.stage for step in result.trajectory.steps]
    assert stages == ["files"] * 3 + ["functions"] * 3
    # stage one lists the candidate files; stage two shows the chosen files' skeletons
    assert "tests/test_cart.py" in handler.requests[0]["messages"][1]["content"]
    second_stage = handler.requests[3]["messages"][1]["content"]
    assert (
        "file: shop/cart.py\nclass: Cart\nclass functions: Cart.__init__, Cart.add, Cart.checkout"
        in second_stage
    )
    assert "static functions: total, discount" in second_stage
    assert {tool["function"]["name"] for tool in handler.requests[0]["tools"]} == {
        "get_code_of_class",
        "get_code_of_file_function",
        "get_code_of_class_function",
        "exit",
    }


def test_rl_profiles_run_one_stage_and_ask_for_the_answer_inside_exit(index):
    """``tooltrain-rl`` is the conversation RL trains: one stage, no submit, and the answer asked for in
    the observation of ``exit`` (verl's loop can only return a tool response there)."""
    from reposearcher_plugin.agent.chat import answer_format

    call = ("get_code_of_file_function", {"file_name": "shop/pricing.py", "func_name": "total"})
    result, handler = run(
        index, [{"tool_calls": [call]}, {"tool_calls": [("exit", {})]}, ANSWER], profile="tooltrain-rl"
    )
    assert {step.stage for step in result.trajectory.steps} == {"search"}
    last = handler.requests[-1]["messages"]
    assert last[-1]["role"] == "tool" and last[-1]["content"].endswith(f"\n\n{answer_format('search', 5)}")
    assert result.locations[0] == "shop/pricing.py::total"
    _, handler = run(index, [ANSWER], profile="default-rl")
    assert "submit" not in {tool["function"]["name"] for tool in handler.requests[0]["tools"]}
    assert "`submit`" not in handler.requests[0]["messages"][0]["content"]


def test_trajectory_round_trips(index, tmp_path):
    result, _ = run(index, [{"tool_calls": [("search_function", {"function_name": "total"})]}, ANSWER])
    path = result.trajectory.write(tmp_path / "t.json")
    again = Trajectory.read(path)
    assert again == result.trajectory


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown tool profile"):
        AgentConfig(profile="nope")
    with pytest.raises(ValueError, match="unknown tool format"):
        AgentConfig(tool_format="xml")


def test_hints_from_the_retrieval_default_reach_the_first_prompt(index):
    _, handler = run(index, [ANSWER], hints=3)
    prompt = handler.requests[0]["messages"][1]["content"]
    hinted = prompt.split("<search_hints>", 1)[1].split("</search_hints>", 1)[0]
    assert "shop/cart.py::Cart.checkout" in hinted
    assert len([line for line in hinted.splitlines() if "::" in line]) == 3
    _, handler = run(index, [ANSWER])
    assert "<search_hints>" not in handler.requests[0]["messages"][1]["content"]


def test_a_request_never_outlives_the_run(index):
    import time

    model, handler = scripted_model([ANSWER])
    policy = LiteLLMPolicy(model, retries=3, backoff_s=0.0)
    with pytest.raises(Exception, match="time is up"):
        policy.complete([{"role": "user", "content": "hi"}], None, deadline=time.perf_counter())
    assert handler.requests == []  # nothing was sent, nothing retried
    # the loop hands its wall budget (plus a grace for the answer turn) to every request
    result = Agent(LiteLLMPolicy(model, retries=0), AgentConfig(max_wall_s=60)).localize(index, ISSUE)
    assert result.locations[0] == "shop/pricing.py::total"


def test_answered_locations_outside_the_repository_are_dropped(index):
    echoed = "```\npath/to/file.py\nfunction: ClassName.method_name\nshop/pricing.py\nfunction: total\n```"
    result, _ = run(index, [echoed])
    assert result.locations == ["shop/pricing.py::total"] and result.files == ["shop/pricing.py"]
    assert "not in the repository were dropped" in result.trajectory.steps[-1].note


def test_an_answer_of_only_invented_paths_falls_back(index):
    searched = {"tool_calls": [("search_function", {"function_name": "total"})]}
    echoed = "```\npath/to/file.py\nfunction: get_repo_structure\n```"
    result, handler = run(index, [searched, echoed, echoed])
    assert result.locations == ["shop/pricing.py::total"]
    assert result.trajectory.fallback.startswith("the model gave no readable answer")
    assert len(handler.requests) == 3  # sent back once, not twice


def test_an_invented_answer_is_sent_back_to_search_once(index):
    invented = '```json\n{"locations": ["src/shop/checkout.py::Checkout.run"]}\n```'
    searched = {"tool_calls": [("search_function", {"function_name": "total"})]}
    result, handler = run(index, [invented, searched, ANSWER])
    told = handler.requests[1]["messages"][-1]["content"]
    assert "src/shop/checkout.py" in told and "search with the tools" in told
    assert "sent back to search" in result.trajectory.steps[0].note
    assert result.locations[0] == "shop/pricing.py::total" and result.trajectory.fallback is None
    # the same through the submit tool
    submitted = {"tool_calls": [("submit", {"locations": ["src/shop/checkout.py::Checkout.run"]})]}
    correct = {"tool_calls": [("submit", {"locations": ["shop/pricing.py::total"]})]}
    result, handler = run(index, [submitted, correct])
    assert "src/shop/checkout.py" in handler.requests[1]["messages"][-1]["content"]
    assert result.locations == ["shop/pricing.py::total"]


def test_trimming_goes_below_the_budget_so_the_prompt_prefix_stays_put(make_index):
    """Once a request outgrows the window, enough old observations go that the next turns fit as they
    are: dropping just enough would change the prompt's prefix (and lose the server's prompt cache)
    on every turn."""
    from reposearcher_plugin.agent.limits import DROPPED_OBSERVATION

    big = make_index({"big.py": "".join(f"def f{n}(value):\n    return value + {n}\n\n" for n in range(400))})
    views = [
        {"tool_calls": [("show_code", {"file": "big.py", "start_line": 1 + 40 * n, "end_line": 40 + 40 * n})]}
        for n in range(10)
    ]
    # the prompt and schemas take ~1,500 tokens, each view ~300; the budget is 2,936 (the window less
    # the reply's room): about five views fit, and each trim makes room for about three more
    model, handler = scripted_model([*views, ANSWER], chars_per_token=4)
    policy = LiteLLMPolicy(model, retries=0, backoff_s=0.0)
    Agent(policy, AgentConfig(context_window=6000, max_turns=20)).localize(big, ISSUE, instance_id="big")

    def dropped_mask(request: dict) -> tuple[bool, ...]:
        return tuple(
            m.get("content") == DROPPED_OBSERVATION for m in request["messages"] if m["role"] == "tool"
        )

    masks = [dropped_mask(request) for request in handler.requests]
    changes = [i for i in range(1, len(masks)) if masks[i][: len(masks[i - 1])] != masks[i - 1]]
    assert len(changes) >= 2, changes
    assert all(later - earlier > 1 for earlier, later in itertools.pairwise(changes)), changes


def test_tooltrain_file_list_is_cut_to_the_window_keeping_the_best_ranked_files(make_index):
    """The official files prompt lists every source file; for a repository bigger than the model's
    window the request could only fail, so the list keeps what the offline default ranks first."""
    files = {
        f"pkg/module_with_a_long_name_{n:03d}.py": f"def helper_{n}():\n    return {n}\n" for n in range(400)
    }
    files["pkg/pricing.py"] = "def total(items):\n    return sum(items)\n"
    big = make_index(files)
    answer = "```\npkg/pricing.py\n```"
    model, handler = scripted_model([answer, "```\npkg/pricing.py\nfunction: total\n```"], chars_per_token=4)
    policy = LiteLLMPolicy(model, retries=0, backoff_s=0.0)
    config = AgentConfig(profile="tooltrain", context_window=6000)
    result = Agent(policy, config).localize(big, "total() in pkg/pricing.py is wrong", instance_id="big")
    listing = handler.requests[0]["messages"][1]["content"]
    assert "pkg/pricing.py\n" in listing
    assert "more files, not listed to fit the context window" in listing
    assert listing.count("module_with_a_long_name") < 400
    assert sum(len(m["content"]) for m in handler.requests[0]["messages"]) / 4 < 6000 - 1024
    assert result.locations == ["pkg/pricing.py::total"]
