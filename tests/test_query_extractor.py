"""The query-driven extractor reads its queries as data: every shipped query compiles with its grammar,
inherits what it names, and a capture name the extractor does not know is an error (issue 14, move 9)."""

from __future__ import annotations

import importlib

import pytest

from reposearcher_plugin.index import languages
from reposearcher_plugin.index.query_extractor import QueryExtractor, query_text

QUERY_MODULES = ["lang_javascript", "lang_typescript", "lang_java", "lang_go", "lang_rust"]


@pytest.mark.parametrize("module", QUERY_MODULES)
def test_every_query_compiles_with_its_grammar(module):
    assert issubclass(
        importlib.import_module(f"reposearcher_plugin.index.{module}").Extractor, QueryExtractor
    )
    extensions = [extension for extension, name in languages.EXTENSION_MODULES.items() if name == module]
    for extension in extensions:  # `.tsx` has a grammar of its own
        assert languages.parse_source(module, f"empty{extension}", b"").entities == ()


def test_an_inherited_query_comes_first():
    shared = query_text("ecmascript")
    for name in ("javascript", "typescript"):
        text = query_text(name)
        assert text.startswith(shared) and len(text) > len(shared)


def test_a_capture_the_extractor_does_not_know_is_an_error(monkeypatch):
    import tree_sitter
    import tree_sitter_javascript

    class Misspelt(QueryExtractor):
        query_name = "misspelt"

    monkeypatch.setattr(
        "reposearcher_plugin.index.query_extractor.query_text",
        lambda name: "(class_declaration) @definiton.class (import_statement) @import",
    )
    with pytest.raises(ValueError, match=r"queries/misspelt.scm captures \['definiton.class'\]"):
        Misspelt(tree_sitter.Language(tree_sitter_javascript.language()))
