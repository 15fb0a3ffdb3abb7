"""mini-swe-agent agents that localize the issue before the first model call.

``LocalizeFirstAgent`` is mini-swe-agent's ``DefaultAgent`` plus one step: before the run starts it indexes
the repository, ranks the files and functions the issue most likely needs changed (the offline retrieval
localizer by default; any litellm model drives the RepoSearcher agent instead), and hands the ranking to
the prompt templates as ``{{localization}}``. Select it from a mini-swe-agent config by import path:

    agent:
      agent_class: reposearcher_plugin.hosts.mini_swe_agent.LocalizeFirstAgent
      localizer: {model: retrieval, top_k: 5}
      instance_template: |
        {{task}}
        {{localization}}

mini-swe-agent's ``get_agent`` pops ``agent_class`` and passes every other key of the ``agent`` block to
the class, whose pydantic config validates them; ``localizer`` is therefore a field of our config class.
Localization never blocks the agent: when it fails, ``{{localization}}`` holds a one-line note instead.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

from minisweagent.agents.default import AgentConfig as MiniAgentConfig
from minisweagent.agents.default import DefaultAgent
from minisweagent.environments.local import LocalEnvironment

from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.agent.localizers import DEFAULT_MODEL, LocalizerOptions
from reposearcher_plugin.hosts.localization_text import render_localization

logger = logging.getLogger("reposearcher.mini_swe_agent")

UNAVAILABLE = "(No localization hints for this task: {reason}. Explore the repository yourself.)"


class LocalizerSettings(LocalizerOptions):
    """The ``agent.localizer`` block of a mini-swe-agent config: every :class:`LocalizerOptions` key, flat
    (``max_turns: 5``) or nested (``agent: {max_turns: 5}``), plus this host's own. Unknown keys are
    refused; ``top_k`` is also how many functions / classes the prompt shows."""

    # a hint before the host's own run: a quarter of the command line's default wall budget
    agent: AgentConfig = AgentConfig(max_wall_s=300.0)
    enabled: bool = True
    api_key_env: str | None = None
    """Environment variable holding the localizer's API key (default: the provider's usual variable)."""
    top_files: int = 5
    show_lines: bool = True
    """Show each definition's kind and line span from the index: the model can ``sed -n`` straight to it."""
    repo_path: str | None = None
    """The repository on THIS machine. Default: the local environment's working directory. Environments
    whose files live elsewhere (a Docker container) need it set, e.g. to a checkout of the same commit."""
    index_cache_dir: str | None = None
    index_workers: int | None = None

    def options(self) -> LocalizerOptions:
        """The localizer's options: these settings less the host's own, the API key read from its variable
        (here, not in the settings: mini-swe-agent writes its config into every trajectory)."""
        options = LocalizerOptions(**{name: getattr(self, name) for name in LocalizerOptions.model_fields})
        if not self.api_key_env:
            return options
        policy = options.policy.model_copy(update={"api_key": os.environ.get(self.api_key_env)})
        return options.model_copy(update={"policy": policy})


class LocalizeFirstAgentConfig(MiniAgentConfig):
    localizer: LocalizerSettings = LocalizerSettings()


class _LocalizeFirst:
    """The localize-first step, shared by the batch and the interactive agent (mixed in before them)."""

    config: Any
    env: Any
    localization: dict[str, Any]

    def run(self, task: str = "", **kwargs: Any) -> dict:
        # A caller that localized already (or wants no hint) passes ``localization=`` itself.
        if "localization" not in kwargs:
            text, locations = self.localize(task)
            kwargs["localization"] = text
            kwargs.setdefault("localization_locations", locations)
        else:
            self.localization = {"given_by_caller": True, "text": kwargs["localization"]}
        kwargs.setdefault("localization_locations", [])
        return super().run(task, **kwargs)  # type: ignore[misc]

    def localize(self, task: str) -> tuple[str, list[dict[str, Any]]]:
        """``(text for the prompt, [{id, path, name, start, end}, ...])``. Never raises."""
        settings: LocalizerSettings = self.config.localizer
        started = time.perf_counter()
        self.localization = {"model": settings.model}
        if not settings.enabled:
            return self._unavailable("localization is turned off"), []
        if not task.strip():
            return self._unavailable("the task text is empty"), []
        try:
            root = self._repo_path(settings)
            from reposearcher_plugin.agent.localizers import build_localizer
            from reposearcher_plugin.index import ParseCache, build_index
            from reposearcher_plugin.index.languages import check_grammars

            # a tree-sitter that cannot parse would index nothing: the note then says why, not "found nothing"
            check_grammars()
            cache = ParseCache(settings.index_cache_dir) if settings.index_cache_dir else None
            index = build_index(root, cache=cache, workers=settings.index_workers)
            from reposearcher_plugin.workspace.change_history import local_history

            result = build_localizer(settings.options()).localize(
                index, task, repo=str(root), history=local_history(root)
            )
        except Exception as error:  # a hint must never cost the agent its run
            logger.warning("localization failed: %s", error, exc_info=True)
            self.localization["traceback"] = traceback.format_exc()
            return self._unavailable(f"localization failed ({type(error).__name__}: {error})"), []
        locations = [_located(index, location) for location in result.locations[: settings.top_k]]
        files = result.files[: settings.top_files]
        self.localization |= {
            "repo_path": str(root),
            "files": result.files[:20],
            "locations": result.locations[:20],
            "usage": result.usage,
            "error": result.error,
            "seconds": round(time.perf_counter() - started, 3),
        }
        if (
            settings.options().uses_llm
            and result.trajectory is not None
            and not isinstance(result.trajectory, str)
        ):
            self.localization["trajectory"] = result.trajectory.to_dict()  # the search an LLM made
        if not files and not locations:
            reason = f"the localizer found nothing{f' ({result.error})' if result.error else ''}"
            return self._unavailable(reason), []
        source = "offline retrieval" if settings.model == DEFAULT_MODEL else settings.model
        text = render_localization(
            result.locations,
            result.files,
            header=f"RepoSearcher ({source}) ranked these as the likeliest places to change. "
            "They are hints, not facts: read the code before you edit.",
            max_locations=settings.top_k,
            max_files=settings.top_files,
            index=index if settings.show_lines else None,
        )
        self.localization["text"] = text
        return text, locations

    def _repo_path(self, settings: LocalizerSettings) -> Path:
        if settings.repo_path:
            root = Path(settings.repo_path)
        elif isinstance(self.env, LocalEnvironment):
            root = Path(self.env.config.cwd or os.getcwd())
        else:
            # Only a local environment's working directory is on this machine; another environment's
            # /testbed may not exist here, or worse, be some other repository.
            kind = type(self.env).__name__
            raise ValueError(f"{kind} runs elsewhere: set agent.localizer.repo_path to a local checkout")
        if not root.is_dir():
            raise ValueError(f"{root} is not a directory")
        return root

    def _unavailable(self, reason: str) -> str:
        self.localization["note"] = reason
        return UNAVAILABLE.format(reason=reason)

    def serialize(self, *extra_dicts: dict) -> dict:
        # The trajectory records what the model was told and why, next to mini-swe-agent's own fields.
        info = {"info": {"localization": getattr(self, "localization", {})}}
        return super().serialize(info, *extra_dicts)  # type: ignore[misc]


class LocalizeFirstAgent(_LocalizeFirst, DefaultAgent):
    """``DefaultAgent`` whose templates get ``{{localization}}`` (text) and ``localization_locations``."""

    def __init__(self, model: Any, env: Any, *, config_class: type = LocalizeFirstAgentConfig, **kwargs: Any):
        super().__init__(model, env, config_class=config_class, **kwargs)
        self.localization: dict[str, Any] = {}


def _interactive_agent_class() -> type:
    # Built on first use: importing mini-swe-agent's interactive agent sets up a prompt_toolkit session,
    # which warns on stderr whenever stdin is not a terminal (every batch run).
    from minisweagent.agents.interactive import InteractiveAgent, InteractiveAgentConfig

    class LocalizeFirstInteractiveAgentConfig(InteractiveAgentConfig):
        localizer: LocalizerSettings = LocalizerSettings()

    class LocalizeFirstInteractiveAgent(_LocalizeFirst, InteractiveAgent):
        """The same for ``mini``'s human-in-the-loop agent (modes human / confirm / yolo)."""

        def __init__(
            self,
            model: Any,
            env: Any,
            *,
            config_class: type = LocalizeFirstInteractiveAgentConfig,
            **kwargs: Any,
        ):
            super().__init__(model, env, config_class=config_class, **kwargs)
            self.localization: dict[str, Any] = {}

    LocalizeFirstInteractiveAgent.__module__ = __name__
    LocalizeFirstInteractiveAgent.__qualname__ = "LocalizeFirstInteractiveAgent"
    return LocalizeFirstInteractiveAgent


def __getattr__(name: str) -> Any:
    # ``agent_class: reposearcher_plugin.hosts.mini_swe_agent.LocalizeFirstInteractiveAgent`` resolves
    # through getattr(module, name) in minisweagent.agents.get_agent_class, so a lazy attribute works.
    if name == "LocalizeFirstInteractiveAgent":
        cls = _interactive_agent_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _located(index: Any, location: str) -> dict[str, Any]:
    """An entity id with its line span from the index (None when the index does not define it)."""
    path, _, qualname = location.partition("::")
    entity = index.find(location)
    return {
        "id": location,
        "path": path,
        "name": qualname,
        "start": entity.start if entity else None,
        "end": entity.end if entity else None,
    }
