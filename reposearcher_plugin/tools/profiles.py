"""The tool profiles (which tools a model gets) and the one entry point that executes a call.

``default`` is our full tool set. ``tooltrain`` is exactly the official RepoSearcher tool set, names and
argument names included, so a model trained with the official code runs unchanged. ``default-rl`` and
``tooltrain-rl`` are the one-conversation forms RL trains on (see :func:`rl_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reposearcher_plugin.index import RepoIndex
from reposearcher_plugin.index.names import utf8_text
from reposearcher_plugin.tools.repo_tools import RepoTools, ToolFailure
from reposearcher_plugin.tools.spec import Param, ToolArgumentError, ToolSpec

_FILE_FILTER = Param(
    "file", "string", "Only look in this file (path relative to the repository root).", required=False
)

DEFAULT_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "get_repo_structure",
        "Show the directory tree of the repository (source files, and counts of other files).",
        (
            Param("path", "string", "Directory to show, relative to the root.", required=False, default="."),
            Param("depth", "integer", "How many directory levels to expand.", required=False, default=2),
        ),
    ),
    ToolSpec(
        "get_imports_of_file",
        "List the imports of a file, with the repository files they resolve to.",
        (Param("file", "string", "Path of the file, relative to the repository root."),),
    ),
    ToolSpec(
        "search_class",
        "Show the code of a class by name (an outline of its members when it is long).",
        (Param("class_name", "string", "Class name, e.g. QuerySet or Outer.Inner."), _FILE_FILTER),
    ),
    ToolSpec(
        "search_function",
        "Show the code of a function (not a method) by name.",
        (Param("function_name", "string", "Function name, e.g. get_object_or_404."), _FILE_FILTER),
    ),
    ToolSpec(
        "search_class_method",
        "Show the code of a method of a class.",
        (
            Param("class_name", "string", "Class name."),
            Param("method_name", "string", "Method name."),
            _FILE_FILTER,
        ),
    ),
    ToolSpec(
        "show_code",
        "Show lines of a file with line numbers.",
        (
            Param("file", "string", "Path of the file, relative to the repository root."),
            Param("start_line", "integer", "First line (1-based)."),
            Param("end_line", "integer", "Last line (inclusive)."),
        ),
    ),
    ToolSpec(
        "search_code",
        "Rank classes, functions and methods by how well their names, docstrings and identifiers "
        "match a query (BM25).",
        (
            Param("query", "string", "Words or identifiers to look for."),
            Param("k", "integer", "How many results to return.", required=False, default=10),
        ),
    ),
    ToolSpec(
        "find_references",
        "Find where an identifier is used in the repository's source files.",
        (Param("name", "string", "The identifier, e.g. get_queryset."),),
    ),
    ToolSpec(
        "submit",
        "Submit the final answer: the locations that must change, most likely first.",
        (
            Param(
                "locations",
                "array",
                "Ranked locations: file paths or entity ids such as path/to/file.py::Class.method.",
                items="string",
            ),
            Param("reason", "string", "One or two sentences on why.", required=False),
        ),
    ),
)

TOOLTRAIN_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "get_code_of_class",
        "A tool for getting the class content of a specific file",
        (
            Param("file_name", "string", "The full file name"),
            Param("class_name", "string", "class name"),
        ),
    ),
    ToolSpec(
        "get_code_of_file_function",
        "A tool for getting the function content of a specific file",
        (
            Param("file_name", "string", "The full file name"),
            Param("func_name", "string", "function name"),
        ),
    ),
    ToolSpec(
        "get_code_of_class_function",
        "A tool for getting the function content of a specific class",
        (
            Param("file_name", "string", "The full file name"),
            Param("class_name", "string", "class name"),
            Param("func_name", "string", "function name"),
        ),
    ),
    ToolSpec("exit", "exit if you have found all the information needed.", ()),
)

PROFILES: dict[str, tuple[ToolSpec, ...]] = {
    "default": DEFAULT_TOOLS,
    "tooltrain": TOOLTRAIN_TOOLS,
    # The conversations RL trains (verl's agent loop runs one conversation and ends at the first reply
    # without a tool call, so no two stages and no `submit`): a model trained with RL on profile P is
    # served with profile "P-rl" and then sees exactly the prompt it was trained on.
    "default-rl": tuple(spec for spec in DEFAULT_TOOLS if spec.name != "submit"),
    "tooltrain-rl": TOOLTRAIN_TOOLS,
}
TWO_STAGE_PROFILES = frozenset({"tooltrain"})  # the official flow: files first, then functions
FINAL_TOOLS = frozenset({"submit", "exit"})  # calls that end a search rather than look something up


def rl_profile(profile: str) -> str:
    """The one-conversation profile RL trains for ``profile`` (itself when it already is one)."""
    profile_specs(profile)  # raises on an unknown profile
    return profile if profile.endswith("-rl") else f"{profile}-rl"


@dataclass(frozen=True)
class Observation:
    tool: str
    text: str
    ok: bool  # False when the call was refused or failed; the text then says why

    def __post_init__(self) -> None:
        # Every host encodes the text as UTF-8 (MCP, JSON rows, an LLM request): a lone surrogate, which
        # only an echoed model-written argument can still carry, must not reach them raw.
        object.__setattr__(self, "text", utf8_text(self.text))


def profile_specs(profile: str) -> tuple[ToolSpec, ...]:
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown tool profile {profile!r}; choose one of: {', '.join(PROFILES)}") from None


class ToolBox:
    """A profile's tools bound to one index: validate a call, run it, return its observation."""

    def __init__(self, index: RepoIndex, profile: str = "default", tools: RepoTools | None = None) -> None:
        self.specs = {spec.name: spec for spec in profile_specs(profile)}
        self.profile = profile
        self.tools = tools or RepoTools(index)

    def call(self, name: str, arguments: Mapping[str, Any] | None = None) -> Observation:
        spec = self.specs.get(name)
        if spec is None:
            return Observation(
                name, f"Unknown tool {name!r}. Available tools: {', '.join(self.specs)}.", ok=False
            )
        if arguments is not None and not isinstance(arguments, Mapping):
            kind = type(arguments).__name__
            text = f"Error: the arguments of {name} must be a JSON object, not {kind}."
            return Observation(name, text, ok=False)
        try:
            bound = spec.bind(arguments)
            text = getattr(self.tools, name)(**bound)
        except (ToolArgumentError, ToolFailure) as error:
            return Observation(name, f"Error: {error}", ok=False)
        except Exception as error:  # the contract: any JSON a model sends gets an observation, never a raise
            # the message is not shown: it may carry the server's absolute paths
            text = f"Error: {name} failed on these arguments ({type(error).__name__})."
            return Observation(name, text, ok=False)
        return Observation(name, text, ok=True)
