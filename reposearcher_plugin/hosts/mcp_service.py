"""The MCP server's behaviour without a transport: the tools of one profile and ``localize`` over one
repository (``ReposearcherService``), each call's text blocks and error flag (``ToolOutcome``).

Every tool is listed with its ``ToolSpec`` and every call runs through ``ToolSession`` / ``ToolBox.call``,
so an MCP client sees exactly what our own agent sees. No mcp import: ``mcp_server.py`` binds this to the
protocol, and tests drive it directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.localizers import LocalizerOptions, build_localizer, check_model
from reposearcher_plugin.hosts.localization_text import render_localization
from reposearcher_plugin.index import ParseCache, RepoIndex, build_index
from reposearcher_plugin.index.names import utf8_text
from reposearcher_plugin.tools import FINAL_TOOLS, Param, ToolArgumentError, ToolBox, ToolSpec, profile_specs
from reposearcher_plugin.tools.session import ToolSession

log = logging.getLogger("reposearcher.mcp")

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
            try:  # model_copy does not validate
                model = check_model(bound["model"])
            except ValueError as error:
                return ToolOutcome((f"Error: localize(): {error}",), is_error=True)
            options = options.model_copy(update={"model": model})
        instance_id = "issue-" + hashlib.sha1(issue.encode("utf-8")).hexdigest()[:12]
        # an LLM localizer imports litellm (seconds); only pay that when one is asked for
        from reposearcher_plugin.workspace.change_history import local_history

        result = build_localizer(options).localize(
            self.index(),
            issue,
            instance_id=instance_id,
            repo=str(self.repo),
            history=local_history(self.repo),
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
