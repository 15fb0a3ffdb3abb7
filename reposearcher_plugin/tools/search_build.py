"""A snapshot's search build (its BM25 matrix and its documents by position), cached and kept per index.

What it costs is paid once per snapshot, not per process: the index's cache (index/cache.py) keeps each
file's tokenized documents as counts, keyed by the file's content (another commit tokenizes only the
files that changed), and each snapshot's BM25 matrix, keyed by a hash of its files' paths and contents.
In a process the build is kept with the index (every tool set and localizer over it shares it).
Measured on Django 4.2.16 (38,527 definitions; eval/results/bench_rank.md): a warm load about 0.06 s,
a first build about 6.5 s (tokenizing 3.3 s), another commit with 1 % of the files changed about 1.3 s.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple, overload

import numpy as np

from reposearcher_plugin.index import Entity, IndexedFile, ParseCache, RepoIndex
from reposearcher_plugin.index.names import os_path
from reposearcher_plugin.index.reading import NotReadable, read_source
from reposearcher_plugin.tools.bm25 import (
    BM25_B,
    BM25_K1,
    DOC_COUNT,
    MATRIX_FORMAT,
    TermMatrix,
    Vocabulary,
    bm25_matrix,
)
from reposearcher_plugin.tools.tokens import (
    TOKENIZER_VERSION,
    FileTokens,
    decode_file_tokens,
    encode_file_tokens,
    path_tokens,
    tokenize_file,
)


class Documents(Sequence[tuple[str, Entity]]):
    """(path, entity) of every document in index order: file by file, each file's entities in order.

    Built from each file's number of documents alone, so that a warm process decodes only the parses of
    the files whose documents it looks at."""

    def __init__(self, files: Mapping[str, IndexedFile], doc_counts: Sequence[int]) -> None:
        self.files = files  # the index's files (not the index: a registry keyed by it holds this)
        self.paths: list[str] = []  # files with documents, in index order
        self.starts: list[int] = []  # the first document of each
        total = 0
        for path, count in zip(files, doc_counts, strict=True):
            if count:
                self.paths.append(path)
                self.starts.append(total)
                total += count
        self._total = total
        ends = [*self.starts[1:], total]
        self._span = dict(zip(self.paths, zip(self.starts, ends, strict=True), strict=True))
        # (path, entity) of each document once its file was first looked at: the ranking asks for the same
        # documents tens of thousands of times, and a list slot costs a fraction of a bisection and a
        # parse lookup. Filled a file at a time; concurrent fills write the same values.
        self._items: list[tuple[str, Entity] | None] = [None] * total

    def __len__(self) -> int:
        return self._total

    @overload
    def __getitem__(self, doc: int) -> tuple[str, Entity]: ...

    @overload
    def __getitem__(self, doc: slice) -> list[tuple[str, Entity]]: ...

    def __getitem__(self, doc: int | slice) -> tuple[str, Entity] | list[tuple[str, Entity]]:
        if isinstance(doc, slice):
            return [self[position] for position in range(*doc.indices(self._total))]
        try:
            item = self._items[doc]
        except IndexError:
            raise IndexError(f"document {doc} of {self._total}") from None
        if item is None:
            item = self._fill(int(doc) % self._total)
        return item

    def _fill(self, doc: int) -> tuple[str, Entity]:
        """Decode the file of ``doc`` and keep the (path, entity) of each of its documents."""
        path = self.path_of(doc)
        start, end = self._span[path]
        entities = self.files[path].parse.entities
        for position, entity in zip(range(start, end), entities, strict=False):
            self._items[position] = (path, entity)
        item = self._items[doc]
        if item is None:  # the parse has fewer definitions than the documents counted
            raise IndexError(f"document {doc}: {path} has {len(entities)} definitions")
        return item

    def __iter__(self) -> Iterator[tuple[str, Entity]]:
        for path in self.paths:
            for entity in self.files[path].parse.entities:
                yield path, entity

    def span(self, path: str) -> range:
        """The documents of ``path`` (empty for a file without definitions)."""
        start, end = self._span.get(path, (0, 0))
        return range(start, end)

    def path_of(self, doc: int) -> str:
        return self.paths[bisect.bisect_right(self.starts, doc) - 1]


class Built(NamedTuple):
    matrix: TermMatrix
    documents: Documents


# One build per index for the life of the process, whichever tool set or localizer asks first; nothing in
# a build refers to its index, so the entry goes when the index does.
_built: weakref.WeakKeyDictionary[RepoIndex, Built] = weakref.WeakKeyDictionary()
_building: weakref.WeakKeyDictionary[RepoIndex, threading.Lock] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def built_search(index: RepoIndex, lines: Callable[[str], list[str]]) -> Built:
    """The build of ``index``, made on the first call for it and then kept with the index for the life of
    the process. It reads what the index's cache knows: the snapshot's matrix whole when this tree was
    built before, else each unchanged file's tokens, tokenizing only files whose content is new.
    ``lines(path)`` returns a file's lines (``RepoTools.lines``); it is used only for a file whose bytes on
    disk no longer match the index (what is tokenized then is not cached). Thread-safe: concurrent first
    calls build it once."""
    with _registry_lock:
        lock = _building.setdefault(index, threading.Lock())
    with lock:
        built = _built.get(index)
        if built is None:
            built = _built[index] = _SnapshotBuild(index, lines).load_or_make()
    return built


def snapshot_key(index: RepoIndex) -> str:
    """What a snapshot's matrix is stored under: the tokenizer, the BM25 parameters and every file's path
    and content key, in index order (another tree with the same files in the same places shares it)."""
    digest = hashlib.sha1()
    for path, indexed in index.files.items():
        digest.update(f"{path}\0{indexed.content_key}\n".encode("utf-8", "surrogateescape"))
    return f"bm25:{MATRIX_FORMAT}:{TOKENIZER_VERSION}:{BM25_K1}:{BM25_B}:{digest.hexdigest()}"


class _SnapshotBuild:
    """One build of ``index``'s matrix: from the cache's stored matrix, else from each file's tokens."""

    def __init__(self, index: RepoIndex, lines: Callable[[str], list[str]]) -> None:
        self.index = index
        self._read_lines = lines

    def load_or_make(self) -> Built:
        cache = self.index.cache if self.index.cache is not None and self.index.cache.usable else None
        key = snapshot_key(self.index) if cache is not None else ""
        if cache is not None:
            data = cache.get_artifact(key)
            matrix = TermMatrix.decode(data, len(self.index.files)) if data is not None else None
            if matrix is not None:
                return Built(matrix, Documents(self.index.files, matrix.doc_counts.tolist()))
        matrix, trusted = self._make(cache)
        if cache is not None and trusted:
            cache.put_artifact(key, matrix.encode())
        return Built(matrix, Documents(self.index.files, matrix.doc_counts.tolist()))

    def _make(self, cache: ParseCache | None) -> tuple[TermMatrix, bool]:
        """The matrix from each file's tokens (cached, else tokenized and cached); also whether every
        file's tokens came from the content the index describes (only then is the matrix stored)."""
        files = self.index.files
        entities_of = {path: self._entity_count(indexed) for path, indexed in files.items()}
        keys = {
            path: f"{TOKENIZER_VERSION}:{files[path].content_key}" for path, n in entities_of.items() if n
        }
        stored = cache.get_tokens(keys.values()) if cache is not None else {}
        memo: dict[bytes, tuple[str, ...]] = {}
        fresh: list[tuple[str, bytes]] = []
        trusted = True
        per_file: list[tuple[str, FileTokens]] = []
        for path, key in keys.items():
            row = stored.get(key)
            tokens = decode_file_tokens(row, entities_of[path]) if row is not None else None
            if tokens is None:
                data, exact = self._content(path)
                tokens = tokenize_file(files[path].parse.entities, data, memo)
                if exact:
                    fresh.append((key, encode_file_tokens(tokens)))
                trusted = trusted and exact
            per_file.append((path, tokens))
        if cache is not None and fresh:
            cache.put_tokens(fresh)
        return self._assemble(per_file), trusted

    @staticmethod
    def _entity_count(indexed: IndexedFile) -> int:
        # the stored names count the entities without decoding the parse; "" is none or one unnamed one
        if indexed.names:
            return indexed.names.count("\n") + 1
        return len(indexed.parse.entities)

    def _content(self, path: str) -> tuple[bytes, bool]:
        """The bytes of ``path`` and whether they are the content the index parsed."""
        indexed = self.index.files[path]
        try:
            data = read_source(self.index.root / os_path(path), indexed.size)
        except NotReadable:
            data = None
        if data is not None and hashlib.sha1(data).hexdigest() == indexed.digest:
            return data, True
        try:  # changed or unreadable since it was indexed: what the tools show, as they show it
            lines = self._read_lines(path)
        except Exception:  # an unreadable file still has its names and docstrings to search
            lines = []
        return "\n".join(lines).encode("utf-8", "replace"), False

    def _assemble(self, per_file: list[tuple[str, FileTokens]]) -> TermMatrix:
        """One (document, token, count) triple per token of each document, mapped from each file's own
        token positions to the snapshot's vocabulary in one vectorized step, then the matrix."""
        vocabulary: dict[str, int] = {}
        local_vocabularies: list[str] = []
        docs_parts: list[np.ndarray] = []
        local_parts: list[np.ndarray] = []
        count_parts: list[np.ndarray] = []
        doc_counts = {path: 0 for path in self.index.files}
        first_doc = 0
        for path, tokens in per_file:
            documents = len(tokens.sizes)
            doc_counts[path] = documents
            path_counts = path_tokens(path)
            offset = len(local_vocabularies)
            local_vocabularies += tokens.vocabulary
            path_offset = len(local_vocabularies)
            local_vocabularies += path_counts
            numbers = np.arange(first_doc, first_doc + documents, dtype=np.int64)
            docs_parts.append(np.repeat(numbers, tokens.sizes))
            local_parts.append(tokens.ids.astype(np.int64) + offset)
            count_parts.append(tokens.counts)
            if path_counts:  # every document of the file holds its path's tokens
                docs_parts.append(np.repeat(numbers, len(path_counts)))
                local_parts.append(np.tile(np.arange(path_offset, path_offset + len(path_counts)), documents))
                count_parts.append(np.tile(np.fromiter(path_counts.values(), np.int64), documents))
            first_doc += documents
        to_column = np.fromiter(
            (vocabulary.setdefault(token, len(vocabulary)) for token in local_vocabularies),
            dtype=np.int64,
            count=len(local_vocabularies),
        )
        tokens = sorted(vocabulary)  # columns in token order (Vocabulary)
        sorted_column = np.empty(len(tokens), dtype=np.int64)
        sorted_column[np.fromiter(map(vocabulary.__getitem__, tokens), np.int64, len(tokens))] = np.arange(
            len(tokens)
        )
        empty = np.zeros(0, dtype=np.int64)
        docs = np.concatenate(docs_parts) if docs_parts else empty
        columns = sorted_column[to_column[np.concatenate(local_parts)]] if local_parts else empty
        counts = np.concatenate(count_parts) if count_parts else empty
        indptr, indices, data = bm25_matrix(len(tokens), docs, columns, counts, first_doc)
        return TermMatrix(
            Vocabulary(tokens),
            indptr,
            indices,
            data,
            first_doc,
            np.array(list(doc_counts.values()), dtype=DOC_COUNT),
        )
