"""RepoSearcher over MCP: the tool profile plus a ``localize`` tool, for Claude Code, Cursor, OpenHands, ...

One schema: every tool is listed with its ``ToolSpec``'s name, description and ``mcp_input_schema()``, and
every call runs through ``ToolBox.call``, so an MCP client sees exactly what our own agent sees. That is
why this module uses mcp's low-level ``Server`` (explicit ``Tool`` objects with explicit input schemas)
rather than ``MCPServer`` / ``FastMCP``, whose ``@tool()`` derives a second schema from a Python signature.

The low-level server exists in mcp 1.x and 2.x but is wired differently: 2.x takes ``on_list_tools`` /
``on_call_tool`` constructor arguments, 1.x (>= 1.20, what ``[hosts]`` allows) uses the ``@list_tools()``
/ ``@call_tool()`` decorators. ``build_server`` detects which one is installed; the handlers are shared.

``submit`` and ``exit`` are not exposed: they end our own agent's search, and an MCP client's agent
answers in its own words. ``ReposearcherService`` (no mcp import) holds everything else, so it is also
the place to test the behaviour without a transport.

Nothing but the protocol may reach stdout: logs go to stderr, and the index is built lazily on the first
call (a client's ``initialize`` / ``tools/list`` must not wait for indexing) and then kept.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.localizers import LocalizerOptions, build_localizer
from reposearcher_plugin.extras import install_hint
from reposearcher_plugin.hosts.localization_text import render_localization
from reposearcher_plugin.index import ParseCache, RepoIndex, build_index
from reposearcher_plugin.index.names import utf8_text
from reposearcher_plugin.tools import FINAL_TOOLS, Param, ToolArgumentError, ToolBox, ToolSpec, profile_specs
from reposearcher_plugin.tools.session import ToolSession

log = logging.getLogger("reposearcher.mcp")

SERVER_NAME = "reposearcher"
INSTALL_HINT = install_hint("mcp")
SUMMARY_LOCATIONS = 10  # locations listed in the human summary of `localize`

LOCALIZE_TOOL = ToolSpec(
    "localize",
    "Localize an issue: rank the files and functions of this repository that most likely need to change "
    "to resolve it. Returns a short summary, then the result as JSON (found_files, locations as "
    "path/to/file.py::Class.method entity ids, found_related_locs in Agentless format). Call it first, "
    "then read the top locations with the search tools.",
    (
        Param("issue", "string", "The issue text: title, description, tracebacks, as the user wrote it."),
        Param(
            "model",
            "string",
            "Localizer: 'retrieval' (offline, no LLM), 'bm25', or a litellm model string. Default: the "
            "server's --model.",
            required=False,
        ),
    ),
)


class McpUnavailable(ImportError):
    """The mcp package is missing or too old; the message says how to install it."""


@dataclass(frozen=True)
class ToolOutcome:
    """What one MCP tool call answers: text blocks, and whether the client should see it as an error."""

    texts: tuple[str, ...]
    is_error: bool = False

    def __post_init__(self) -> None:
        # the transport serializes strictly: one lone surrogate (in an error message, say) ends the server
        object.__setattr__(self, "texts", tuple(utf8_text(text) for text in self.texts))


class ReposearcherService:
    """The tools of one profile and ``localize`` over one repository, with the index built on first use.

    Thread-safe: the MCP handlers run calls in worker threads so the event loop keeps answering pings while
    an index is built or a localizer runs.
    """

    def __init__(
        self,
        repo: str | os.PathLike[str],
        profile: str = "default",
        options: LocalizerOptions | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        trajectory_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.repo = Path(repo).resolve()
        if not self.repo.is_dir():
            raise ValueError(f"--repo {repo}: not a directory")
        self.profile = profile
        # an MCP client's own agent gives the answer, so the calls that end a search stay ours
        self.specs: tuple[ToolSpec, ...] = tuple(
            spec for spec in profile_specs(profile) if spec.name not in FINAL_TOOLS
        )
        self.options = options or LocalizerOptions()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.use_cache = use_cache
        self.trajectory_dir = Path(trajectory_dir) if trajectory_dir else None
        self._by_name = {spec.name: spec for spec in (*self.specs, LOCALIZE_TOOL)}
        self._lock = threading.Lock()
        self._index: RepoIndex | None = None
        self._session: ToolSession | None = None

    # --- what clients see ---------------------------------------------------------------------------

    def tool_specs(self) -> tuple[ToolSpec, ...]:
        return (*self.specs, LOCALIZE_TOOL)

    def instructions(self) -> str:
        names = ", ".join(spec.name for spec in self.specs)
        return (
            f"RepoSearcher over the repository {self.repo.name}: read-only code search for issue "
            f"localization. Call `localize` with the issue text first to get ranked locations "
            f"(entity ids path/to/file.py::Class.method), then inspect them with: {names}. Paths are "
            f"relative to the repository root."
        )

    # --- state --------------------------------------------------------------------------------------

    def index(self) -> RepoIndex:
        with self._lock:
            if self._index is None:
                started = time.perf_counter()
                cache = ParseCache(self.cache_dir) if self.cache_dir else None
                self._index = build_index(self.repo, cache=cache, use_cache=self.use_cache)
                log.info(
                    "indexed %s: %d files in %.2f s",
                    self.repo,
                    self._index.stats.files,
                    time.perf_counter() - started,
                )
            return self._index

    def session(self) -> ToolSession:
        """The tools as every conversation host runs them; no repeat memo and no cut: an MCP client
        holds many conversations over one server, may rightly ask again, and sets its own limits."""
        index = self.index()
        with self._lock:
            if self._session is None:
                box = ToolBox(index, self.profile)
                self._session = ToolSession(box, max_observation_chars=None, remember_calls=False)
            return self._session

    # --- calls --------------------------------------------------------------------------------------

    def call(self, name: str, arguments: Mapping[str, Any] | None) -> ToolOutcome:
        """Run one call; never raises (a failure is an error outcome whose text says what went wrong)."""
        if name not in self._by_name:
            known = ", ".join(spec.name for spec in self.tool_specs())
            return ToolOutcome((f"Unknown tool {name!r}. Available tools: {known}.",), is_error=True)
        try:
            if name == LOCALIZE_TOOL.name:
                return self._localize(arguments)
            observation = self.session().call(name, arguments)
            return ToolOutcome((observation.text,), is_error=not observation.ok)
        except Exception as error:  # a broken repository or a bug must not take the server down
            log.exception("tool %s failed", name)
            return ToolOutcome((f"Error: {name} failed: {type(error).__name__}: {error}",), is_error=True)

    def _localize(self, arguments: Mapping[str, Any] | None) -> ToolOutcome:
        try:
            bound = LOCALIZE_TOOL.bind(arguments)
        except ToolArgumentError as error:
            return ToolOutcome((f"Error: {error}",), is_error=True)
        issue = bound["issue"]
        if not issue.strip():
            return ToolOutcome(("Error: localize(): the issue text is empty",), is_error=True)
        options = self.options
        if bound.get("model"):
            options = options.model_copy(update={"model": bound["model"]})
        instance_id = "issue-" + hashlib.sha1(issue.encode("utf-8")).hexdigest()[:12]
        # an LLM localizer imports litellm (seconds); only pay that when one is asked for
        result = build_localizer(options).localize(
            self.index(), issue, instance_id=instance_id, repo=str(self.repo)
        )
        if self.trajectory_dir is not None and result.trajectory is not None:
            if not isinstance(result.trajectory, str):
                path = self.trajectory_dir / f"{instance_id}.json"
                result.trajectory = str(result.trajectory.write(path))
        elif not isinstance(result.trajectory, str):
            result.trajectory = None  # inline trajectories can be megabytes; clients want the ranking
        row = result.to_dict()
        return ToolOutcome(
            (localize_summary(row, self.index()), json.dumps(row, ensure_ascii=False)),
            is_error=bool(result.error) and not row["found_files"],
        )


def localize_summary(row: Mapping[str, Any], index: RepoIndex, top: int = SUMMARY_LOCATIONS) -> str:
    """A few lines a person (or a model) can read before the JSON."""
    usage = row.get("usage") or {}
    header = f"RepoSearcher ({row.get('model')}, {usage.get('wall_s', 0):.2f} s): where to change"
    lines = [
        render_localization(
            row.get("locations") or [],
            row.get("found_files") or [],
            header=header,
            compact=True,
            max_locations=top,
            index=index,
        )
    ]
    if row.get("error"):
        lines.append(f"error: {row['error']}")
    if isinstance(row.get("trajectory"), str):
        lines.append(f"trajectory: {row['trajectory']}")
    return "\n".join(lines)


# --- mcp binding ------------------------------------------------------------------------------------


def _import_mcp() -> tuple[Any, Any]:
    try:
        import mcp.types as types
        from mcp.server.lowlevel import Server
    except ImportError as error:
        raise McpUnavailable(f"the MCP server needs the mcp package: {INSTALL_HINT} ({error})") from error
    return types, Server


def _is_mcp2(server_class: Any) -> bool:
    return "on_list_tools" in inspect.signature(server_class.__init__).parameters


def _mcp_tools(types: Any, service: ReposearcherService) -> list[Any]:
    tools = []
    for spec in service.tool_specs():
        open_world = spec.name == LOCALIZE_TOOL.name and service.options.uses_llm
        tools.append(
            types.Tool(
                name=spec.name,
                description=spec.description,
                inputSchema=spec.mcp_input_schema(),
                annotations=types.ToolAnnotations(readOnlyHint=True, openWorldHint=open_world),
            )
        )
    return tools


class _ToolError(Exception):
    """mcp 1.x turns an exception raised by a call handler into a result with isError set."""


def build_server(
    repo: str | os.PathLike[str],
    profile: str = "default",
    options: LocalizerOptions | None = None,
    *,
    service: ReposearcherService | None = None,
    **service_kwargs: Any,
) -> Any:
    """An mcp low-level ``Server`` serving the profile's tools and ``localize`` over ``repo``.

    ``service_kwargs`` (``cache_dir``, ``use_cache``, ``trajectory_dir``) go to ``ReposearcherService``.
    The service is reachable as ``server.reposearcher`` for callers that want to inspect it.
    """
    import anyio

    types, Server = _import_mcp()
    service = service or ReposearcherService(repo, profile, options, **service_kwargs)
    tools = _mcp_tools(types, service)

    async def run_call(name: str, arguments: Mapping[str, Any] | None) -> ToolOutcome:
        return await anyio.to_thread.run_sync(service.call, name, dict(arguments or {}))

    def text_blocks(outcome: ToolOutcome) -> list[Any]:
        return [types.TextContent(type="text", text=text) for text in outcome.texts]

    if _is_mcp2(Server):

        async def on_list_tools(ctx: Any, params: Any) -> Any:
            return types.ListToolsResult(tools=tools)

        async def on_call_tool(ctx: Any, params: Any) -> Any:
            outcome = await run_call(params.name, params.arguments)
            return types.CallToolResult(content=text_blocks(outcome), isError=outcome.is_error)

        server = Server(
            SERVER_NAME,
            version=_version(),
            instructions=service.instructions(),
            on_list_tools=on_list_tools,
            on_call_tool=on_call_tool,
        )
    else:
        server = Server(SERVER_NAME, version=_version(), instructions=service.instructions())

        @server.list_tools()
        async def list_tools() -> list[Any]:
            return tools

        # jsonschema validation in 1.x would answer bad arguments with its own wording; ours names the
        # tool's signature, the same text our agent gets
        parameters = inspect.signature(server.call_tool).parameters
        decorator = (
            server.call_tool(validate_input=False) if "validate_input" in parameters else server.call_tool()
        )

        @decorator
        async def call_tool(name: str, arguments: dict[str, Any] | None) -> list[Any]:
            outcome = await run_call(name, arguments)
            if outcome.is_error:
                raise _ToolError("\n".join(outcome.texts))
            return text_blocks(outcome)

    server.reposearcher = service
    return server


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("reposearcher-plugin")
    except Exception:
        return "0"


async def serve_stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    options = server.create_initialization_options()
    _, Server = _import_mcp()
    if _is_mcp2(Server):
        # 2.x points fd 1 at stderr while serving, so stray prints cannot corrupt the protocol
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, options)
        return
    # 1.x writes to sys.stdout: give it a private copy of fd 1 and send everything else to stderr
    from io import TextIOWrapper

    import anyio

    wire = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdout = anyio.wrap_file(TextIOWrapper(wire, encoding="utf-8", write_through=True))
    async with stdio_server(stdout=stdout) as (read_stream, write_stream):
        await server.run(read_stream, write_stream, options)


def run_stdio(
    repo: str | os.PathLike[str],
    profile: str = "default",
    options: LocalizerOptions | None = None,
    **service_kwargs: Any,
) -> None:
    """Serve ``repo`` over stdio until the client closes the connection."""
    import anyio

    server = build_server(repo, profile, options, **service_kwargs)
    anyio.run(serve_stdio, server)


# --- command line -----------------------------------------------------------------------------------


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `reposearcher mcp` (also `python -m reposearcher_plugin.hosts.mcp_server`)."""
    from reposearcher_plugin.agent.options import add_localizer_options

    parser.add_argument("--repo", required=True, help="the repository to serve (a checkout)")
    parser.add_argument("--cache-dir", help="where parses are cached (default: ~/.cache/reposearcher)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the parse cache")
    parser.add_argument(
        "--trajectory-dir",
        help="write each `localize` trajectory here and return its path (default: not kept)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="stderr log level"
    )
    add_localizer_options(parser)  # --profile is among them: the tool profile served


def client_config(repo: str | os.PathLike[str], python: str | None = None) -> dict[str, Any]:
    """The ``mcpServers`` entry that starts this server for ``repo``, with the interpreter by its absolute
    path (a client's PATH may find a ``python`` without us; it then fails with no word to the user)."""
    interpreter = os.path.abspath(python or sys.executable)  # a venv's python is a symlink: keep its path
    args = ["-m", "reposearcher_plugin.hosts.mcp_server", "--repo", os.path.abspath(repo)]
    return {SERVER_NAME: {"command": interpreter, "args": args}}


def serve_from_args(args: argparse.Namespace) -> int:
    from reposearcher_plugin.agent.options import localizer_options
    from reposearcher_plugin.index.languages import GrammarRuntimeError, check_grammars

    # our own messages at --log-level; libraries (bm25s, mcp) only when something is wrong
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="reposearcher mcp: %(message)s")
    log.setLevel(args.log_level)
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at INFO
    try:
        # at start, loudly: a tree-sitter that cannot parse would serve an empty index, every search
        # answering "No class named ..."
        check_grammars()
        options = localizer_options(args, serves_tools=True)
        # the tool profile served is the localizer's (flag, then --config, then "default")
        service = ReposearcherService(
            args.repo,
            options.agent.profile,
            options,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            trajectory_dir=args.trajectory_dir,
        )
        server = build_server(args.repo, service=service)
    except (McpUnavailable, ValueError, GrammarRuntimeError) as error:
        print(f"reposearcher: error: {error}", file=sys.stderr)
        return 2
    import anyio

    log.info("serving %s (profile %s, localizer %s) over stdio", service.repo, service.profile, options.model)
    with contextlib.suppress(KeyboardInterrupt):  # a client that goes away is a normal end
        anyio.run(serve_stdio, server)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reposearcher mcp",
        description="Serve the RepoSearcher tools and `localize` over MCP (stdio).",
    )
    add_server_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
