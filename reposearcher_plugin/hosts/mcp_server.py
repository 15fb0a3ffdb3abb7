"""RepoSearcher over MCP: the tool profile plus a ``localize`` tool, for Claude Code, Cursor, OpenHands, ...

One schema: every tool is listed with its ``ToolSpec``'s name, description and ``mcp_input_schema()``, and
every call runs through ``ToolBox.call``, so an MCP client sees exactly what our own agent sees. That is
why this module uses mcp's low-level ``Server`` (explicit ``Tool`` objects with explicit input schemas)
rather than ``MCPServer`` / ``FastMCP``, whose ``@tool()`` derives a second schema from a Python signature.

The low-level server exists in mcp 1.x and 2.x but is wired differently: 2.x takes ``on_list_tools`` /
``on_call_tool`` constructor arguments, 1.x (>= 1.20, what ``[hosts]`` allows) uses the ``@list_tools()``
/ ``@call_tool()`` decorators. ``build_server`` detects which one is installed; the handlers are shared.

``submit`` and ``exit`` are not exposed: they end our own agent's search, and an MCP client's agent
answers in its own words. ``ReposearcherService`` (``mcp_service.py``, no mcp import) holds everything
else, so it is also the place to test the behaviour without a transport; this module binds it to mcp and
holds the command line.

Nothing but the protocol may reach stdout: logs go to stderr, and the index is built lazily on the first
call (a client's ``initialize`` / ``tools/list`` must not wait for indexing) and then kept.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from reposearcher_plugin.agent.localizers import LocalizerOptions
from reposearcher_plugin.extras import install_hint
from reposearcher_plugin.hosts.mcp_service import LOCALIZE_TOOL, ReposearcherService, ToolOutcome

log = logging.getLogger("reposearcher.mcp")

SERVER_NAME = "reposearcher"
INSTALL_HINT = install_hint("mcp")


class McpUnavailable(ImportError):
    """The mcp package is missing or too old; the message says how to install it."""


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
