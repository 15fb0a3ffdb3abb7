"""The one BM25 index over entity documents: ``search_code`` and the retrieval localizer both use it.

A document is one definition: its qualified name (weighted three times: a name says more about what a
definition does than any word of its body), the path of its file without the extension, its docstring
and its code. A class contributes only its header line, since its methods are documents of their own
and would otherwise be counted twice. Tokens are identifiers, whole and split on snake_case / camelCase,
lowercased, without stopwords.

Building it for Django (~37k definitions, 17 MB of source) takes a few seconds; most of it is splitting
identifiers, which is memoized per distinct word because a repository repeats a small vocabulary
millions of times.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence

import numpy as np

from reposearcher_plugin.index import CLASS, Entity, RepoIndex

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


class EntitySearch:
    """BM25 (bm25s) over one document per definition of ``index``, built on first use.

    ``lines(path)`` returns a file's lines (``RepoTools.lines``, so files are read once per tool set).
    Thread-safe: concurrent first calls build it once.
    """

    def __init__(self, index: RepoIndex, lines: Callable[[str], list[str]]) -> None:
        self.index = index
        self._read_lines = lines
        self._lock = threading.Lock()
        self._built: tuple[object, dict[str, int], list[tuple[str, Entity]]] | None = None

    # --- building ------------------------------------------------------------------------------------

    def _build(self) -> tuple[object, dict[str, int], list[tuple[str, Entity]]]:
        with self._lock:
            if self._built is None:
                self._built = self._make()
            return self._built

    def _make(self) -> tuple[object, dict[str, int], list[tuple[str, Entity]]]:
        import bm25s

        vocabulary: dict[str, int] = {}
        # word -> token ids without stopwords: the memo that makes building fast
        memo: dict[str, list[int]] = {}

        def ids_of(text: str) -> list[int]:
            out: list[int] = []
            for word in IDENTIFIER.findall(text):
                ids = memo.get(word)
                if ids is None:
                    ids = [
                        vocabulary.setdefault(token, len(vocabulary))
                        for token in _word_tokens(word)
                        if token not in STOPWORDS
                    ]
                    memo[word] = ids
                out.extend(ids)
            return out

        documents: list[tuple[str, Entity]] = []
        corpus: list[list[int]] = []
        for path, indexed in self.index.files.items():
            entities = indexed.parse.entities
            if not entities:
                continue
            try:
                lines = self._read_lines(path)
            except Exception:  # an unreadable file still has its names and docstrings to search
                lines = []
            path_ids = ids_of(path.rsplit(".", 1)[0])
            for entity in entities:
                if entity.kind == CLASS:
                    code = lines[entity.start - 1] if entity.start <= len(lines) else ""
                else:
                    code = "\n".join(lines[entity.start - 1 : entity.end])
                document = ids_of(entity.qualname) * NAME_REPEAT
                document += path_ids
                document += ids_of(entity.doc)
                document += ids_of(code)
                corpus.append(document)
                documents.append((path, entity))
        retriever = bm25s.BM25()
        if corpus:
            retriever.index(bm25s.tokenization.Tokenized(ids=corpus, vocab=vocabulary), show_progress=False)
        return retriever, vocabulary, documents

    # --- queries --------------------------------------------------------------------------------------

    @property
    def documents(self) -> list[tuple[str, Entity]]:
        """(path, entity) of every document, in index order; document i is ``documents[i]``."""
        return self._build()[2]

    def known(self, tokens: Sequence[str]) -> list[str]:
        """The distinct tokens of ``tokens`` that some document holds, in first-seen order."""
        vocabulary = self._build()[1]
        return [token for token in dict.fromkeys(tokens) if token in vocabulary]

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for the query ``tokens`` (repeats count once): zeros when no
        token is known."""
        retriever, vocabulary, documents = self._build()
        known = self.known(tokens)
        if not known:
            return np.zeros(len(documents), dtype=np.float32)
        return retriever.get_scores([vocabulary[token] for token in known])  # type: ignore[attr-defined]

    def top(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (document, score) pairs for ``tokens``, best first, zero scores included."""
        retriever, vocabulary, documents = self._build()
        known = self.known(tokens)
        if not known or not documents:
            return []
        import bm25s

        results, scores = retriever.retrieve(  # type: ignore[attr-defined]
            bm25s.tokenization.Tokenized(ids=[[vocabulary[token] for token in known]], vocab=vocabulary),
            k=min(k, len(documents)),
            show_progress=False,
        )
        return [(int(doc), float(score)) for doc, score in zip(results[0], scores[0], strict=True)]
