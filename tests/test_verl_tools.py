"""The verl tool adapter, driven by verl 0.9.1 itself on CPU: its registry loads our tool config, its
agent loop's ``_call_tool`` runs our tools, and every observation equals ``ToolBox.call`` at inference."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from verl.experimental.agent_loop.tool_agent_loop import AgentData, ToolAgentLoop
from verl.experimental.agent_loop.tool_parser import FunctionCall
from verl.tools.schemas import OpenAIFunctionToolSchema
from verl.tools.tool_registry import initialize_tools_from_config

from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.rl import shared_indexes, verl_tools
from reposearcher_plugin.rl.shared_indexes import index_cache
from reposearcher_plugin.rl.toolset import tool_names
from reposearcher_plugin.rl.verl_tools import (
    RepoSearcherTool,
    tool_config,
    verl_schema,
    write_tool_config,
)
from reposearcher_plugin.tools import RepoTools, ToolBox, profile_specs
from reposearcher_plugin.tools.session import MAX_OBSERVATION_CHARS, clip_observation
from reposearcher_plugin.workspace import Workspace
from tests.conftest import git, write_tree

MODELS_V1 = '''
    """Models."""
    from .utils import slugify


    class Model:
        """A stored row."""

        def save(self, force=False):
            return slugify(self.name)

        def delete(self):
            return None


    class Manager:
        def get(self, pk):
            return Model()


    def create(name):
        return Model()
'''
UTILS = """
    import re


    def slugify(text):
        return re.sub(r"\\W+", "-", text).lower()
"""
LIB = """
    class Engine:
        def start(self):
            return "vroom"


    def build_engine():
        return Engine()
"""


def _commit(root: Path, files: dict[str, str]) -> str:
    write_tree(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "c")
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """``acme+shop`` (two commits) and ``acme+car`` (one), as ``repos_dir/owner+name`` clones."""
    repos = tmp_path_factory.mktemp("repos")
    commits: dict[str, list[str]] = {}
    shop = repos / "acme+shop"
    shop.mkdir()
    git(shop, "init", "-q", "-b", "main")
    files = {"shop/__init__.py": "", "shop/models.py": MODELS_V1, "shop/utils.py": UTILS, "README.md": "x"}
    first = _commit(shop, files)
    second = _commit(
        shop,
        {"shop/models.py": MODELS_V1.replace("return None", "return 1") + "\n\ndef purge():\n    return 0\n"},
    )
    commits["acme/shop"] = [first, second]
    car = repos / "acme+car"
    car.mkdir()
    git(car, "init", "-q", "-b", "main")
    commits["acme/car"] = [_commit(car, {"car/__init__.py": "", "car/engine.py": LIB})]
    return repos, commits


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own process-wide index cache and workspace table."""
    monkeypatch.setattr(shared_indexes, "_CACHE", None)
    monkeypatch.setattr(shared_indexes, "_WORKSPACES", {})
    yield
    if shared_indexes._CACHE is not None:
        shared_indexes._CACHE.clear()


def settings(repos: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "repos_dir": str(repos),
        "snapshot_dir": str(tmp_path / "snapshots"),
        "index_cache_dir": str(tmp_path / "parse-cache"),
        **extra,
    }


def load_tools(path: Path) -> dict[str, RepoSearcherTool]:
    with contextlib.redirect_stdout(io.StringIO()):  # BaseTool.__init__ prints every schema
        tools = initialize_tools_from_config(str(path))
    return {tool.name: tool for tool in tools}


def reference_boxes(repos: Path, commits: dict[str, list[str]], tmp_path: Path, profile: str):
    """(repo, commit) -> a ToolBox over the same tree, built the inference way."""
    workspace = Workspace(repos, cache_dir=tmp_path / "ref-snapshots", online=False)
    cache = ParseCache(tmp_path / "ref-cache")
    return {
        (repo, commit): ToolBox(
            build_index(workspace.checkout(repo, commit), cache=cache, workers=1), profile
        )
        for repo, ids in commits.items()
        for commit in ids
    }


def kwargs_for(repo: str, commit: str, **extra: Any) -> dict[str, Any]:
    return {"repo": repo, "base_commit": commit, **extra}


async def call(tool: RepoSearcherTool, create_kwargs: dict[str, Any], arguments: Any) -> tuple[str, dict]:
    """One call the way verl 0.9.1's loop makes it: create -> execute -> release."""
    instance_id, _ = await tool.create(create_kwargs=create_kwargs)
    try:
        response, reward, metrics = await tool.execute(instance_id, arguments, agent_data=None)
    finally:
        await tool.release(instance_id)
    assert reward == 0.0
    return response.text, metrics


# Calls of every tool of both profiles, valid ones and ones the tool must refuse with a message.
DEFAULT_CALLS = [
    ("get_repo_structure", {}),
    ("get_repo_structure", {"path": "shop", "depth": 1}),
    ("get_imports_of_file", {"file": "shop/models.py"}),
    ("search_class", {"class_name": "Model"}),
    ("search_class", {"class_name": "Modle"}),
    ("search_function", {"function_name": "create"}),
    ("search_function", {"function_name": "purge"}),
    ("search_class_method", {"class_name": "Model", "method_name": "delete"}),
    ("search_class_method", {"class_name": "Manager", "method_name": "get", "file": "shop/models.py"}),
    ("show_code", {"file": "shop/utils.py", "start_line": 1, "end_line": 5}),
    ("show_code", {"file": "shop/missing.py", "start_line": 1, "end_line": 5}),
    ("search_code", {"query": "slugify name", "k": 3}),
    ("find_references", {"name": "slugify"}),
]
TOOLTRAIN_CALLS = [
    ("get_code_of_class", {"file_name": "shop/models.py", "class_name": "Model"}),
    ("get_code_of_file_function", {"file_name": "shop/models.py", "func_name": "create"}),
    (
        "get_code_of_class_function",
        {"file_name": "shop/models.py", "class_name": "Model", "func_name": "save"},
    ),
    ("get_code_of_class", {"file_name": "nope.py", "class_name": "Model"}),
    ("exit", {}),
]


# --- the tool config, through verl's own loader ---------------------------------------------------------


@pytest.mark.parametrize("profile", ["default", "tooltrain"])
def test_verl_registry_loads_the_written_config_and_schemas_round_trip(profile, tmp_path):
    path = write_tool_config(tmp_path / f"{profile}.yaml", profile, max_cached_indexes=3)
    tools = load_tools(path)
    assert list(tools) == tool_names(profile)
    specs = {spec.name: spec for spec in profile_specs(profile)}
    for name, tool in tools.items():
        assert isinstance(tool, RepoSearcherTool) and tool.profile == profile
        # what ToolAgentLoop hands the chat template is exactly the schema inference sends
        dumped = tool.tool_schema.model_dump(exclude_unset=True, exclude_none=True)
        assert dumped == specs[name].openai() == verl_schema(specs[name].openai())
    assert index_cache().max_entries == 3


def test_committed_tool_configs_are_current_and_read_the_environment(repos, tmp_path, monkeypatch):
    repos_dir, commits = repos
    root = Path(__file__).resolve().parents[1] / "verl_recipes"
    for profile in ("default", "tooltrain"):
        committed = verl_tools.yaml.safe_load((root / f"tool_config_{profile}.yaml").read_text())
        assert committed == tool_config(profile, **verl_tools.RECIPE_SETTINGS)
    monkeypatch.setenv("REPOSEARCHER_REPOS_DIR", f"{tmp_path / 'elsewhere'}:{repos_dir}")
    monkeypatch.setenv("REPOSEARCHER_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    monkeypatch.setenv("REPOSEARCHER_INDEX_CACHE", str(tmp_path / "parse-cache"))
    monkeypatch.setenv("REPOSEARCHER_ONLINE", "false")
    tools = load_tools(root / "tool_config_tooltrain.yaml")
    assert list(tools) == tool_names("tooltrain")
    assert tools["exit"].config["online"] == "false" and tools["exit"].config["max_cached_indexes"] == 8
    text, metrics = asyncio.run(
        call(
            tools["get_code_of_file_function"],
            kwargs_for("acme/car", commits["acme/car"][0]),
            {"file_name": "car/engine.py", "func_name": "build_engine"},
        )
    )
    assert metrics["ok"] and "def build_engine" in text
    assert (tmp_path / "snapshots").is_dir() and (tmp_path / "parse-cache").is_dir()
    assert list(load_tools(root / "tool_config_default.yaml")) == tool_names("default")


def test_verl_drops_array_items_and_verl_schema_says_so():
    submit = next(spec for spec in profile_specs("default") if spec.name == "submit").openai()
    assert "items" in submit["function"]["parameters"]["properties"]["locations"]
    kept = OpenAIFunctionToolSchema.model_validate(submit).model_dump(exclude_unset=True, exclude_none=True)
    assert "items" not in kept["function"]["parameters"]["properties"]["locations"]
    assert kept == verl_schema(submit)


def test_final_tools_by_profile():
    assert "submit" not in tool_names("default") and "exit" in tool_names("tooltrain")
    assert "submit" in tool_names("default", final_tools=True)
    assert "exit" not in tool_names("tooltrain", final_tools=False)
    assert [entry["tool_schema"]["function"]["name"] for entry in tool_config("tooltrain")["tools"]] == [
        "get_code_of_class",
        "get_code_of_file_function",
        "get_code_of_class_function",
        "exit",
    ]


def test_unknown_tool_or_profile_fails_at_load(tmp_path):
    config = tool_config("tooltrain")
    config["tools"][0]["config"]["profile"] = "default"  # get_code_of_class is not a default tool
    path = tmp_path / "bad.yaml"
    path.write_text(verl_tools.yaml.safe_dump(config))
    with pytest.raises(ValueError, match="not in profile 'default'"):
        load_tools(path)


# --- observations -----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile,calls", [("default", DEFAULT_CALLS), ("tooltrain", TOOLTRAIN_CALLS)])
def test_every_tool_answers_exactly_like_the_toolbox(repos, tmp_path, profile, calls):
    repos_dir, commits = repos
    tools = load_tools(
        write_tool_config(tmp_path / "t.yaml", profile, final_tools=True, **settings(repos_dir, tmp_path))
    )
    reference = reference_boxes(repos_dir, commits, tmp_path, profile)
    assert {name for name, _ in calls} <= set(tools)

    async def run() -> None:
        for (repo, commit), box in reference.items():
            for name, arguments in calls:
                text, metrics = await call(tools[name], kwargs_for(repo, commit), arguments)
                expected = box.call(name, arguments)
                assert text == expected.text, (repo, commit, name, arguments)
                assert metrics == {"ok": expected.ok, "tool": name}

    asyncio.run(run())
    assert all(tool.live_instances == 0 for tool in tools.values())
    assert len(index_cache()) == 3 and index_cache().builds == 3  # one build per (repo, commit)


def test_verl_agent_loop_call_path(repos, tmp_path):
    """verl's own ``ToolAgentLoop._call_tool``: create_kwargs from tools_kwargs, JSON decoding, release."""
    repos_dir, commits = repos
    tools = load_tools(write_tool_config(tmp_path / "t.yaml", **settings(repos_dir, tmp_path)))
    box = reference_boxes(repos_dir, commits, tmp_path, "default")[("acme/shop", commits["acme/shop"][1])]
    loop = SimpleNamespace(
        tools=tools, max_tool_response_length=100_000, tool_response_truncate_side="middle"
    )
    create = {"create_kwargs": kwargs_for("acme/shop", commits["acme/shop"][1])}
    agent_data = AgentData([], None, None, None, None, {}, "r", {name: create for name in tools})

    async def run(name: str, arguments: str):
        function_call = FunctionCall(name=name, arguments=arguments, tool_call_id="c0")
        return await ToolAgentLoop._call_tool(loop, function_call, agent_data.tools_kwargs, agent_data)

    response, _, metrics = asyncio.run(run("search_function", json.dumps({"function_name": "purge"})))
    assert response.text == box.call("search_function", {"function_name": "purge"}).text
    assert metrics == {"ok": True, "tool": "search_function"}
    # a model that JSON-encodes the arguments twice is read the way inference reads it
    twice = json.dumps(json.dumps({"class_name": "Model"}))
    response, _, _ = asyncio.run(run("search_class", twice))
    assert response.text == box.call("search_class", {"class_name": "Model"}).text
    assert all(tool.live_instances == 0 for tool in tools.values())


def test_bad_calls_answer_with_an_error_never_raise(repos, tmp_path):
    repos_dir, commits = repos
    tools = load_tools(write_tool_config(tmp_path / "t.yaml", **settings(repos_dir, tmp_path)))
    good = kwargs_for("acme/shop", commits["acme/shop"][0])
    box = reference_boxes(repos_dir, commits, tmp_path, "default")[("acme/shop", commits["acme/shop"][0])]

    async def run() -> None:
        cases = [
            ("show_code", {"file": "../etc/passwd", "start_line": 1, "end_line": 2}),
            ("show_code", {"file": "shop/nope.py", "start_line": 1, "end_line": 2}),
            ("show_code", {"file": "shop/utils.py", "start_line": "x", "end_line": 2}),
            ("search_class", {}),
            ("search_class", {"class_name": "Model", "colour": "red"}),
            ("search_class", {"class_name": None}),
            ("get_repo_structure", {"depth": "deep"}),
        ]
        for name, arguments in cases:
            text, metrics = await call(tools[name], good, arguments)
            assert text == box.call(name, arguments).text and metrics["ok"] is False, (name, arguments)
        text, metrics = await call(tools["search_class"], good, [1, 2])
        assert text == "Error: the arguments of search_class must be a JSON object, got list. " + (
            "Write the call again as valid JSON."
        )
        assert metrics["ok"] is False
        for broken in (
            {},
            {"repo": "acme/shop"},
            kwargs_for("acme/absent", "0" * 40),
            kwargs_for("acme/shop", "f" * 40),
        ):
            text, metrics = await call(tools["search_class"], broken, {"class_name": "Model"})
            assert text.startswith("Error: the repository is not available (") and metrics["ok"] is False
        response, _, metrics = await tools["search_class"].execute("never-created", {"class_name": "Model"})
        assert response.text.startswith("Error: no tool instance") and metrics["ok"] is False

    asyncio.run(run())
    assert all(tool.live_instances == 0 for tool in tools.values())
    assert len(index_cache()) == 1  # failed builds are not cached


def test_a_tool_bug_becomes_an_error_observation(repos, tmp_path, monkeypatch):
    repos_dir, commits = repos
    tools = load_tools(write_tool_config(tmp_path / "t.yaml", **settings(repos_dir, tmp_path)))

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(RepoTools, "search_class", broken)
    text, metrics = asyncio.run(
        call(tools["search_class"], kwargs_for("acme/car", commits["acme/car"][0]), {"class_name": "Engine"})
    )
    # the message is not shown (it may carry server paths), only its type
    assert text == "Error: search_class failed on these arguments (RuntimeError)." and metrics["ok"] is False


def test_exit_carries_the_stage_answer_prompt(repos, tmp_path):
    repos_dir, commits = repos
    tools = load_tools(write_tool_config(tmp_path / "t.yaml", "tooltrain", **settings(repos_dir, tmp_path)))
    base = kwargs_for("acme/car", commits["acme/car"][0])
    prompt = "Now write the files, one per line, in a ``` block."
    assert asyncio.run(call(tools["exit"], base, {}))[0] == "exit"
    assert asyncio.run(call(tools["exit"], {**base, "answer_prompt": prompt}, {}))[0] == f"exit\n\n{prompt}"
    # only final tools carry it
    text, _ = asyncio.run(
        call(
            tools["get_code_of_class"],
            {**base, "answer_prompt": prompt},
            {"file_name": "car/engine.py", "class_name": "Engine"},
        )
    )
    assert prompt not in text


def test_repo_path_without_git_and_settings_from_create_kwargs(repos, tmp_path):
    repos_dir, commits = repos
    tree = write_tree(tmp_path / "plain", {"pkg/__init__.py": "", "pkg/a.py": LIB})
    tools = load_tools(write_tool_config(tmp_path / "t.yaml", index_cache_dir=str(tmp_path / "pc")))
    expected = ToolBox(build_index(tree, cache=ParseCache(tmp_path / "ref"), workers=1)).call(
        "search_class", {"class_name": "Engine"}
    )
    text, _ = asyncio.run(call(tools["search_class"], {"repo_path": str(tree)}, {"class_name": "Engine"}))
    assert text == expected.text
    # repos_dir given per sample when the tool config has none
    text, metrics = asyncio.run(
        call(
            tools["search_function"],
            kwargs_for("acme/car", commits["acme/car"][0], repos_dir=str(repos_dir)),
            {"function_name": "build_engine"},
        )
    )
    assert metrics["ok"] and "def build_engine" in text


def test_observations_are_cut_like_the_inference_loop():
    """One cut (tools/session.py) for the loop and the adapter, at one default length."""
    text = "x" * 50
    assert (
        clip_observation(text, 20) == "x" * 20 + "\n[... observation cut: 30 more characters; ask for less]"
    )
    assert clip_observation(text, 50) == text
    assert AgentConfig().max_observation_chars == MAX_OBSERVATION_CHARS


# --- concurrency --------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_cached", [2, 8])
def test_2048_concurrent_calls_across_repositories(repos, tmp_path, max_cached):
    """128 trajectories x 16 calls, all in flight at once, over 3 (repo, commit) pairs; with 2 cached
    indexes they also evict each other mid-flight."""
    repos_dir, commits = repos
    tools = load_tools(
        write_tool_config(tmp_path / "t.yaml", **settings(repos_dir, tmp_path, max_cached_indexes=max_cached))
    )
    reference = reference_boxes(repos_dir, commits, tmp_path, "default")
    keys = list(reference)
    calls = [c for c in DEFAULT_CALLS if c[0] != "get_repo_structure" or c[1]] + [
        ("search_class", {"class_name": "Engine"}),
        ("search_function", {"function_name": "build_engine"}),
    ]
    rng = random.Random(7)
    plan = [(keys[t % len(keys)], [rng.choice(calls) for _ in range(16)]) for t in range(128)]
    sizes_before = {name: len(vars(tool)) for name, tool in tools.items()}

    async def trajectory(key: tuple[str, str], steps: list[tuple[str, dict]]) -> list[str]:
        # within a trajectory verl runs a reply's calls concurrently too
        return await asyncio.gather(*(call(tools[n], kwargs_for(*key), a) for n, a in steps))

    async def run() -> list[list[tuple[str, dict]]]:
        return await asyncio.gather(*(trajectory(key, steps) for key, steps in plan))

    results = asyncio.run(run())
    assert sum(len(r) for r in results) == 2048
    for (key, steps), answers in zip(plan, results, strict=True):
        for (name, arguments), (text, metrics) in zip(steps, answers, strict=True):
            expected = reference[key].call(name, arguments)
            assert text == expected.text and metrics["ok"] == expected.ok, (key, name, arguments)
    cache = index_cache()
    assert len(cache) <= max_cached
    if max_cached >= len(keys):
        assert cache.builds == len(keys)  # concurrent first requests shared one build per key
    for name, tool in tools.items():
        assert tool.live_instances == 0
        assert len(vars(tool)) == sizes_before[name]
    assert len(shared_indexes._WORKSPACES) == 1
    for key in cache.cached_keys():
        assert len(cache.future(key, lambda: None).result().boxes) == 1


def test_repeated_call_in_a_trajectory_answers_as_inference(repos, tmp_path):
    """Within one trajectory (one AgentData) an identical call gets the inference loop's note instead of
    its result again; another trajectory runs it afresh."""
    from reposearcher_plugin.tools.session import REPEATED_NOTE

    repos_dir, commits = repos
    tools = load_tools(write_tool_config(tmp_path / "t.yaml", **settings(repos_dir, tmp_path)))
    box = reference_boxes(repos_dir, commits, tmp_path, "default")[("acme/shop", commits["acme/shop"][1])]
    loop = SimpleNamespace(
        tools=tools, max_tool_response_length=100_000, tool_response_truncate_side="middle"
    )
    create = {"create_kwargs": kwargs_for("acme/shop", commits["acme/shop"][1])}

    def trajectory() -> AgentData:
        return AgentData([], None, None, None, None, {}, "r", {name: create for name in tools})

    async def run(agent_data: AgentData, name: str, arguments: dict) -> str:
        function_call = FunctionCall(name=name, arguments=json.dumps(arguments), tool_call_id="c0")
        response, _, _ = await ToolAgentLoop._call_tool(
            loop, function_call, agent_data.tools_kwargs, agent_data
        )
        return response.text

    first, second = trajectory(), trajectory()
    expected = box.call("search_function", {"function_name": "purge"}).text
    assert asyncio.run(run(first, "search_function", {"function_name": "purge"})) == expected
    again = asyncio.run(run(first, "search_function", {"function_name": "purge"}))
    assert again == REPEATED_NOTE
    assert asyncio.run(run(second, "search_function", {"function_name": "purge"})) == expected
    # a failed call is not remembered: correcting nothing and retrying runs it again
    bad = {"file": "shop/nope.py", "start_line": 1, "end_line": 2}
    assert asyncio.run(run(first, "show_code", bad)) == asyncio.run(run(first, "show_code", bad))
