"""Which tools RL offers, without importing verl (dataset builders need it on machines without verl)."""

from __future__ import annotations

from reposearcher_plugin.tools import FINAL_TOOLS, profile_specs, rl_profile


def tool_names(profile: str = "default", final_tools: bool | None = None) -> list[str]:
    """The profile's tools as RL offers them; ``final_tools=None``: those of ``rl_profile(profile)`` (``exit``
    kept, ``submit`` left out: verl's loop ends at the first reply without a call)."""
    if final_tools is None:
        return [spec.name for spec in profile_specs(rl_profile(profile))]
    names = [spec.name for spec in profile_specs(profile)]
    return names if final_tools else [name for name in names if name not in FINAL_TOOLS]
