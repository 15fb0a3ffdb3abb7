"""`reposearcher mcp`: serve the RepoSearcher tools and `localize` to an MCP client over stdio."""

from __future__ import annotations

import argparse
from typing import Any


def add_mcp_command(commands: Any) -> None:
    mcp = commands.add_parser(
        "mcp",
        help="serve the tools and `localize` over MCP (stdio) for Claude Code, Cursor, OpenHands, ...",
        description="Run an MCP server over stdio for one repository. It exposes the tool profile's "
        "search tools (same names, descriptions and schemas as the agent's) and `localize`, which runs "
        "the localizer chosen with --model (default: the offline retrieval localizer). Only the protocol "
        "is written to stdout; logs go to stderr. The index is built on the first call and kept.",
    )
    from reposearcher_plugin.hosts.mcp_server import add_server_arguments

    add_server_arguments(mcp)
    mcp.set_defaults(handler=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    from reposearcher_plugin.hosts.mcp_server import serve_from_args

    return serve_from_args(args)
