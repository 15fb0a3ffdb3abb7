"""The gold of a mined commit: its parent's tree read out of git (no checkout) for ``gold.py``'s rules, and
each file version's definitions parsed once (in memory, then the index's parse cache, then tree-sitter).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from reposearcher_plugin.index import Entity, ParseCache
from reposearcher_plugin.index.build import parse_row
from reposearcher_plugin.index.languages import module_for
from reposearcher_plugin.index.model import decode_parse
from reposearcher_plugin.index.repo_index import content_key
from reposearcher_plugin.workspace.history import BlobReader


class ParseMemo:
    """Definitions of file versions by content: the last few in memory (the version a commit writes is
    the base of the next commit that edits the file), then the index's parse cache, then tree-sitter.
    New parses go to the cache in batches, so later index builds of these commits reuse them."""

    def __init__(self, cache: ParseCache | None, keep: int = 1024, batch: int = 256) -> None:
        self.cache = cache
        self.keep = keep
        self.batch = batch
        self._recent: OrderedDict[str, tuple[Entity, ...]] = OrderedDict()
        self._pending: list[tuple[str, bytes, str, bytes]] = []
        self.parsed = self.from_cache = self.from_memory = 0

    def definitions(self, path: str, data: bytes) -> tuple[Entity, ...]:
        module = module_for(path)
        if module is None:
            return ()
        key = content_key(module, hashlib.sha1(data).hexdigest())
        entities = self._recent.get(key)
        if entities is not None:
            self._recent.move_to_end(key)
            self.from_memory += 1
            return entities
        cached = self.cache.get_parse(key) if self.cache is not None else None
        if cached is not None:
            entities = decode_parse(cached[0]).entities
            self.from_cache += 1
        else:
            parse, blob, names, words = parse_row(module, path, data)
            entities = parse.entities
            self.parsed += 1
            if self.cache is not None:
                self._pending.append((key, blob, names, words))
                if len(self._pending) >= self.batch:
                    self.flush()
        self._recent[key] = entities
        if len(self._recent) > self.keep:
            self._recent.popitem(last=False)
        return entities

    def flush(self) -> None:
        if self.cache is not None and self._pending:
            self.cache.put_parses(self._pending)
        self._pending = []


class CommitTree:
    """A ``gold.BaseTree`` of one commit, read out of git: no checkout."""

    def __init__(self, blobs: BlobReader, commit: str, parses: ParseMemo) -> None:
        self.blobs = blobs
        self.commit = commit
        self.parses = parses
        self.where = f"commit {commit[:12]}"

    def read(self, path: str) -> bytes | None:
        return self.blobs.read(self.commit, path)

    def definitions(self, path: str, data: bytes) -> tuple[Entity, ...]:
        return self.parses.definitions(path, data)
