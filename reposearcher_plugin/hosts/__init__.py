"""Layer 6: RepoSearcher inside the agents people run.

MCP server, SWE-agent bundle, mini-swe-agent agent class and runner, OpenHands hook; one rendering
of a localization result for all of them (``localization_text``).
"""
