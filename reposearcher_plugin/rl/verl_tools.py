"""The RepoSearcher tools as verl 0.9.1 tools: one ``BaseTool`` class serving every tool of a profile.

verl's ``ToolAgentLoop`` (``verl/experimental/agent_loop/tool_agent_loop.py``) runs, for EVERY tool call,
``create(create_kwargs=...)`` -> ``execute(instance_id, arguments, agent_data=...)`` -> ``release(id)``;
any exception becomes a bare "Error executing tool" message. So this adapter keeps per-call state to one
small dict entry, never raises out of ``execute``, and shares the expensive part, one index and one
``RepoTools`` per (repository, commit), through a process-wide bounded LRU (``IndexCache``, in
``shared_indexes.py``) that every tool and every trajectory of the worker process uses.

Calls run through ``tools.session.ToolSession``, as in the inference loop: the same observations, cut
at the same length with the same note, the same repeat note and error texts, so a policy sees in RL
what it sees at inference.
Set ``actor_rollout_ref.rollout.multi_turn.max_tool_response_length`` above that cut plus its note
(e.g. 16,200) or verl cuts again with its own marker; its default of 256 characters is far too small.

``create_kwargs`` contract (the RL dataset writes it for every tool under
``extra_info.tools_kwargs.<tool>.create_kwargs``; verl passes it as the one keyword ``create_kwargs``):

- ``repo`` (``owner/name``) and ``base_commit``: the repository at that commit, as a read-only snapshot
  made by ``Workspace`` from the tool config's ``repos_dir`` (clones or mirrors ``DIR/owner+name``),
  held (not evictable) while its index is cached. Or
- ``repo_path``: a local directory indexed as it is, without git (a release tarball, a prepared
  snapshot); ``repo`` / ``base_commit`` are then only labels. The directory must not change while the
  process runs: its index is cached by path.
- optional ``repos_dir`` (a path or a list), ``aliases`` (``{repo: alias or [aliases]}``), ``online``:
  used when the tool config does not set them (the tool config wins, so one recipe governs a run).
- optional ``answer_prompt`` (final tools only): text appended, after a blank line, to the observation
  of an accepted ``exit`` / ``submit``. verl's loop can only return a tool response, so the dataset puts
  the answer format here (``chat.answer_format("search", k)``), and the agent with a one-stage profile
  (``tooltrain-rl``) answers ``exit`` the same way; the two-stage ``tooltrain`` flow asks in a user turn.

Final tools (``tool_config(final_tools=None)`` decides by profile):

- ``default``: ``submit`` is LEFT OUT. verl's loop does not stop on a tool call, so after ``submit`` the
  model would be asked for one more turn, and the reward reads the last assistant text (the answer
  block), not tool arguments. Without ``submit`` the only way to answer is the answer block the
  default prompt already asks for (its "or stop calling tools and reply with the answer" path); the RL
  prompt should drop the mention of ``submit`` (a call of it gets verl's "Unknown function" message).
- ``tooltrain``: ``exit`` is KEPT. The official flow, and every SFT trajectory in it, ends a stage's
  search by calling ``exit``; removing it would make the learned stop signal an unknown-tool error.
  With ``answer_prompt`` set, the observation of ``exit`` carries the stage's answer prompt and the
  model's next reply (no tool call) is the answer, which ends verl's loop and is what the reward reads.

The committed ``verl_recipes/tool_config_{default,tooltrain}.yaml`` (``python -m
reposearcher_plugin.rl.verl_tools verl_recipes``) read ``REPOSEARCHER_REPOS_DIR`` (``os.pathsep``-separated
directories), ``REPOSEARCHER_SNAPSHOT_DIR``, ``REPOSEARCHER_INDEX_CACHE`` and ``REPOSEARCHER_ONLINE`` from
the environment of the process that loads the tools; unset, ``create_kwargs`` decides and ``online`` is off.

verl's property schema keeps only ``type``, ``description`` and ``enum`` (pydantic drops anything else,
silently): ``tool_config`` writes exactly what verl keeps, so the YAML shows what the model is shown.
Only ``submit.locations`` has ``items``; the tools of both RL tool sets render byte-identically to
``ToolSpec.openai()``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from reposearcher_plugin.agent.tool_calls import read_arguments
from reposearcher_plugin.rl.shared_indexes import (
    DEFAULT_MAX_CACHED_INDEXES,
    CachedIndex,
    index_cache,
    source_key,
)
from reposearcher_plugin.rl.toolset import tool_names
from reposearcher_plugin.tools import FINAL_TOOLS, ToolBox, profile_specs
from reposearcher_plugin.tools.session import MAX_OBSERVATION_CHARS, ToolSession, invalid_call_text

logger = logging.getLogger(__name__)

CLASS_NAME = "reposearcher_plugin.rl.verl_tools.RepoSearcherTool"  # not __name__: also right under -m
# trajectory (verl's AgentData) -> identities of its successful calls: the repeat memo of its ToolSessions
_TRAJECTORY_MEMOS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
# verl's OpenAIFunctionPropertySchema fields; anything else is dropped when verl loads the schema
_VERL_PROPERTY_KEYS = ("type", "description", "enum")
# Tools that may take long (BM25 build on first use, a scan of every file, a tree walk) run in a thread so
# the rollout's event loop keeps serving generation; name lookups and line views take ~0.1 ms and run
# inline, because a thread hop would cost more than the call.
DEFAULT_OFFLOAD_TOOLS = ("search_code", "find_references", "get_repo_structure")
# What the committed verl_recipes/tool_config_*.yaml spell out. Where repositories live differs per machine,
# so those settings come from the environment of the process that loads the tools (verl resolves the
# YAML with OmegaConf, whose oc.env resolver reads it); unset, they are null and create_kwargs decides.
RECIPE_SETTINGS: dict[str, Any] = {
    "repos_dir": "${oc.env:REPOSEARCHER_REPOS_DIR,null}",
    "snapshot_dir": "${oc.env:REPOSEARCHER_SNAPSHOT_DIR,null}",
    "index_cache_dir": "${oc.env:REPOSEARCHER_INDEX_CACHE,null}",
    "online": "${oc.env:REPOSEARCHER_ONLINE,null}",
    "max_cached_indexes": DEFAULT_MAX_CACHED_INDEXES,
    "index_workers": 1,
}


# --- the verl tool -----------------------------------------------------------------------------------


_CREATED = ToolResponse()  # create's response: verl 0.9.1 discards it, so one object serves every call


@dataclass(frozen=True)
class _Instance:
    box: ToolBox | None
    answer_prompt: str | None = None
    error: str | None = None


class RepoSearcherTool(BaseTool):
    """Any one RepoSearcher tool (named by its ``tool_schema``) for verl's tool agent loop.

    Tool config (``config:`` in the YAML; ``tool_config`` writes it): ``type: native``, ``profile``
    (default ``default``), optional ``repos_dir``, ``snapshot_dir``, ``aliases``, ``online`` (default
    false), ``index_cache_dir`` (the parse cache; default the user cache), ``index_workers`` (default 1),
    ``max_cached_indexes`` (default 8; a Django-size index holds ~16 MB loaded, ~60 MB once
    thousands of lookups filled its file-lines cache, ~190 MB RSS once ``search_code`` built its BM25
    index: ``eval/results/bench_verl_tools.md``), ``max_observation_chars`` (default the inference loop's),
    ``offload_tools`` (tools run in a thread; default search_code, find_references, get_repo_structure).
    """

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None) -> None:
        config = dict(config or {})
        self.profile = str(config.get("profile", "default"))
        specs = {spec.name: spec for spec in profile_specs(self.profile)}  # raises on an unknown profile
        if tool_schema is None:
            name = config.get("name")
            if name not in specs:
                raise ValueError(f"RepoSearcherTool needs a tool_schema or config.name from {sorted(specs)}")
            tool_schema = OpenAIFunctionToolSchema.model_validate(verl_schema(specs[name].openai()))
        super().__init__(config, tool_schema)
        if self.name not in specs:
            raise ValueError(
                f"tool {self.name!r} is not in profile {self.profile!r}; its tools: {', '.join(specs)}"
            )
        self.final = self.name in FINAL_TOOLS
        self.max_observation_chars = int(config.get("max_observation_chars") or MAX_OBSERVATION_CHARS)
        self.offload = self.name in set(config.get("offload_tools") or DEFAULT_OFFLOAD_TOOLS)
        self.cache = index_cache(config.get("max_cached_indexes"))
        self._instances: dict[str, _Instance] = {}
        # per trajectory (verl's AgentData, passed to execute): call arguments -> observation, so that a
        # repeated identical call answers as inference does (earlier observation plus a note); weak keys
        # let a finished trajectory's entries go with it
        self._ids = itertools.count()
        # create_kwargs -> (cache key, builder), memoized: resolving a repo_path is a few system calls,
        # as long as the lookup itself; bounded, since a long run sees many commits
        self._source = functools.lru_cache(maxsize=1024)(self._resolve_source)

    def _resolve_source(
        self, items: tuple[tuple[str, Any], ...]
    ) -> tuple[Hashable, Callable[[], CachedIndex]]:
        return source_key(self.config, dict(items))

    async def create(
        self, instance_id: str | None = None, create_kwargs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[str, ToolResponse]:
        """Resolve the call's repository to a cached toolbox; never raises (errors go to ``execute``)."""
        if instance_id is None:
            # a counter, not uuid4: unique within this tool object, which is all the id has to be
            instance_id = f"{self.name}-{next(self._ids)}"
        create_kwargs = create_kwargs or {}
        answer = create_kwargs.get("answer_prompt") if self.final else None
        try:
            try:
                key, build = self._source(tuple(create_kwargs.items()))
            except TypeError:  # unhashable values (a list of repos_dir, an aliases map): no memo
                key, build = source_key(self.config, create_kwargs)
            entry = await self.cache.get(key, build)
            instance = _Instance(entry.toolbox(self.profile), answer)
        except Exception as error:  # a missing repository or commit: say so to the model and the log
            logger.warning("%s: no index for %s: %s", self.name, dict(create_kwargs), error)
            instance = _Instance(None, error=f"Error: the repository is not available ({error})")
        self._instances[instance_id] = instance
        return instance_id, _CREATED

    async def execute(
        self, instance_id: str, parameters: dict[str, Any], **kwargs: Any
    ) -> tuple[ToolResponse, float, dict]:
        instance = self._instances.get(instance_id)
        if instance is None or instance.box is None:
            text = instance.error if instance is not None else f"Error: no tool instance {instance_id!r}"
            return ToolResponse(text=text), 0.0, {"ok": False, "tool": self.name}
        if not isinstance(parameters, Mapping):
            # verl json-decodes the arguments; a string here was encoded twice, anything else is not an
            # object. read_arguments is the inference parser: same decoding, same error text.
            parameters, _, problem = read_arguments(self.name, parameters)
            if problem is not None:
                return ToolResponse(text=invalid_call_text(problem)), 0.0, {"ok": False, "tool": self.name}
        # one session per call (verl creates and releases around every call) over the trajectory's memo
        session = ToolSession(instance.box, self.max_observation_chars, memo=self._seen_calls(kwargs))
        if self.offload:
            loop = asyncio.get_running_loop()
            observation = await loop.run_in_executor(None, session.call, self.name, parameters)
        else:
            observation = session.call(self.name, parameters)
        text = observation.text
        if observation.ok and not observation.repeated and instance.answer_prompt:
            text = f"{text}\n\n{instance.answer_prompt}"
        return ToolResponse(text=text), 0.0, {"ok": observation.ok, "tool": self.name}

    def _seen_calls(self, kwargs: Mapping[str, Any]) -> set[str] | None:
        """The trajectory's memo of successful calls, shared by the tool objects of one trajectory (verl
        has one per tool name) through the AgentData they all receive."""
        agent_data = kwargs.get("agent_data")
        if agent_data is None:
            return None  # called outside an agent loop: no trajectory to remember calls for
        try:
            return _TRAJECTORY_MEMOS.setdefault(agent_data, set())
        except TypeError:  # not weak-referenceable: do without the repeat note rather than fail
            return None

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        return 0.0  # the reward is the answer's score (rl/reward.py); verl 0.9.1 never calls this anyway

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        self._instances.pop(instance_id, None)

    @property
    def live_instances(self) -> int:
        return len(self._instances)


# --- the tool config verl loads ------------------------------------------------------------------------


def verl_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI tool schema cut to what verl's pydantic schema keeps (property type/description/enum)."""
    function = schema["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}, "required": []}
    properties = {
        name: {key: prop[key] for key in _VERL_PROPERTY_KEYS if key in prop}
        for name, prop in parameters.get("properties", {}).items()
    }
    return {
        "type": schema.get("type", "function"),
        "function": {
            "name": function["name"],
            "description": function["description"],
            "parameters": {
                "type": parameters.get("type", "object"),
                "properties": properties,
                "required": list(parameters.get("required", [])),
            },
        },
    }


def tool_config(profile: str = "default", final_tools: bool | None = None, **config: Any) -> dict[str, Any]:
    """verl's tool config: one ``RepoSearcherTool`` entry per tool; ``config`` goes to every entry."""
    specs = {spec.name: spec for spec in profile_specs(profile)}
    settings = {"type": "native", "profile": profile, **{k: v for k, v in config.items() if v is not None}}
    return {
        "tools": [
            {
                "class_name": CLASS_NAME,
                "config": dict(settings),
                "tool_schema": verl_schema(specs[name].openai()),
            }
            for name in tool_names(profile, final_tools)
        ]
    }


def write_tool_config(
    path: str | os.PathLike[str], profile: str = "default", final_tools: bool | None = None, **config: Any
) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# verl tool config for the RepoSearcher {profile!r} tools "
        "(rollout.multi_turn.tool_config_path).\n"
        "# Written by reposearcher_plugin.rl.verl_tools.write_tool_config; edit that, not this file.\n"
    )
    body = yaml.safe_dump(tool_config(profile, final_tools, **config), sort_keys=False, width=110)
    target.write_text(header + body, encoding="utf-8")
    return target


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m reposearcher_plugin.rl.verl_tools [DIR]``: (re)write DIR/tool_config_{profile}.yaml."""
    import sys

    directory = Path((argv if argv is not None else sys.argv[1:] or ["verl_recipes"])[0])
    for profile in ("default", "tooltrain"):
        print(write_tool_config(directory / f"tool_config_{profile}.yaml", profile, **RECIPE_SETTINGS))


if __name__ == "__main__":
    main()
