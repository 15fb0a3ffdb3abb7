"""The one BM25 index over entity documents: ``search_code`` and the retrieval localizer both use it.

A document is one definition: its qualified name (weighted three times: a name says more about what a
definition does than any word of its body), the path of its file without the extension, its docstring
and its code. A class contributes only its header line, since its methods are documents of their own
and would otherwise be counted twice. Tokens are identifiers, whole and split on snake_case / camelCase,
lowercased, without stopwords.

Scores are bm25s's default BM25 ("lucene", k1 1.5, b 0.75), computed as bm25s computes them, operation
by operation and in the same precision, so each is bit for bit the score bm25s gave; bm25s itself is not
imported (its import cost more than a warm load of the whole search index).

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
import marshal
import math
import re
import threading
import weakref
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from typing import NamedTuple, overload

import numpy as np

from reposearcher_plugin.index import CLASS, Entity, IndexedFile, ParseCache, RepoIndex
from reposearcher_plugin.index.names import os_path
from reposearcher_plugin.index.reading import NotReadable, read_source

# Words that carry no signal in an issue or a docstring; left out of queries and documents.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "not",
        "of",
        "on",
        "or",
        "so",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "were",
        "when",
        "which",
        "while",
        "will",
        "with",
        "you",
        "your",
        "we",
        "our",
    ]
)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# The weight of a definition's name against its body, by repetition (see the module docstring).
NAME_REPEAT = 3


def split_identifier(word: str) -> list[str]:
    """``get_queryset`` -> [get, queryset]; ``HTTPResponseRedirect`` -> [http, response, redirect]."""
    return [piece.lower() for part in word.split("_") for piece in _CAMEL.findall(part)]


def _word_tokens(word: str) -> list[str]:
    pieces = split_identifier(word)
    if len(pieces) > 1:
        pieces.append(word.lower())
    return pieces


def code_tokens(text: str) -> list[str]:
    """Identifiers of ``text``, whole and split into their snake_case / camelCase words, lowercased."""
    tokens: list[str] = []
    for word in IDENTIFIER.findall(text):
        tokens.extend(_word_tokens(word))
    return tokens


def query_tokens(text: str) -> list[str]:
    """The tokens of ``text`` that a search uses: code tokens without stopwords, in order, repeats kept."""
    return [token for token in code_tokens(text) if token not in STOPWORDS]


# What the tokens of a document are made by: bump it whenever the tokenizer, the stopwords, NAME_REPEAT or
# the choice of a document's text changes, so cached tokens of other code are never reused.
TOKENIZER_VERSION = "1"
# BM25 exactly as bm25s (0.2, 0.3) computes it by default, method "lucene": idf = ln(1 + (N - df + 0.5) /
# (df + 0.5)), tf part = tf / (k1 * (1 - b + b * length / average length) + tf), float32 scores.
BM25_K1 = 1.5
BM25_B = 0.75
_MATRIX_FORMAT = 2
_COUNT = np.dtype("<u4")  # token ids and counts in a cached row


# --- tokenized documents, one file at a time --------------------------------------------------------------


class FileTokens(NamedTuple):
    """The tokenized documents of one file's entities, as counts, without the file's path (the path is not
    part of the content a row is keyed by; its tokens are added when the matrix is built).

    ``vocabulary`` holds the file's distinct tokens; entity i's document is the next ``sizes[i]`` entries
    of ``ids`` (positions in ``vocabulary``) and ``counts``."""

    vocabulary: tuple[str, ...]
    sizes: np.ndarray
    ids: np.ndarray
    counts: np.ndarray

    def documents(self) -> list[dict[str, int]]:
        """Entity by entity, token -> count (for tests and inspection; the build reads the arrays)."""
        out: list[dict[str, int]] = []
        at = 0
        for size in self.sizes.tolist():
            ids, counts = self.ids[at : at + size].tolist(), self.counts[at : at + size].tolist()
            out.append({self.vocabulary[i]: count for i, count in zip(ids, counts, strict=True)})
            at += size
        return out


def encode_file_tokens(tokens: FileTokens) -> bytes:
    """For the cache's ``tokens`` table: marshal and zlib level 1 (a third of the bytes, in microseconds)."""
    return zlib.compress(
        marshal.dumps(
            (
                tokens.vocabulary,
                tokens.sizes.astype(_COUNT).tobytes(),
                tokens.ids.astype(_COUNT).tobytes(),
                tokens.counts.astype(_COUNT).tobytes(),
            )
        ),
        1,
    )


def decode_file_tokens(data: bytes, entities: int) -> FileTokens | None:
    """A cached row back, or None when it is not one of ``entities`` documents (then it is rebuilt)."""
    try:
        vocabulary, sizes, ids, counts = marshal.loads(zlib.decompress(data))
        tokens = FileTokens(
            vocabulary,
            np.frombuffer(sizes, dtype=_COUNT),
            np.frombuffer(ids, dtype=_COUNT),
            np.frombuffer(counts, dtype=_COUNT),
        )
    except Exception:  # the CRC passed, but the row is not what this code writes
        return None
    if not isinstance(vocabulary, tuple) or len(tokens.sizes) != entities:
        return None
    if int(tokens.sizes.sum()) != len(tokens.ids) or len(tokens.ids) != len(tokens.counts):
        return None
    if len(tokens.ids) and int(tokens.ids.max()) >= len(vocabulary):
        return None
    return tokens


# Every byte that cannot be in a word becomes a space, and a line end a word of its own, "~" (never a word):
# then one split() in C finds every word of a file with the line it is on.
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPACED = bytes(byte if byte in _WORD_BYTES else 0x7E if byte == 0x0A else 0x20 for byte in range(256))
_LINE_END = b"~"
_DIGITS = b"0123456789"


def _run_tokens(run: bytes) -> tuple[str, ...]:
    """The tokens of one run of word bytes: of the word ``IDENTIFIER`` finds in it (the run less its
    leading digits), without stopwords."""
    word = run.lstrip(_DIGITS).decode("ascii")
    return tuple(token for token in _word_tokens(word) if token not in STOPWORDS) if word else ()


def _words_by_line(
    lines: np.ndarray, words: np.ndarray, first: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(owner, word) of every word on lines ``first[i]..last[i]`` for each owner i (``lines``: the line
    of each word, ascending)."""
    low = np.searchsorted(lines, first, "left")
    sizes = np.maximum(np.searchsorted(lines, last, "right") - low, 0)
    total = int(sizes.sum())
    at = np.repeat(low - (np.cumsum(sizes) - sizes), sizes) + np.arange(total, dtype=np.int64)
    return np.repeat(np.arange(len(first), dtype=np.int64), sizes), words[at]


def tokenize_file(entities: Sequence[Entity], data: bytes, memo: dict[bytes, tuple[str, ...]]) -> FileTokens:
    """The documents of a file's ``entities`` (module docstring) from the file's bytes: each one's name
    tokens ``NAME_REPEAT`` times, its docstring's and its code's (a class: its first line), counted.

    The words are those ``IDENTIFIER`` finds in each text: in a maximal run of ASCII letters, digits and
    "_" it matches the run less its leading digits, and decoding (with replacement) never makes or eats
    an ASCII byte, so the runs of the bytes give the words of the decoded lines. The file and, after it,
    one line per name and per docstring are split into runs once, the runs numbered and looked up in C
    (``map`` of a dict method: no Python code per word), and a definition's words are the slice of its
    lines; expanding words into tokens and counting (definition, token) pairs is vectorized. ``memo`` maps
    a run to its tokens, shared across files: a repository repeats a small vocabulary millions of times."""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    code_lines = data.count(b"\n")
    texts = "\n".join(f"{entity.qualname}\n{entity.doc.replace(chr(10), ' ')}" for entity in entities)
    runs = (data + texts.encode("utf-8", "replace")).translate(_SPACED).replace(_LINE_END, b" ~ ").split()
    distinct = list(dict.fromkeys(runs))
    numbers = dict(zip(distinct, range(len(distinct)), strict=True))
    found = np.fromiter(map(numbers.__getitem__, runs), dtype=np.int64, count=len(runs))
    ends = found == numbers.get(_LINE_END, -1)
    lines = np.cumsum(ends)[~ends]  # the 0-based line of each word, ascending
    words = found[~ends]
    starts = np.array([entity.start - 1 for entity in entities], dtype=np.int64)
    lasts = np.array([entity.start - 1 if entity.kind == CLASS else entity.end - 1 for entity in entities])
    names = code_lines + 2 * np.arange(len(entities), dtype=np.int64)
    code_owner, code_word = _words_by_line(lines, words, starts, np.minimum(lasts, code_lines - 1))
    name_owner, name_word = _words_by_line(lines, words, names, names)
    doc_owner, doc_word = _words_by_line(lines, words, names + 1, names + 1)
    owners = np.concatenate([code_owner, name_owner, doc_owner])
    pair_words = np.concatenate([code_word, name_word, doc_word])
    weights = np.ones(len(pair_words), dtype=np.int64)
    weights[len(code_word) : len(code_word) + len(name_word)] = NAME_REPEAT
    # the tokens of each word some document holds (not of the module-level words around them), and the
    # file's tokens numbered
    used = np.flatnonzero(np.bincount(pair_words, minlength=len(distinct))).tolist()
    runs_used = list(map(distinct.__getitem__, used))
    token_lists = list(map(memo.get, runs_used))
    for at, tokens in enumerate(token_lists):
        if tokens is None:
            token_lists[at] = memo[runs_used[at]] = _run_tokens(runs_used[at])
    flat = list(chain.from_iterable(token_lists))
    local = dict.fromkeys(flat)
    if not local:  # no definition holds a token
        none = np.zeros(0, dtype=_COUNT)
        return FileTokens((), np.zeros(len(entities), dtype=_COUNT), none, none)
    local = dict(zip(local, range(len(local)), strict=True))
    token_of = np.fromiter(map(local.__getitem__, flat), dtype=np.int64, count=len(flat))
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    per_word = np.zeros(len(distinct), dtype=np.int64)
    per_word[used] = lengths
    first_token = np.zeros(len(distinct), dtype=np.int64)
    first_token[used] = np.cumsum(lengths) - lengths
    repeats = per_word[pair_words]  # one (definition, token) pair per token of each word
    within = np.arange(int(repeats.sum()), dtype=np.int64) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    tokens = token_of[np.repeat(first_token[pair_words], repeats) + within]
    keys = np.repeat(owners, repeats) * len(local) + tokens
    weights = np.repeat(weights, repeats)
    if len(entities) * len(local) <= max(1 << 16, 8 * len(keys)):  # dense counting: no sort
        summed = np.bincount(keys, weights=weights, minlength=len(entities) * len(local))
        keys = np.flatnonzero(summed)
        counts = summed[keys].astype(_COUNT)  # exact: small integers
    else:
        keys, which = np.unique(keys, return_inverse=True)
        counts = np.bincount(which, weights=weights).astype(_COUNT)
    document, token = np.divmod(keys, len(local))
    return FileTokens(
        tuple(local),
        np.bincount(document, minlength=len(entities)).astype(_COUNT),
        token.astype(_COUNT),
        counts,
    )


def _path_tokens(path: str) -> dict[str, int]:
    """What a file's path (without its extension) adds to each of its documents, counted."""
    return dict(Counter(query_tokens(path.rsplit(".", 1)[0])))


# --- the BM25 matrix of a snapshot -------------------------------------------------------------------------


class Vocabulary:
    """The tokens of a snapshot in sorted order; token i is column i of its matrix. Looked up by bisection,
    so a warm load builds no dictionary of tens of thousands of strings (hashing them all would cost more
    than every lookup a localization makes)."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens

    def column(self, token: str) -> int | None:
        at = bisect.bisect_left(self.tokens, token)
        return at if at < len(self.tokens) and self.tokens[at] == token else None

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self.column(token) is not None

    def __getitem__(self, token: str) -> int:
        column = self.column(token)
        if column is None:
            raise KeyError(token)
        return column

    def __len__(self) -> int:
        return len(self.tokens)

    def __iter__(self) -> Iterator[str]:
        return iter(self.tokens)


class TermMatrix:
    """Precomputed BM25 scores of every (token, document) pair of a snapshot, column by token (CSC, the
    layout bm25s keeps): the documents holding token t are ``indices[indptr[t]:indptr[t + 1]]``, in
    document order, their scores ``data[...]``. ``doc_counts`` holds the number of documents of each file
    of the index, in index order (0 for a file without definitions)."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        num_docs: int,
        doc_counts: np.ndarray,
    ) -> None:
        self.vocabulary = vocabulary
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.num_docs = num_docs
        self.doc_counts = doc_counts

    def scores(self, token_ids: Sequence[int]) -> np.ndarray:
        """The BM25 score of every document for distinct ``token_ids``: each token's column added in turn,
        in float32, as bm25s adds them (so the sums round the same way)."""
        scores = np.zeros(self.num_docs, dtype=np.float32)
        for token in token_ids:
            start, end = int(self.indptr[token]), int(self.indptr[token + 1])
            np.add.at(scores, self.indices[start:end], self.data[start:end])
        return scores

    # --- on disk: one artifact row per snapshot ---------------------------------------------------------
    # A small marshalled header (format, documents, the tokens "\n"-joined, array lengths) padded to 8
    # bytes, then the arrays' raw little-endian bytes, which a load maps without copying them.

    def encode(self) -> bytes:
        arrays = (  # the 8-byte one first: each array starts aligned
            self.indptr.astype("<i8"),
            self.indices.astype("<i4"),
            self.data.astype("<f4"),
            self.doc_counts.astype(_COUNT),
        )
        header = marshal.dumps(
            (_MATRIX_FORMAT, self.num_docs, "\n".join(self.vocabulary.tokens), *(len(a) for a in arrays))
        )
        header += bytes(-len(header) % 8)
        return b"".join([len(header).to_bytes(8, "little"), header, *(array.tobytes() for array in arrays)])

    @classmethod
    def decode(cls, data: bytes, files: int) -> TermMatrix | None:
        """A stored matrix, or None when it is not a well-formed one over ``files`` files."""
        try:
            size = int.from_bytes(data[:8], "little")
            form, num_docs, joined, *lengths = marshal.loads(data[8 : 8 + size])
            if form != _MATRIX_FORMAT or not isinstance(joined, str) or not isinstance(num_docs, int):
                return None
            arrays = []
            at = 8 + size
            for length, dtype in zip(lengths, ("<i8", "<i4", "<f4", _COUNT), strict=True):
                arrays.append(np.frombuffer(data, dtype=dtype, count=length, offset=at))
                at += arrays[-1].nbytes
            if at != len(data):
                return None
            indptr, indices, scores, doc_counts = arrays
            tokens = joined.split("\n") if joined else []
        except Exception:  # the CRC passed, but this is not what this code writes
            return None
        pairs = len(indices)
        well_formed = (
            len(indptr) == len(tokens) + 1
            and len(doc_counts) == files
            and int(doc_counts.sum()) == num_docs
            and len(scores) == pairs
            and int(indptr[0]) == 0
            and int(indptr[-1]) == pairs
            and bool(np.all(np.diff(indptr) >= 0))
            and (pairs == 0 or 0 <= int(indices.min()) <= int(indices.max()) < num_docs)
        )
        if not well_formed:
            return None
        return cls(Vocabulary(tokens), indptr, indices, scores, num_docs, doc_counts)


def bm25_matrix(
    columns: int, docs: np.ndarray, tokens: np.ndarray, counts: np.ndarray, num_docs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of the BM25 score matrix from (document, token id, count) triples, where a
    (document, token) pair may come several times (its counts add up). Vectorized; the arithmetic is
    bm25s's, operation by operation and in the same precision (float64 terms, float32 scores), so every
    score is the one bm25s gives. ``columns``: how many tokens there are (every one in some document)."""
    if len(docs) == 0:
        return np.zeros(columns + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    keys = tokens.astype(np.int64) * num_docs + docs.astype(np.int64)
    order = np.argsort(keys)
    keys = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    tf = np.add.reduceat(counts.astype(np.int64)[order], starts)
    keys = keys[starts]
    column, row = np.divmod(keys, num_docs)  # sorted by token, then by document: CSC order
    indptr = np.zeros(columns + 1, dtype=np.int64)
    np.cumsum(np.bincount(column, minlength=columns), out=indptr[1:])
    lengths = np.bincount(row, weights=tf, minlength=num_docs).astype(np.int64)  # exact: integers
    average = lengths.mean()  # bm25s: np.array([len(document) for ...]).mean(), the same reduction
    # idf per document frequency, with Python's float arithmetic and math.log as bm25s computes it
    frequencies, which = np.unique(np.diff(indptr), return_inverse=True)
    idf_of = [math.log(1 + (num_docs - df + 0.5) / (df + 0.5)) for df in frequencies.tolist()]
    idf = np.array(idf_of, dtype=np.float64).astype(np.float32)[which]
    # bm25s, per document d: tf / (k1 * ((1 - b) + b * len(d) / average) + tf) with a float64 scalar
    # denominator term and float32 tf, then idf (float32) times that, stored as float32
    norm = BM25_K1 * ((1 - BM25_B) + BM25_B * lengths / average)
    tf64 = tf.astype(np.float32).astype(np.float64)
    part = tf64 / (norm[row] + tf64)
    data = (idf[column].astype(np.float64) * part).astype(np.float32)
    return indptr, row.astype(np.int32), data


# --- documents: (path, entity) by position, parses decoded only where looked at ---------------------------


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

    def __len__(self) -> int:
        return self._total

    @overload
    def __getitem__(self, doc: int) -> tuple[str, Entity]: ...

    @overload
    def __getitem__(self, doc: slice) -> list[tuple[str, Entity]]: ...

    def __getitem__(self, doc: int | slice) -> tuple[str, Entity] | list[tuple[str, Entity]]:
        if isinstance(doc, slice):
            return [self[position] for position in range(*doc.indices(self._total))]
        doc = int(doc)
        if doc < 0:
            doc += self._total
        if not 0 <= doc < self._total:
            raise IndexError(f"document {doc} of {self._total}")
        file = bisect.bisect_right(self.starts, doc) - 1
        path = self.paths[file]
        return path, self.files[path].parse.entities[doc - self.starts[file]]

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


# --- the search index ------------------------------------------------------------------------------------


class _Built(NamedTuple):
    matrix: TermMatrix
    documents: Documents


# One build per index for the life of the process, whichever tool set or localizer asks first; nothing in
# a build refers to its index, so the entry goes when the index does.
_built: weakref.WeakKeyDictionary[RepoIndex, _Built] = weakref.WeakKeyDictionary()
_building: weakref.WeakKeyDictionary[RepoIndex, threading.Lock] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def snapshot_key(index: RepoIndex) -> str:
    """What a snapshot's matrix is stored under: the tokenizer, the BM25 parameters and every file's path
    and content key, in index order (another tree with the same files in the same places shares it)."""
    digest = hashlib.sha1()
    for path, indexed in index.files.items():
        digest.update(f"{path}\0{indexed.content_key}\n".encode("utf-8", "surrogateescape"))
    return f"bm25:{_MATRIX_FORMAT}:{TOKENIZER_VERSION}:{BM25_K1}:{BM25_B}:{digest.hexdigest()}"


class EntitySearch:
    """BM25 over one document per definition of ``index``, built on first use and then kept with the
    index for the life of the process (every tool set and localizer over it shares one build).

    The build reads what the index's cache knows: the snapshot's matrix whole when this tree was built
    before, else each unchanged file's tokens, tokenizing only files whose content is new. ``lines(path)``
    returns a file's lines (``RepoTools.lines``); it is used only for a file whose bytes on disk no longer
    match the index (what is tokenized then is not cached). Thread-safe: concurrent first calls build it
    once."""

    def __init__(self, index: RepoIndex, lines: Callable[[str], list[str]]) -> None:
        self.index = index
        self._read_lines = lines
        self._local: _Built | None = None

    # --- building ------------------------------------------------------------------------------------

    def _build(self) -> _Built:
        if self._local is not None:
            return self._local
        with _registry_lock:
            lock = _building.setdefault(self.index, threading.Lock())
        with lock:
            built = _built.get(self.index)
            if built is None:
                built = _built[self.index] = self._load_or_make()
        self._local = built
        return built

    def _load_or_make(self) -> _Built:
        cache = self.index.cache if self.index.cache is not None and self.index.cache.usable else None
        key = snapshot_key(self.index) if cache is not None else ""
        if cache is not None:
            data = cache.get_artifact(key)
            matrix = TermMatrix.decode(data, len(self.index.files)) if data is not None else None
            if matrix is not None:
                return _Built(matrix, Documents(self.index.files, matrix.doc_counts.tolist()))
        matrix, trusted = self._make(cache)
        if cache is not None and trusted:
            cache.put_artifact(key, matrix.encode())
        return _Built(matrix, Documents(self.index.files, matrix.doc_counts.tolist()))

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
            path_tokens = _path_tokens(path)
            offset = len(local_vocabularies)
            local_vocabularies += tokens.vocabulary
            path_offset = len(local_vocabularies)
            local_vocabularies += path_tokens
            numbers = np.arange(first_doc, first_doc + documents, dtype=np.int64)
            docs_parts.append(np.repeat(numbers, tokens.sizes))
            local_parts.append(tokens.ids.astype(np.int64) + offset)
            count_parts.append(tokens.counts)
            if path_tokens:  # every document of the file holds its path's tokens
                docs_parts.append(np.repeat(numbers, len(path_tokens)))
                local_parts.append(np.tile(np.arange(path_offset, path_offset + len(path_tokens)), documents))
                count_parts.append(np.tile(np.fromiter(path_tokens.values(), np.int64), documents))
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
            np.array(list(doc_counts.values()), dtype=_COUNT),
        )

    # --- queries --------------------------------------------------------------------------------------

    @property
    def documents(self) -> Documents:
        """(path, entity) of every document, in index order; document i is ``documents[i]``."""
        return self._build().documents

    def known(self, tokens: Sequence[str]) -> list[str]:
        """The distinct tokens of ``tokens`` that some document holds, in first-seen order."""
        vocabulary = self._build().matrix.vocabulary
        return [token for token in dict.fromkeys(tokens) if token in vocabulary]

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for the query ``tokens`` (repeats count once): zeros when no
        token is known."""
        matrix = self._build().matrix
        return matrix.scores([matrix.vocabulary[token] for token in self.known(tokens)])

    def top(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (document, score) pairs for ``tokens``, best first, zero scores included."""
        matrix = self._build().matrix
        known = self.known(tokens)
        if not known or not matrix.num_docs:
            return []
        scores = matrix.scores([matrix.vocabulary[token] for token in known])
        k = min(k, matrix.num_docs)
        # bm25s's selection, so that ties come out in the order they always did
        best = np.argpartition(scores, -k)[-k:]
        best_scores = scores[best]
        order = np.flip(np.argsort(best_scores))
        return [(int(doc), float(score)) for doc, score in zip(best[order], best_scores[order], strict=True)]
