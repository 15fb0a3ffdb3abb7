"""The BM25 arithmetic and the score matrix of a snapshot, with its stored form.

Scores are bm25s's default BM25 ("lucene", k1 1.5, b 0.75), computed as bm25s computes them, operation
by operation and in the same precision, so each is bit for bit the score bm25s gave; bm25s itself is not
imported (its import cost more than a warm load of the whole search index).
"""

from __future__ import annotations

import bisect
import marshal
import math
from collections.abc import Iterator, Sequence

import numpy as np

# BM25 exactly as bm25s (0.2, 0.3) computes it by default, method "lucene": idf = ln(1 + (N - df + 0.5) /
# (df + 0.5)), tf part = tf / (k1 * (1 - b + b * length / average length) + tf), float32 scores.
BM25_K1 = 1.5
BM25_B = 0.75
MATRIX_FORMAT = 2
DOC_COUNT = np.dtype("<u4")  # documents per file in a stored matrix


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
            self.doc_counts.astype(DOC_COUNT),
        )
        header = marshal.dumps(
            (MATRIX_FORMAT, self.num_docs, "\n".join(self.vocabulary.tokens), *(len(a) for a in arrays))
        )
        header += bytes(-len(header) % 8)
        return b"".join([len(header).to_bytes(8, "little"), header, *(array.tobytes() for array in arrays)])

    @classmethod
    def decode(cls, data: bytes, files: int) -> TermMatrix | None:
        """A stored matrix, or None when it is not a well-formed one over ``files`` files."""
        try:
            size = int.from_bytes(data[:8], "little")
            form, num_docs, joined, *lengths = marshal.loads(data[8 : 8 + size])
            if form != MATRIX_FORMAT or not isinstance(joined, str) or not isinstance(num_docs, int):
                return None
            arrays = []
            at = 8 + size
            for length, dtype in zip(lengths, ("<i8", "<i4", "<f4", DOC_COUNT), strict=True):
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
