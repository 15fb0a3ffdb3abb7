"""The RL tool adapter's shared state: one index and one ``RepoTools`` per (repository, commit), in a
process-wide bounded LRU (``IndexCache``) that every tool and every trajectory of a worker process uses,
and where each repository comes from (a ``Workspace`` snapshot, or a local directory).

No verl import: the cache is plain threads and futures, so it is tested and benchmarked without verl.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.index import ParseCache, RepoIndex, build_index
from reposearcher_plugin.tools import RepoTools, ToolBox

logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHED_INDEXES = 8


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


def source_key(settings: Mapping[str, Any], create_kwargs: Mapping[str, Any]) -> tuple[Hashable, Callable]:
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
