"""Build or load the index of a directory: walk, reuse what the cache knows, parse the rest in parallel."""

from __future__ import annotations

import gc
import hashlib
import marshal
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from reposearcher_plugin.index.cache import ParseCache
from reposearcher_plugin.index.identifiers import encode_words, words_by_owner
from reposearcher_plugin.index.languages import PARSER_VERSION, check_grammars, parse_source, parse_tree
from reposearcher_plugin.index.model import FileParse, encode_parse
from reposearcher_plugin.index.names import os_path
from reposearcher_plugin.index.reading import NotReadable, read_source
from reposearcher_plugin.index.repo_index import (
    BuildStats,
    IndexedFile,
    RepoIndex,
    content_key,
    entity_count,
    name_map,
)
from reposearcher_plugin.index.walk import DEFAULT_MAX_FILE_BYTES, SourceFile, resolve_root, scan

Progress = Callable[[int, int], None]  # (files done, files to do)

# Below this much work a process pool costs more than it saves.
_PARALLEL_MIN_FILES = 64
_PARALLEL_MIN_BYTES = 1 << 20
_SNAPSHOT_FORMAT = 5


def build_index(
    root: str | os.PathLike[str],
    *,
    cache: ParseCache | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    progress: Progress | None = None,
) -> RepoIndex:
    """Index ``root``; with the cache on, unchanged files are reused and only changed ones are parsed.
    Raises GrammarRuntimeError when a file has to be read and the installed tree-sitter cannot parse
    (checked once per process): every file would fail to parse and the index would silently come out
    empty. A tree the snapshot holds unchanged parses nothing, so it loads without the check (the check
    loads every grammar: more than the rest of a warm load)."""
    # The build allocates many small objects and no reference cycles: collector passes triggered by the
    # allocation count would only add pauses (measured: up to 40 ms on a warm Django load).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(root, cache, use_cache, workers, max_file_bytes, progress)
    finally:
        if collecting:
            gc.enable()


def _build(
    root: str | os.PathLike[str],
    cache: ParseCache | None,
    use_cache: bool,
    workers: int | None,
    max_file_bytes: int,
    progress: Progress | None,
) -> RepoIndex:
    started = time.perf_counter()
    root_path = resolve_root(root)
    cache = (cache or ParseCache()) if use_cache else None
    listing = scan(root_path, max_file_bytes)
    previous, previous_names = _load_snapshot(cache, str(root_path)) if cache else ({}, None)

    parsed = from_cache = unchanged = 0
    # path -> (size, mtime_ns, digest, language module, encoded FileParse, "\n"-joined entity names,
    # encoded words)
    entries: dict[str, tuple[int, int, str, str, bytes, str, bytes]] = {}
    todo: list[SourceFile] = []
    for source in listing.sources:
        known = previous.get(source.path)
        if known and known[0] == source.size and known[1] == source.mtime_ns and known[3] == source.module:
            entries[source.path] = known
            unchanged += 1
        else:
            todo.append(source)

    if todo:  # before the workers fork: they inherit the grammars the check loaded
        check_grammars()
    skipped = dict(listing.skipped)
    new_parses: list[tuple[str, bytes, str, bytes]] = []
    by_path = {source.path: source for source in todo}
    for outcome in _run(_index_chunk, root_path, cache, todo, workers, progress, max_file_bytes):
        path = outcome[0]
        if outcome[1] is None:
            skipped[path] = outcome[2]
            continue
        _, digest, key, blob, names, words, fresh = outcome
        source = by_path[path]
        entries[path] = (source.size, source.mtime_ns, digest, source.module, blob, names, words)
        if fresh:
            parsed += 1
            new_parses.append((key, blob, names, words))
        else:
            from_cache += 1

    files = {
        path: IndexedFile(path, module, size, digest, blob, names, words)
        for path, (size, _, digest, module, blob, names, words) in sorted(entries.items())
    }
    changed = bool(todo) or len(entries) != len(previous)
    by_name = name_map(files) if changed or previous_names is None else previous_names
    if cache is not None and changed:
        if new_parses:
            cache.put_parses(new_parses)
        snapshot = {"format": _SNAPSHOT_FORMAT, "parser": PARSER_VERSION, "files": entries, "names": by_name}
        cache.put_snapshot(str(root_path), marshal.dumps(snapshot))
    skipped_kinds: dict[str, int] = {}
    for reason in skipped.values():
        kind = reason.split(" (", 1)[0].split(":", 1)[0]
        skipped_kinds[kind] = skipped_kinds.get(kind, 0) + 1
    stats = BuildStats(
        files=len(files),
        entities=entity_count(files),
        parsed=parsed,
        from_cache=from_cache,
        unchanged=unchanged,
        skipped=skipped_kinds,
        seconds=time.perf_counter() - started,
    )
    return RepoIndex(
        root_path, files, listing.other_files, skipped, stats=stats, by_name=by_name, cache=cache
    )


def parse_floor(
    root: str | os.PathLike[str], *, workers: int | None = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> tuple[float, int]:
    """Seconds to read and tree-sitter-parse every indexable file, extracting nothing, with the same
    walk, chunking and parallelism as a cold build: the floor a cold index is judged against."""
    started = time.perf_counter()
    root_path = resolve_root(root)
    sources = scan(root_path, max_file_bytes).sources
    count = sum(1 for _ in _run(_parse_only_chunk, root_path, None, sources, workers, None, max_file_bytes))
    return time.perf_counter() - started, count


def _load_snapshot(
    cache: ParseCache, root: str
) -> tuple[dict[str, tuple[int, int, str, str, bytes, str, bytes]], dict[str, list[str]] | None]:
    """The previous build's files (and its name map), or nothing when absent or made by other code."""
    nothing: tuple[dict, None] = ({}, None)
    data = cache.get_snapshot(root)
    if data is None:
        return nothing
    try:
        snapshot = marshal.loads(data)
    except Exception:  # an unreadable snapshot only costs a rebuild
        return nothing
    if not isinstance(snapshot, dict) or snapshot.get("format") != _SNAPSHOT_FORMAT:
        return nothing
    if snapshot.get("parser") != PARSER_VERSION:  # made by other extraction code: parse afresh
        return nothing
    return snapshot["files"], snapshot.get("names")


# (root, cache directory, max file bytes, (path, language module) of each file): one worker's share
Job = tuple[str, str | None, int, list[tuple[str, str]]]


def _run(
    task: Callable[[Job], list[tuple]],
    root: Path,
    cache: ParseCache | None,
    sources: Sequence[SourceFile],
    workers: int | None,
    progress: Progress | None,
    max_file_bytes: int,
) -> Iterator[tuple]:
    total = len(sources)
    if progress:
        progress(0, total)
    if not sources:
        return
    cache_dir = str(cache.directory) if cache else None
    workers = workers or os.cpu_count() or 1
    small = total < _PARALLEL_MIN_FILES or sum(s.size for s in sources) < _PARALLEL_MIN_BYTES
    chunks = _chunks(sources, 1 if small or workers == 1 else workers)
    done = 0
    if small or workers == 1:
        results: Iterator[list[tuple]] = map(
            task, ((str(root), cache_dir, max_file_bytes, chunk) for chunk in chunks)
        )
        for outcomes in results:
            done += len(outcomes)
            if progress:
                progress(done, total)
            yield from outcomes
        return
    # Imported here: a warm load (most runs) starts no pool, and these imports cost more than its reads.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: workers inherit the loaded grammars; nothing in this process holds threads at this point.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for outcomes in pool.map(task, ((str(root), cache_dir, max_file_bytes, chunk) for chunk in chunks)):
            done += len(outcomes)
            if progress:
                progress(done, total)
            yield from outcomes


def _chunks(sources: Sequence[SourceFile], workers: int) -> list[list[tuple[str, str]]]:
    """Largest files first, dealt into chunks of similar total size, several per worker for balance."""
    if workers == 1:
        return [[(s.path, s.module) for s in sources]]
    count = min(len(sources), workers * 16)
    chunks: list[list[tuple[str, str]]] = [[] for _ in range(count)]
    loads = [0] * count
    for source in sorted(sources, key=lambda s: -s.size):
        target = loads.index(min(loads))
        chunks[target].append((source.path, source.module))
        loads[target] += source.size + 2048  # per-file overhead, so tiny files still spread
    return chunks


_worker_caches: dict[str, ParseCache] = {}


def _index_chunk(job: Job) -> list[tuple]:
    """Read, hash, look up and (when new) parse each file. Returns per file either
    ``(path, digest, cache key, encoded FileParse, entity names, encoded words, freshly parsed)`` or
    ``(path, None, skip reason)``."""
    root, cache_dir, max_file_bytes, items = job
    cache = None
    if cache_dir is not None:
        cache = _worker_caches.get(cache_dir) or _worker_caches.setdefault(cache_dir, ParseCache(cache_dir))
    outcomes: list[tuple] = []
    for path, module in items:
        # the walk's stat is older than this read: the file may have grown or become a FIFO since
        try:
            data = read_source(os.path.join(root, os_path(path)), max_file_bytes)
        except NotReadable as refused:
            outcomes.append((path, None, refused.reason))
            continue
        digest = hashlib.sha1(data).hexdigest()
        key = content_key(module, digest)
        cached = cache.get_parse(key) if cache is not None else None
        if cached is not None:
            outcomes.append((path, digest, key, *cached, False))
            continue
        try:
            _, blob, names, words = parse_row(module, path, data)
        except Exception as error:  # a grammar crash on one file must not stop the whole index
            outcomes.append((path, None, f"parse failed: {type(error).__name__}: {error}"))
            continue
        outcomes.append((path, digest, key, blob, names, words, True))
    return outcomes


def parse_row(module: str, path: str, data: bytes) -> tuple[FileParse, bytes, str, bytes]:
    """Parse ``data`` (the file ``path``): the parse, and the values a parse cache row stores for it
    (the encoded parse, its "\n"-joined entity names, its encoded words)."""
    parse = parse_source(module, path, data)
    names = "\n".join(entity.name for entity in parse.entities)
    return parse, encode_parse(parse), names, encode_words(words_by_owner(data, parse.entities))


def _parse_only_chunk(job: Job) -> list[tuple]:
    root, _, max_file_bytes, items = job
    for path, module in items:
        try:
            parse_tree(module, path, read_source(os.path.join(root, os_path(path)), max_file_bytes))
        except NotReadable:
            continue  # not parsed by a build either
    return [(path,) for path, _ in items]
