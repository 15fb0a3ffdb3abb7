"""The search index's BM25 over entity documents: the same scores bm25s gave, built from tokens cached by
file content and a matrix cached by snapshot content (tools/tokens.py, bm25.py, search_build.py,
search_index.py)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reposearcher_plugin.index import CLASS, ParseCache, RepoIndex, build_index
from reposearcher_plugin.index.cache_format import checksum
from reposearcher_plugin.rank import RetrievalLocalizer
from reposearcher_plugin.tools import search_build
from reposearcher_plugin.tools.bm25 import bm25_matrix
from reposearcher_plugin.tools.repo_tools import RepoTools
from reposearcher_plugin.tools.search_build import snapshot_key
from reposearcher_plugin.tools.search_index import EntitySearch
from reposearcher_plugin.tools.tokens import (
    NAME_REPEAT,
    TOKENIZER_VERSION,
    decode_file_tokens,
    encode_file_tokens,
    query_tokens,
    tokenize_file,
)
from tests.conftest import write_tree

CACHE_LOGGER = "reposearcher.index.cache"

TREE = {
    "shop/models/orders.py": '''
        """Orders and their lines."""


        class OrderQuerySet:
            """A query set of orders: filter, union, ordering."""

            def union(self, *others, all=False):
                """Combine this query set with others; keeps the ordering of the first."""
                combined = self._chain()
                combined.query.combine(others, all)
                return combined

            def order_by(self, *field_names):
                obj = self._chain()
                obj.query.add_ordering(*field_names)
                return obj

            @property
            def ordered(self):
                return bool(self.query.order_by)


        def _():
            pass


        def total_price(order):
            def line_price(line):
                return line.unit_price * line.quantity

            return sum(line_price(line) for line in order.lines)
        ''',
    "shop/views.py": """
        from shop.models.orders import OrderQuerySet


        class HTTPOrderView:
            def get_queryset(self):
                return OrderQuerySet().order_by("created")

            def render_to_response(self, context):
                return {"orders": context, "count2nd": 2}
        """,
    "shop/utils/text.py": '''
        def slugify(value, allow_unicode=False):
            """Convert to a slug: lowercase, spaces to hyphens, the rest of it dropped."""
            return value.lower().replace(" ", "-")


        def orders_to_text(orders):
            return ", ".join(str(order) for order in orders)
        ''',
    "shop/__init__.py": "",
    "docs/conf.py": "project = 'shop'\n",
    # what the words of bytes and of decoded lines must agree on: CRLF, a form feed, non-ASCII letters, a
    # byte that is not UTF-8, runs led by digits (0x1f, 2nd), "~", no final line end
    "shop/odd.py": (
        b"class Caf\xc3\xa9Menu:  # caf\xc3\xa9 \xff broken~tilde\r\n"
        b"    def price_0x1f(self, n2nd=2nd):\r\n"
        b'        """Price\r\n        of 3rd items."""\r\n'
        b"        return 0x1f + n2nd\x0c_private\r\n"
        b"def last(): return 42_000"
    ),
}

DEFINING = 4  # files of TREE with definitions: each is tokenized once per new content

QUERIES = [
    "QuerySet.union() drops the ordering of the orders",
    "slugify should allow unicode",
    "HTTPOrderView get_queryset render",
    "line price quantity total",
    "the and of",  # stopwords only: nothing known
    "orders",
    "default timeout seconds",
]


def _reference(index: RepoIndex, lines) -> tuple[bm25s.BM25, dict[str, int], list]:
    """The search index as it was built before it was cached: a token list per definition, bm25s."""
    vocabulary: dict[str, int] = {}

    def ids_of(text: str) -> list[int]:  # identifiers, whole and split, lowercased, no stopwords
        return [vocabulary.setdefault(token, len(vocabulary)) for token in query_tokens(text)]

    documents, corpus = [], []
    for path, indexed in index.files.items():
        if not indexed.parse.entities:
            continue
        file_lines = lines(path)
        path_ids = ids_of(path.rsplit(".", 1)[0])
        for entity in indexed.parse.entities:
            if entity.kind == CLASS:
                code = file_lines[entity.start - 1] if entity.start <= len(file_lines) else ""
            else:
                code = "\n".join(file_lines[entity.start - 1 : entity.end])
            corpus.append(
                ids_of(entity.qualname) * NAME_REPEAT + path_ids + ids_of(entity.doc) + ids_of(code)
            )
            documents.append((path, entity))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenization.Tokenized(ids=corpus, vocab=vocabulary), show_progress=False)
    return retriever, vocabulary, documents


def _assert_same_as_reference(search: EntitySearch, tools: RepoTools) -> None:
    retriever, vocabulary, documents = _reference(search.index, tools.lines)
    assert list(search.documents) == documents
    assert len(search.documents) == len(documents)
    for query in QUERIES:
        tokens = query_tokens(query)
        known = search.known(tokens)
        assert known == [token for token in dict.fromkeys(tokens) if token in vocabulary]
        expected = (
            retriever.get_scores([vocabulary[token] for token in known])
            if known
            else np.zeros(len(documents), dtype=np.float32)
        )
        got = search.scores(tokens)
        assert got.dtype == np.float32
        assert got.tobytes() == expected.tobytes(), query  # bit for bit
        if known:
            results, scores = retriever.retrieve(
                bm25s.tokenization.Tokenized(ids=[[vocabulary[token] for token in known]], vocab=vocabulary),
                k=min(4, len(documents)),
                show_progress=False,
            )
            assert search.top(tokens, 4) == [
                (int(doc), float(score)) for doc, score in zip(results[0], scores[0], strict=True)
            ]


def _search(root: Path, cache: ParseCache | None) -> tuple[EntitySearch, RepoTools]:
    index = build_index(root, cache=cache, workers=1, use_cache=cache is not None)
    tools = RepoTools(index)
    return tools.search, tools


@pytest.fixture
def count_tokenized(monkeypatch) -> list[int]:
    """How many files were tokenized (rather than read from the cache), per build."""
    calls: list[int] = []
    real = search_build.tokenize_file

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(search_build, "tokenize_file", counting)
    return calls


def test_scores_equal_bm25s_over_the_same_documents_cold_from_tokens_and_from_the_stored_matrix(
    tmp_path, count_tokenized
):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    for _ in range(2):  # cold, then the stored matrix of the same snapshot
        search, tools = _search(root, cache)
        _assert_same_as_reference(search, tools)
    assert len(count_tokenized) == DEFINING  # once per file with definitions
    # the same files elsewhere are the same snapshot: its matrix is read, nothing is tokenized
    again, tools = _search(write_tree(tmp_path / "checkout2", TREE), cache)
    _assert_same_as_reference(again, tools)
    # from the cached tokens alone: the matrix row gone, nothing tokenized either
    with sqlite3.connect(cache.path) as store:
        store.execute("DELETE FROM artifacts")
    from_tokens, tools = _search(root, ParseCache(tmp_path / "cache"))
    _assert_same_as_reference(from_tokens, tools)
    assert len(count_tokenized) == DEFINING
    uncached, tools = _search(root, None)
    _assert_same_as_reference(uncached, tools)
    assert len(count_tokenized) == 2 * DEFINING


def test_cached_tokens_equal_freshly_tokenized_ones(tmp_path):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    search, tools = _search(root, cache)
    search.documents  # noqa: B018  (builds it)
    index = search.index
    keys = {path: f"{TOKENIZER_VERSION}:{indexed.content_key}" for path, indexed in index.files.items()}
    stored = cache.get_tokens(keys.values())
    assert set(stored) == {keys[path] for path, indexed in index.files.items() if indexed.parse.entities}
    for path, indexed in index.files.items():
        if not indexed.parse.entities:
            continue
        cached = decode_file_tokens(stored[keys[path]], len(indexed.parse.entities))
        fresh = tokenize_file(indexed.parse.entities, (root / path).read_bytes(), {})
        assert cached is not None and cached.documents() == fresh.documents()
        lines = tools.lines(path)
        for entity, document in zip(indexed.parse.entities, fresh.documents(), strict=True):
            code = (
                lines[entity.start - 1]
                if entity.kind == CLASS
                else "\n".join(lines[entity.start - 1 : entity.end])
            )
            words = (
                query_tokens(entity.qualname) * NAME_REPEAT + query_tokens(entity.doc) + query_tokens(code)
            )
            assert document == {token: words.count(token) for token in dict.fromkeys(words)}


def test_another_commit_tokenizes_only_its_changed_file(tmp_path, count_tokenized):
    cache = ParseCache(tmp_path / "cache")
    first, _ = _search(write_tree(tmp_path / "commit1", TREE), cache)
    first.documents  # noqa: B018
    assert len(count_tokenized) == DEFINING
    changed = dict(
        TREE, **{"shop/utils/text.py": TREE["shop/utils/text.py"] + "\n\ndef unslugify(slug):\n    pass\n"}
    )
    second, tools = _search(write_tree(tmp_path / "commit2", changed), cache)
    _assert_same_as_reference(second, tools)
    assert len(count_tokenized) == DEFINING + 1  # only the changed file
    assert "unslugify" in second.known(["unslugify"]) and not first.known(["unslugify"])


def test_the_matrix_of_one_snapshot_is_not_used_for_another(tmp_path):
    cache = ParseCache(tmp_path / "cache")
    first, _ = _search(write_tree(tmp_path / "one", TREE), cache)
    first.documents  # noqa: B018
    # the same contents, one file at another path: its documents' path tokens differ
    moved = {
        ("shop/helpers/text.py" if path == "shop/utils/text.py" else path): text
        for path, text in TREE.items()
    }
    second, tools = _search(write_tree(tmp_path / "two", moved), cache)
    assert snapshot_key(second.index) != snapshot_key(first.index)
    _assert_same_as_reference(second, tools)
    assert second.known(["helpers"]) == ["helpers"] and first.known(["helpers"]) == []
    assert len(cache.artifact_keys()) == 2


def test_a_damaged_token_row_is_rebuilt_and_never_gives_wrong_scores(tmp_path, caplog, count_tokenized):
    cache = ParseCache(tmp_path / "cache")
    first, _ = _search(write_tree(tmp_path / "commit1", TREE), cache)
    first.documents  # noqa: B018
    cache.close()
    with sqlite3.connect(cache.path) as store:
        rows = store.execute("SELECT key, data FROM tokens").fetchall()
        store.execute("DELETE FROM artifacts")  # so that the next build reads the token rows
        key, data = rows[0]
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x10
        store.execute("UPDATE tokens SET data = ? WHERE key = ?", (bytes(flipped), key))
        # and a row whose checksum holds but whose documents are not those of its file (a foreign writer)
        other_key, _ = rows[1]
        forged = encode_file_tokens(tokenize_file((), b"", {}))
        store.execute(
            "UPDATE tokens SET data = ?, crc = ? WHERE key = ?",
            (forged, checksum(other_key.encode(), forged), other_key),
        )
    tokenized_before = len(count_tokenized)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        second, tools = _search(write_tree(tmp_path / "commit2", TREE), ParseCache(tmp_path / "cache"))
        _assert_same_as_reference(second, tools)
    assert len(count_tokenized) == tokenized_before + 2  # both rows were misses
    assert sum("damaged" in record.getMessage() for record in caplog.records) <= 1
    with sqlite3.connect(cache.path) as store:
        store.execute("DELETE FROM artifacts")
    third, tools = _search(write_tree(tmp_path / "commit3", TREE), ParseCache(tmp_path / "cache"))
    _assert_same_as_reference(third, tools)
    assert len(count_tokenized) == tokenized_before + 2  # the rows were replaced


def test_a_damaged_matrix_row_is_rebuilt_from_the_tokens(tmp_path, count_tokenized):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    first, _ = _search(root, cache)
    first.documents  # noqa: B018
    cache.close()
    with sqlite3.connect(cache.path) as store:
        (data,) = store.execute("SELECT data FROM artifacts").fetchone()
        damaged = bytearray(data)
        damaged[-5] ^= 0x01  # one score's bits
        store.execute("UPDATE artifacts SET data = ?", (bytes(damaged),))
    again, tools = _search(root, ParseCache(tmp_path / "cache"))
    _assert_same_as_reference(again, tools)
    assert len(count_tokenized) == DEFINING  # from the token rows: nothing tokenized again


def test_an_unusable_cache_builds_the_search_uncached(tmp_path, caplog):
    root = write_tree(tmp_path / "repo", TREE)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    index = build_index(root, use_cache=False, workers=1)
    index.cache = ParseCache(blocker)
    tools = RepoTools(index)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        _assert_same_as_reference(tools.search, tools)
    assert sum("without a cache" in record.getMessage() for record in caplog.records) == 1


def test_a_file_changed_after_indexing_is_searched_as_shown_but_not_cached(tmp_path):
    root = write_tree(tmp_path / "repo", TREE)
    cache = ParseCache(tmp_path / "cache")
    index = build_index(root, cache=cache, workers=1)
    (root / "shop/utils/text.py").write_text(TREE["shop/utils/text.py"].replace("slugify", "slugger"))
    tools = RepoTools(index)
    assert tools.search.known(["slugger"]) == ["slugger"]  # what show_code shows, as before
    changed_key = f"{TOKENIZER_VERSION}:{index.files['shop/utils/text.py'].content_key}"
    assert changed_key not in cache.get_tokens([changed_key])
    assert cache.artifact_keys() == []  # a matrix holding it would be wrong for the content it is keyed by


def test_one_build_per_index_shared_by_every_tool_set(tmp_path, count_tokenized):
    index = build_index(write_tree(tmp_path / "repo", TREE), use_cache=False, workers=1)
    first, second = RepoTools(index).search, RepoTools(index).search
    assert first.documents is second.documents
    RetrievalLocalizer(index).rank("QuerySet union ordering")
    assert len(count_tokenized) == DEFINING


@settings(max_examples=40)
@given(
    st.lists(
        st.lists(st.integers(min_value=0, max_value=7), max_size=12),
        min_size=1,
        max_size=8,
    )
)
def test_the_vectorized_matrix_is_bm25s_bit_for_bit(corpus):
    """Any corpus (documents as token ids, repeats, empty documents): every score bm25s stores."""
    used = sorted({token for document in corpus for token in document})
    if not used:
        return
    vocabulary = {f"t{token}": position for position, token in enumerate(used)}
    ids = [[used.index(token) for token in document] for document in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=dict(vocabulary)), show_progress=False)
    docs = np.array([doc for doc, document in enumerate(ids) for _ in document], dtype=np.int64)
    tokens = np.array([token for document in ids for token in document], dtype=np.int64)
    indptr, indices, data = bm25_matrix(len(used), docs, tokens, np.ones(len(tokens), np.int64), len(ids))
    assert indptr.tolist() == retriever.scores["indptr"].tolist()
    assert indices.tolist() == retriever.scores["indices"].tolist()
    assert data.tobytes() == retriever.scores["data"].tobytes()


def test_a_build_goes_when_its_index_does(tmp_path):
    """Kept with the index for the life of the process, and no longer: batch workers index commit after
    commit."""
    import gc

    index = build_index(write_tree(tmp_path / "repo", TREE), use_cache=False, workers=1)
    RepoTools(index).search.documents  # noqa: B018
    assert index in search_build._built
    # the other indexes held strongly, so that only this one can go (earlier tests leave dead ones behind)
    others = [key for key in search_build._built if key is not index]
    del index
    gc.collect()
    assert len(search_build._built) == len(others)


def test_documents_by_position_are_the_documents_in_order_whichever_is_asked_first(tmp_path):
    # each (path, entity) is kept once its file was looked at: any order of access gives what a walk gives
    root = write_tree(
        tmp_path / "repo",
        {
            "a.py": "class A:\n    def f(self):\n        pass\n",
            "empty.py": "x = 1\n",
            "b.py": "def g():\n    pass\n\ndef h():\n    pass\n",
        },
    )
    index = build_index(root, cache=ParseCache(tmp_path / "cache"), workers=1)
    documents = RepoTools(index).search.documents
    walked = list(documents)
    assert len(walked) == 4  # A, A.f, g, h: empty.py has none
    assert [documents[doc] for doc in (3, 0, 2, 1)] == [walked[doc] for doc in (3, 0, 2, 1)]
    assert documents[-1] == walked[-1] and documents[np.int64(1)] == walked[1]
    assert documents[1:3] == walked[1:3]
    with pytest.raises(IndexError, match="document 4 of 4"):
        documents[4]
