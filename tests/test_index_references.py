"""Words per definition (index/identifiers.py) and what answers from them: ``find_references`` as a
lookup that says exactly what a scan of every file said, ``RepoIndex.find`` and the reference API."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reposearcher_plugin.index import Entity, build_index, innermost
from reposearcher_plugin.index.identifiers import MODULE_LEVEL, owner_runs, words_by_owner
from reposearcher_plugin.index.lines import shown_line, split_lines
from reposearcher_plugin.tools.repo_tools import MAX_LINE_CHARS, MAX_REFERENCES, RepoTools
from tests.conftest import write_tree
from tests.test_tools import SHOP

# --- the words and their owners -------------------------------------------------------------------------

spans = st.lists(
    st.tuples(st.integers(1, 25), st.integers(-2, 12)).map(lambda span: (span[0], span[0] + span[1])),
    max_size=8,
)


def _entities(found_spans: list[tuple[int, int]]) -> list[Entity]:
    return [
        Entity(f"d{number}", "function", start, end, "", ())
        for number, (start, end) in enumerate(found_spans)
    ]


def _innermost_position(entities: list[Entity], line: int) -> int:
    """What ``innermost`` picks, as a position: the same entity values may stand at two positions."""
    holding = [(e.start, position) for position, e in enumerate(entities) if e.start <= line <= e.end]
    return max(holding)[1] if holding else MODULE_LEVEL


@given(spans, st.integers(0, 30))
def test_owner_runs_give_each_line_its_innermost_definition(found_spans, line_total):
    entities = _entities(found_spans)
    owners = [
        owner for first, last, owner in owner_runs(entities, line_total) for _ in range(first, last + 1)
    ]
    assert owners == [_innermost_position(entities, line) for line in range(1, line_total + 1)]
    for line in range(1, line_total + 1):
        chosen = innermost(entities, line)
        assert chosen == (entities[owners[line - 1]] if owners[line - 1] != MODULE_LEVEL else None)


# the pieces whole-word matching turns on: word characters and digits, separators, what UTF-8 decoding
# replaces, and every character that is a line end for str.splitlines but not for the line model
WORDS = ("a", "b", "_", "x1", "1", "9z", "get_b", "Ab")
BETWEEN = (" ", ".", "(", "'", "#", "-", "\n", "\r\n", "\r", "\x0c", "é", "\u2028")
RAW = (b"\xff", b"\xe2\x82")  # bytes that are not UTF-8: decoding replaces them
pieces = st.sampled_from([*(piece.encode() for piece in WORDS + BETWEEN), *RAW])


def _whole_words(line: str) -> set[str]:
    """The oracle: identifiers that occur in ``line`` not inside a longer run of word characters."""
    return {
        word
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line)
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", line)
    }


@given(st.lists(pieces, max_size=60), spans)
def test_words_are_the_whole_words_of_the_lines_each_definition_owns(parts, found_spans):
    source = b"".join(parts)
    entities = _entities(found_spans)
    lines = split_lines(source.decode("utf-8", "replace"))  # as the tools read a file
    expected: list[set[str]] = [set() for _ in range(len(entities) + 1)]
    for number, line in enumerate(lines, start=1):
        expected[_innermost_position(entities, number) + 1] |= _whole_words(line)
    found = words_by_owner(source, entities)
    assert [set(words.split("\n")) - {""} for words in found] == expected
    assert all(len(words.split("\n")) == len(set(words.split("\n"))) for words in found)  # each once


# --- find_references: a lookup that answers as the scan of every file did -----------------------------

TRICKY = {
    "pkg/__init__.py": "",
    "pkg/core.py": '''
        """Core: run_job is documented here; run_jobs is another word."""
        import os


        def run_job(job):
            # run_job calls helper_1 and helper
            return helper(job) + helper_1(job) + len("run_job")


        class Runner:
            def run(self):
                def inner():
                    return run_job(self)

                return inner


        def helper(job):
            return 1run_job if False else job.run_job
        ''',
    "pkg/crlf.py": b"def a():\r\n    return run_job()\r\n\x0crun_job = 1\r\n",
    "pkg/latin.py": b"# caf\xe9 run_job\xff\nrun_job\xe9 = '\xc3\xa9run_job'\nx = 1\n",
    "pkg/long.py": "def f():\n    return " + "run_job + " * 80 + "0\n",
    "pkg/many.py": "".join(f"def f{i}():\n    return run_job({i})\n" for i in range(60)),
    "pkg/none.py": "def unrelated():\n    return 'run_jobs'\n",
}


def _scan_every_file(tools: RepoTools, word: str) -> str:
    """The answer find_references gave before the index knew words: every indexed file, every line."""
    hits, total, files_with_hits = [], 0, 0
    for path in tools.index.files:
        found_here = False
        for number, line in enumerate(tools.lines(path), start=1):
            if word in _whole_words(line):
                total += 1
                found_here = True
                if len(hits) < MAX_REFERENCES:
                    owner = tools.index.enclosing(path, number)
                    where = f" [{owner.qualname}]" if owner else ""
                    hits.append(f"  {path}:{number}{where}: {shown_line(line.strip()[:MAX_LINE_CHARS])}")
        files_with_hits += found_here
    if not total:
        return f"No references to '{word}' in the repository's source files."
    files = f"{files_with_hits} file" + ("s" if files_with_hits != 1 else "")
    head = f"{total} references to '{word}' in {files}"
    if total > len(hits):
        head += f" (showing the first {len(hits)}; narrow with search_code or show_code)"
    return head + ":\n" + "\n".join(hits)


@pytest.fixture
def tricky(tmp_path, cache):
    return build_index(write_tree(tmp_path / "tricky", TRICKY), cache=cache, workers=1)


@pytest.mark.parametrize("word", ["run_job", "helper", "helper_1", "run_jobs", "os", "x", "return", "absent"])
def test_find_references_says_what_a_scan_of_every_file_says(tricky, word):
    assert RepoTools(tricky).find_references(word) == _scan_every_file(RepoTools(tricky), word)


def test_find_references_reads_only_the_files_that_use_the_word(tmp_path, cache):
    tools = RepoTools(build_index(write_tree(tmp_path / "shop", SHOP), cache=cache, workers=1))
    assert tools.find_references("price_of").startswith("2 references to 'price_of' in 2 files")
    assert sorted(tools.line_cache.paths()) == ["shop/cart.py", "shop/pricing.py"]
    assert tools.find_references("nowhere_used").startswith("No references")
    assert len(tools.line_cache) == 2


def test_words_come_back_from_the_cache_and_the_snapshot_unchanged(tmp_path, cache):
    root = write_tree(tmp_path / "tricky", TRICKY)
    cold = build_index(root, use_cache=False, workers=1)
    build_index(root, cache=cache, workers=1)
    warm = build_index(root, cache=cache, workers=1)  # from the snapshot
    other = build_index(write_tree(tmp_path / "copy", TRICKY), cache=cache, workers=1)  # from parse rows
    assert (warm.stats.unchanged, other.stats.from_cache) == (len(TRICKY), len(TRICKY))
    for index in (warm, other):
        assert {path: f.words for path, f in index.files.items()} == {
            path: f.words for path, f in cold.files.items()
        }
        assert index.referencing("run_job") == cold.referencing("run_job")


# --- find and the reference API ---------------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path, cache):
    return build_index(write_tree(tmp_path / "shop", SHOP), cache=cache, workers=1)


def test_find_looks_up_an_entity_id(shop):
    getter, setter = shop.find_all("shop/cart.py::Cart.total")
    assert shop.find("shop/cart.py::Cart.total") == getter and "property" in getter.decorators
    assert setter.decorators == ("total.setter",)
    assert shop.find("shop/pricing.py::Cart.add").start == 12
    for missing in ("shop/cart.py", "shop/cart.py::", "shop/cart.py::Cart.nope", "nope.py::Cart", "Cart"):
        assert shop.find(missing) is None and shop.find_all(missing) == ()


def test_referencing_names_the_definitions_whose_own_lines_use_a_word(shop):
    assert shop.referencing("price_of") == ["shop/cart.py::Cart.total", "shop/pricing.py::price_of"]
    assert shop.referencing("charge") == [
        "shop/cart.py",
        "shop/cart.py::Cart.checkout",
        "shop/payments/gateway.py::charge",
    ]
    assert shop.referencing("TAX") == ["shop/pricing.py", "shop/pricing.py::price_of"]
    assert shop.referencing("nowhere") == []
    assert shop.files_using("Cart") == ("shop/cart.py", "shop/pricing.py")


def test_names_used_by_a_definition_are_its_own_lines_words_in_order(shop):
    assert shop.names_used_by("shop/pricing.py::price_of") == [
        "def", "price_of", "item", "Price", "of", "an", "tax", "included", "return", "price", "TAX",
    ]  # fmt: skip
    # a class's own lines, not its methods'; an id shared by a getter and a setter: both
    assert shop.names_used_by("shop/pricing.py::Cart") == [
        "class",
        "Cart",
        "A",
        "pricing",
        "only",
        "cart",
        "not",
        "the",
        "shop",
        "s",
    ]
    total = shop.names_used_by("shop/cart.py::Cart.total")
    assert total[:3] == ["property", "def", "total"] and "setter" in total and "AttributeError" in total
    assert shop.names_used_by("shop/pricing.py") == ["TAX"]  # module level
    assert shop.names_used_by("shop/pricing.py::nope") == [] and shop.names_used_by("nope.py") == []


# --- one search of a file's words for every owner at once (issue 15, item 4) ------------------------------


@given(
    owned=st.lists(st.text(alphabet="ab_\n", max_size=6), min_size=1, max_size=6),
    word=st.text(alphabet="ab_", max_size=3),
)
def test_owners_of_a_word_are_those_whose_own_words_hold_it(owned, word):
    # the file's words searched once, joined, find what a search of each owner's words finds; no owner
    # holds the empty word (a search of one never ended)
    from reposearcher_plugin.index import IndexedFile
    from reposearcher_plugin.index.identifiers import encode_words

    indexed = IndexedFile("a.py", "lang_python", 0, "0" * 40, b"", "", encode_words(tuple(owned)))
    expected = [owner for owner, words in enumerate(owned) if word and word in words.split("\n")]
    assert indexed.owners_of(word) == expected
