"""The MCP server, driven by a real MCP client over stdio: tool list, every tool, errors, `localize`.

Each server is one subprocess (`python -m reposearcher_plugin.hosts.mcp_server`), started once per module
and asked everything in one session; the answers are compared with ``ToolBox.call`` in this process, which
is the one implementation the server must not drift from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.tools import FINAL_TOOLS, ToolBox, profile_specs
from tests.conftest import write_tree
from tests.test_integration_requests import requests_source  # noqa: F401  (a fixture)

mcp = pytest.importorskip("mcp")
anyio = pytest.importorskip("anyio")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

REPO = {
    "web/__init__.py": "",
    "web/sessions.py": '''
        """Sessions and redirects."""
        from .utils import requote_uri


        class Session:
            """Keeps cookies across requests."""

            def __init__(self):
                self.cookies = {}

            def resolve_redirects(self, response, request):
                """Follow the Location header of a redirect response."""
                url = requote_uri(response.headers["location"])
                request.url = url
                return request

            def send(self, request):
                return self.resolve_redirects(request.response, request)
        ''',
    "web/utils.py": '''
        def requote_uri(uri):
            """Quote a URI so it is safe to send."""
            return uri.replace(" ", "%20")


        def parse_header(value):
            return value.split(";")
        ''',
    "tests/test_sessions.py": """
        from web.sessions import Session


        def test_redirect():
            assert Session()
        """,
}

ISSUE = (
    "Session.resolve_redirects drops the query string\n\n"
    "When a 302 points at a URL with a query, `resolve_redirects` builds the next request without it."
)

# (tool, arguments): every tool of the profile at least once, defaults left out and given
DEFAULT_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_repo_structure", {}),
    ("get_repo_structure", {"path": "web", "depth": 1}),
    ("get_imports_of_file", {"file": "web/sessions.py"}),
    ("search_class", {"class_name": "Session"}),
    ("search_class", {"class_name": "Session", "file": "web/sessions.py"}),
    ("search_function", {"function_name": "requote_uri"}),
    ("search_class_method", {"class_name": "Session", "method_name": "resolve_redirects"}),
    ("show_code", {"file": "web/utils.py", "start_line": 1, "end_line": 3}),
    ("search_code", {"query": "redirect location", "k": 3}),
    ("search_code", {"query": "quote uri"}),
    ("find_references", {"name": "requote_uri"}),
]
BAD_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("search_class", {}),  # missing argument
    ("show_code", {"file": "web/utils.py", "start_line": "one", "end_line": 3}),  # wrong type
    ("search_code", {"query": "x", "limit": 3}),  # unknown argument
    ("show_code", {"file": "../outside.py", "start_line": 1, "end_line": 2}),  # escapes the repository
    ("show_code", {"file": "/etc/passwd", "start_line": 1, "end_line": 2}),  # absolute
    ("get_imports_of_file", {"file": "web/missing.py"}),
]
TOOLTRAIN_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_code_of_class", {"file_name": "web/sessions.py", "class_name": "Session"}),
    ("get_code_of_file_function", {"file_name": "web/utils.py", "func_name": "parse_header"}),
    (
        "get_code_of_class_function",
        {"file_name": "web/sessions.py", "class_name": "Session", "func_name": "send"},
    ),
    ("get_code_of_class", {"file_name": "web/sessions.py"}),  # missing argument
]


def _field(obj: Any, *names: str) -> Any:
    """mcp 2.x models use snake_case attributes, 1.x camelCase."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise AttributeError(names)


def _result(result: Any) -> dict[str, Any]:
    return {
        "texts": [block.text for block in result.content],
        "is_error": bool(_field(result, "is_error", "isError")),
    }


def _session(
    repo: Path, cache: Path, calls: Sequence[tuple[str, dict[str, Any]]], *extra: str
) -> dict[str, Any]:
    """Start the server, list its tools, make every call; return what the client saw."""
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "reposearcher_plugin.hosts.mcp_server",
            "--repo",
            str(repo),
            "--cache-dir",
            str(cache),
            *extra,
        ],
        cwd=str(Path(__file__).resolve().parents[1]),
        env=dict(os.environ),  # the client's default keeps only PATH/HOME-like variables, not PYTHONPATH
    )

    async def run() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            listed = await session.list_tools()
            tools = [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "schema": _field(tool, "input_schema", "inputSchema"),
                    "read_only": _field(tool.annotations, "read_only_hint", "readOnlyHint"),
                }
                for tool in listed.tools
            ]
            answers = [_result(await session.call_tool(name, args)) for name, args in calls]
            return {
                "instructions": init.instructions,
                "tools": tools,
                "answers": answers,
            }

    return anyio.run(run)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("mcp")
    repo = write_tree(base / "repo", REPO)
    calls = [
        *DEFAULT_CALLS,
        *BAD_CALLS,
        ("submit", {"locations": ["web/sessions.py"]}),
        ("localize", {"issue": ISSUE}),
        ("localize", {"issue": ISSUE, "model": "bm25"}),
        ("localize", {}),
    ]
    seen = _session(repo, base / "cache", calls, "--trajectory-dir", str(base / "trajectories"))
    index = build_index(repo, cache=ParseCache(base / "cache"), workers=1)
    return {"repo": repo, "base": base, "calls": calls, "index": index, **seen}


def test_lists_the_profile_tools_with_our_schemas(synthetic):
    specs = [spec for spec in profile_specs("default") if spec.name not in FINAL_TOOLS]
    tools = {tool["name"]: tool for tool in synthetic["tools"]}
    assert [tool["name"] for tool in synthetic["tools"]] == [spec.name for spec in specs] + ["localize"]
    for spec in specs:
        assert tools[spec.name]["description"] == spec.description
        assert tools[spec.name]["schema"] == spec.mcp_input_schema()
        assert tools[spec.name]["read_only"] is True
    assert tools["localize"]["schema"]["required"] == ["issue"]
    assert set(tools["localize"]["schema"]["properties"]) == {"issue", "model"}
    assert "localize" in synthetic["instructions"]


def test_every_tool_answers_what_the_toolbox_answers(synthetic):
    box = ToolBox(synthetic["index"])
    answered = dict(enumerate(synthetic["answers"]))
    for position, (name, args) in enumerate(DEFAULT_CALLS):
        expected = box.call(name, args)
        assert expected.ok, (name, args, expected.text)
        assert answered[position] == {"texts": [expected.text], "is_error": False}, (name, args)


def test_bad_arguments_and_escaping_paths_are_error_results_with_our_message(synthetic):
    box = ToolBox(synthetic["index"])
    offset = len(DEFAULT_CALLS)
    for position, (name, args) in enumerate(BAD_CALLS, start=offset):
        expected = box.call(name, args)
        assert not expected.ok
        assert synthetic["answers"][position] == {"texts": [expected.text], "is_error": True}, (name, args)
    refused = synthetic["answers"][offset + 3]["texts"][0]
    assert "refused" in refused and "leaves the repository root" in refused
    assert "absolute path" in synthetic["answers"][offset + 4]["texts"][0]


def test_submit_is_not_served(synthetic):
    answer = synthetic["answers"][len(DEFAULT_CALLS) + len(BAD_CALLS)]
    assert answer["is_error"]
    assert answer["texts"][0].startswith("Unknown tool 'submit'. Available tools: get_repo_structure")


def test_localize_returns_a_summary_and_the_result_json(synthetic):
    first = len(DEFAULT_CALLS) + len(BAD_CALLS) + 1
    answer = synthetic["answers"][first]
    assert not answer["is_error"]
    summary, payload = answer["texts"]
    row = json.loads(payload)
    assert row["locations"][0] == "web/sessions.py::Session.resolve_redirects"
    assert row["found_files"][0] == "web/sessions.py"
    assert row["found_related_locs"]["web/sessions.py"][0].startswith("function: Session.resolve_redirects")
    assert row["model"] == "retrieval"
    assert summary.splitlines()[1] == "1. web/sessions.py::Session.resolve_redirects (method, lines 11-15)"
    # the trajectory is written to --trajectory-dir, and only its path travels
    trajectory = Path(row["trajectory"])
    assert trajectory.parent == synthetic["base"] / "trajectories"
    assert json.loads(trajectory.read_text())["format"] == "reposearcher-trajectory/1"
    assert f"trajectory: {trajectory}" in summary

    bm25 = json.loads(synthetic["answers"][first + 1]["texts"][1])
    assert bm25["model"] == "bm25" and bm25["locations"]

    missing = synthetic["answers"][first + 2]
    assert missing["is_error"]
    assert missing["texts"] == [
        "Error: localize() is missing the argument 'issue'; it takes: localize(issue, model=null)"
    ]


def test_tooltrain_profile(tmp_path):
    repo = write_tree(tmp_path / "repo", REPO)
    seen = _session(repo, tmp_path / "cache", [*TOOLTRAIN_CALLS, ("exit", {})], "--profile", "tooltrain")
    specs = [spec for spec in profile_specs("tooltrain") if spec.name != "exit"]
    assert [tool["name"] for tool in seen["tools"]] == [spec.name for spec in specs] + ["localize"]
    assert [tool["schema"] for tool in seen["tools"][:-1]] == [spec.mcp_input_schema() for spec in specs]
    box = ToolBox(build_index(repo, cache=ParseCache(tmp_path / "cache"), workers=1), "tooltrain")
    for (name, args), answer in zip(TOOLTRAIN_CALLS, seen["answers"], strict=False):
        expected = box.call(name, args)
        assert answer == {"texts": [expected.text], "is_error": not expected.ok}, (name, args)
    assert seen["answers"][-1]["is_error"]  # exit ends our agent's search; it is not served


@pytest.mark.integration
def test_requests_release_over_mcp(requests_source, tmp_path):  # noqa: F811
    """Real code: the psf__requests-1963 issue localizes to the function its fix changed."""
    from reposearcher_plugin.cli.demo import DEMO_FIX, DEMO_ISSUE

    calls = [
        ("search_class_method", {"class_name": "SessionRedirectMixin", "method_name": "resolve_redirects"}),
        ("search_code", {"query": "redirect method 303"}),
        ("localize", {"issue": DEMO_ISSUE}),
    ]
    seen = _session(requests_source, tmp_path / "cache", calls)
    box = ToolBox(build_index(requests_source, cache=ParseCache(tmp_path / "cache"), workers=1))
    for (name, args), answer in zip(calls[:2], seen["answers"], strict=False):
        assert answer == {"texts": [box.call(name, args).text], "is_error": False}
    row = json.loads(seen["answers"][2]["texts"][1])
    assert row["locations"][0] == DEMO_FIX
    assert row["trajectory"] is None  # not inline: it can be megabytes


def test_bad_repository_is_a_usage_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "reposearcher_plugin.hosts.mcp_server", "--repo", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 2
    assert done.stdout == ""  # stdout belongs to the protocol
    assert done.stderr.startswith("reposearcher: error: --repo ")


def test_missing_mcp_says_how_to_install(monkeypatch, tmp_path):
    from reposearcher_plugin.hosts import mcp_server

    monkeypatch.setitem(sys.modules, "mcp.types", None)
    with pytest.raises(mcp_server.McpUnavailable, match=r"pip install -e '\.\[mcp\]'"):
        mcp_server.build_server(write_tree(tmp_path / "repo", REPO))


def test_service_index_is_built_once(tmp_path):
    from reposearcher_plugin.hosts.mcp_service import ReposearcherService

    service = ReposearcherService(write_tree(tmp_path / "repo", REPO), cache_dir=tmp_path / "cache")
    assert service._index is None  # nothing is indexed before the first call
    first = service.call("search_function", {"function_name": "parse_header"})
    assert not first.is_error
    index = service._index
    service.call("find_references", {"name": "Session"})
    assert service._index is index


def test_start_fails_loudly_when_tree_sitter_cannot_parse(tmp_path):
    # SWE-agent's tree-sitter 0.21.3 in a shared environment: the server must not start and serve an
    # empty index ("No class named 'Session'" for every search)
    from tests.broken_tree_sitter import checkout_venv

    python = checkout_venv(tmp_path / "venv", tree_sitter_021=True)
    repo = write_tree(tmp_path / "repo", REPO)
    done = subprocess.run(
        [str(python), "-m", "reposearcher_plugin.hosts.mcp_server", "--repo", str(repo)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("reposearcher: error: tree-sitter 0.21.3 cannot parse")
    assert "RepoSearcher needs tree-sitter" in done.stderr


def test_client_config_names_the_interpreter_by_its_path(tmp_path, capsys):
    from reposearcher_plugin.cli.main import main

    repo = write_tree(tmp_path / "repo", REPO)
    assert main(["openhands", "mcp", "--repo", str(repo)]) == 0
    entry = json.loads(capsys.readouterr().out)["mcpServers"]["reposearcher"]
    assert entry["command"] == os.path.abspath(sys.executable)
    assert entry["args"] == ["-m", "reposearcher_plugin.hosts.mcp_server", "--repo", str(repo)]
    assert main(["openhands", "mcp", "--repo", str(repo), "--flat"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"reposearcher"}  # Agent(mcp_config=...)'s form
