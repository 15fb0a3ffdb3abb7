"""Entity documents as tokens: what ``search_code`` and the retrieval localizer search for and in.

A document is one definition: its qualified name (weighted three times: a name says more about what a
definition does than any word of its body), the path of its file without the extension, its docstring
and its code. A class contributes only its header line, since its methods are documents of their own
and would otherwise be counted twice. Tokens are identifiers, whole and split on snake_case / camelCase,
lowercased, without stopwords.

Here are the tokenizer of queries and of one file's documents and the tokens' cached form (the index's
cache keeps each file's tokenized documents as counts, keyed by the file's content, so another commit
tokenizes only the files that changed); the BM25 arithmetic over them is ``bm25.py``.
"""

from __future__ import annotations

import marshal
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np

from reposearcher_plugin.index import CLASS, Entity

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


def path_tokens(path: str) -> dict[str, int]:
    """What a file's path (without its extension) adds to each of its documents, counted."""
    return dict(Counter(query_tokens(path.rsplit(".", 1)[0])))
