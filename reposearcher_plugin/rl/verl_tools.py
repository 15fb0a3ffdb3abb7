"""The RepoSearcher tools as verl 0.9.1 tools: one ``BaseTool`` class serving every tool of a profile.

verl's ``ToolAgentLoop`` (``verl/experimental/agent_loop/tool_agent_loop.py``) runs, for EVERY tool call,
``create(create_kwargs=...)`` -> ``execute(instance_id, arguments, agent_data=...)`` -> ``release(id)``;
any exception becomes a bare "Error executing tool" message. So this adapter keeps per-call state to one
small dict entry, never raises out of ``execute``, and shares the expensive part, one index and one
``RepoTools`` per (repository, commit), through a process-wide bounded LRU (``IndexCache``) that every tool
and every trajectory of the worker process uses.

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
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from reposearcher_plugin.agent.parse import read_arguments
from reposearcher_plugin.index import ParseCache, RepoIndex, build_index
from reposearcher_plugin.rl.toolset import tool_names
from reposearcher_plugin.tools import FINAL_TOOLS, RepoTools, ToolBox, profile_specs
from reposearcher_plugin.tools.session import MAX_OBSERVATION_CHARS, ToolSession, invalid_call_text

logger = logging.getLogger(__name__)

CLASS_NAME = "reposearcher_plugin.rl.verl_tools.RepoSearcherTool"  # not __name__: also right under -m
DEFAULT_MAX_CACHED_INDEXES = 8
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


# --- the process-wide index cache ---------------------------------------------------------------------


@dataclass
class CachedIndex:
    """One (repository, commit)'s index and tools, plus the snapshot hold released on eviction."""

    index: RepoIndex
    tools: RepoTools
    hold: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    boxes: dict[str, ToolBox] = field(default_factory=dict)  # per profile: at most len(PROFILES)

    def toolbox(self, profile: str) -> ToolBox:
        box = self.boxes.get(profile)
        if box is None:
            box = self.boxes.setdefault(profile, ToolBox(self.index, profile, tools=self.tools))
        return box


class IndexCache:
    """A bounded LRU of ``key -> Future[CachedIndex]``, safe across threads and event loops.

    Entries are ``concurrent.futures.Future`` objects: concurrent first requests for a key share one
    build (made in ``executor``, off the event loop), an asyncio caller awaits it with ``wrap_future``
    whatever its loop, and a hit on a finished build costs a dict lookup. Failed builds are dropped so
    the next request tries again. Evicting an entry releases its snapshot hold; calls already holding its
    ``ToolBox`` finish on it (the objects live as long as they are referenced).
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_CACHED_INDEXES, build_threads: int = 2) -> None:
        self.max_entries = max(1, int(max_entries))
        self._entries: OrderedDict[Hashable, concurrent.futures.Future[CachedIndex]] = OrderedDict()
        # finished builds of the keys in _entries, so a hit needs no Future (whose state checks lock)
        self._ready: dict[Hashable, CachedIndex] = {}
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(build_threads, thread_name_prefix="rs-index")
        self.builds = 0  # how many builds were started: lets tests and benchmarks see sharing work

    def __len__(self) -> int:
        return len(self._entries)

    def cached_keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def resize(self, max_entries: int) -> None:
        with self._lock:
            self.max_entries = max(1, int(max_entries))
            evicted = self._evict_locked()
        _release_all(evicted)

    def future(
        self, key: Hashable, build: Callable[[], CachedIndex]
    ) -> concurrent.futures.Future[CachedIndex]:
        """The (possibly running) build for ``key``; starts ``build`` in the executor on a miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            entry = self._executor.submit(build)
            self.builds += 1
            self._entries[key] = entry
            evicted = self._evict_locked()
        entry.add_done_callback(lambda done: self._finished(key, done))
        _release_all(evicted)
        return entry

    async def get(self, key: Hashable, build: Callable[[], CachedIndex]) -> CachedIndex:
        ready = self._ready.get(key)  # the common case, per call: a finished build, no future involved
        if ready is not None:
            with self._lock:
                if key in self._entries:  # still cached: mark it recently used
                    self._entries.move_to_end(key)
            return ready
        entry = self.future(key, build)
        if entry.done():
            return entry.result()
        return await asyncio.wrap_future(entry)

    def clear(self) -> None:
        with self._lock:
            evicted = list(self._entries.values())
            self._entries.clear()
            self._ready.clear()
        _release_all(evicted)

    def _evict_locked(self) -> list[concurrent.futures.Future[CachedIndex]]:
        evicted = []
        while len(self._entries) > self.max_entries:
            key, oldest = self._entries.popitem(last=False)
            self._ready.pop(key, None)
            evicted.append(oldest)
        return evicted

    def _finished(self, key: Hashable, done: concurrent.futures.Future[CachedIndex]) -> None:
        with self._lock:
            if self._entries.get(key) is not done:
                return  # evicted while building: its waiters get it, the cache does not keep it
            if done.cancelled() or done.exception() is not None:
                del self._entries[key]  # failures are not kept: the next request tries again
            else:
                self._ready[key] = done.result()


def _release_all(futures: Sequence[concurrent.futures.Future[CachedIndex]]) -> None:
    for future in futures:
        # an evicted build still running releases its hold when it ends; its waiters still get it
        future.add_done_callback(_release_hold)


def _release_hold(future: concurrent.futures.Future[CachedIndex]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    try:
        future.result().hold.close()
    except Exception:  # a lock file already gone must not break the caller
        logger.exception("releasing a snapshot hold failed")


_CACHE_LOCK = threading.Lock()
_CACHE: IndexCache | None = None


def index_cache(max_entries: int | None = None) -> IndexCache:
    """The process-wide cache; ``max_entries`` (from the tool config) resizes it."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = IndexCache(max_entries or DEFAULT_MAX_CACHED_INDEXES)
            return _CACHE
    if max_entries is not None and max_entries != _CACHE.max_entries:
        _CACHE.resize(max_entries)
    return _CACHE


# --- where a repository comes from ---------------------------------------------------------------------

_WORKSPACES: dict[Hashable, Any] = {}
_WORKSPACES_LOCK = threading.Lock()


def _workspace(repos_dir: Any, snapshot_dir: str | None, aliases: Mapping[str, Any] | None, online: bool):
    """One ``Workspace`` per distinct setting: it owns lock files and a clone directory."""
    from reposearcher_plugin.workspace import Workspace

    if isinstance(repos_dir, str):  # "a:b" from an environment variable, like PATH
        repos_dir = [part for part in repos_dir.split(os.pathsep) if part]
    elif isinstance(repos_dir, os.PathLike):
        repos_dir = [repos_dir]
    dirs = tuple(str(directory) for directory in repos_dir or ())
    alias_key = tuple(
        sorted((repo, (v,) if isinstance(v, str) else tuple(v)) for repo, v in (aliases or {}).items())
    )
    key = (dirs, snapshot_dir, alias_key, online)
    with _WORKSPACES_LOCK:
        workspace = _WORKSPACES.get(key)
        if workspace is None:
            workspace = Workspace(
                list(dirs) or None, snapshot_dir, aliases=dict(aliases or {}), online=online
            )
            _WORKSPACES[key] = workspace
        return workspace


def _flag(value: Any) -> bool:
    """A boolean setting that may arrive as a string (``${oc.env:...}`` resolves to one)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class SourceError(ValueError):
    """create_kwargs that name no repository: a dataset bug, reported in the observation and the log."""


def _source_key(settings: Mapping[str, Any], create_kwargs: Mapping[str, Any]) -> tuple[Hashable, Callable]:
    """(cache key, builder) for a call's repository."""
    index_cache_dir = settings.get("index_cache_dir")
    workers = settings.get("index_workers", 1)
    path = create_kwargs.get("repo_path")
    if path:
        root = str(Path(path).expanduser().resolve())
        return ("path", root), lambda: _build(root, None, index_cache_dir, workers)
    repo, commit = create_kwargs.get("repo"), create_kwargs.get("base_commit")
    if not repo or not commit:
        raise SourceError(
            f"create_kwargs must give repo and base_commit, or repo_path; got {sorted(create_kwargs)}"
        )
    repo, commit = str(repo).strip(), str(commit).strip()

    def hold(stack: contextlib.ExitStack) -> Path:
        pick = lambda name, default=None: (  # noqa: E731
            settings[name] if settings.get(name) is not None else create_kwargs.get(name, default)
        )
        workspace = _workspace(
            pick("repos_dir"), settings.get("snapshot_dir"), pick("aliases"), _flag(pick("online", False))
        )
        return stack.enter_context(workspace.hold(repo, commit))

    return ("git", repo, commit.lower()), lambda: _build(None, hold, index_cache_dir, workers)


def _build(
    root: str | None,
    hold: Callable[[contextlib.ExitStack], Path] | None,
    index_cache_dir: str | None,
    workers: int | None,
) -> CachedIndex:
    stack = contextlib.ExitStack()
    try:
        where = Path(root) if root is not None else hold(stack)  # type: ignore[misc]
        cache = ParseCache(index_cache_dir) if index_cache_dir else None
        # workers=1 by default: a parse pool forks, and forking a threaded process (this runs in a
        # thread beside the event loop) can deadlock; a warm parse cache makes the build ~0.1 s anyway.
        index = build_index(where, cache=cache, workers=workers)
        return CachedIndex(index, RepoTools(index), stack)
    except BaseException:
        stack.close()
        raise


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
        return _source_key(self.config, dict(items))

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
                key, build = _source_key(self.config, create_kwargs)
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
