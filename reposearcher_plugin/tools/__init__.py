"""Layer 2: the RepoSearcher tool set over an index: one schema, one implementation, one rendering."""

from reposearcher_plugin.tools.paths import PathRefused, confine
from reposearcher_plugin.tools.profiles import (
    DEFAULT_TOOLS,
    FINAL_TOOLS,
    PROFILES,
    TOOLTRAIN_TOOLS,
    TWO_STAGE_PROFILES,
    Observation,
    ToolBox,
    profile_specs,
    rl_profile,
)
from reposearcher_plugin.tools.repo_tools import RepoTools, ToolFailure
from reposearcher_plugin.tools.spec import (
    Param,
    ToolArgumentError,
    ToolSpec,
    hermes_tools_prompt,
    openai_tools,
)
from reposearcher_plugin.tools.tokens import code_tokens, split_identifier

__all__ = [
    "DEFAULT_TOOLS",
    "FINAL_TOOLS",
    "PROFILES",
    "TOOLTRAIN_TOOLS",
    "TWO_STAGE_PROFILES",
    "Observation",
    "Param",
    "PathRefused",
    "RepoTools",
    "ToolArgumentError",
    "ToolBox",
    "ToolFailure",
    "ToolSpec",
    "code_tokens",
    "confine",
    "hermes_tools_prompt",
    "openai_tools",
    "profile_specs",
    "rl_profile",
    "split_identifier",
]
