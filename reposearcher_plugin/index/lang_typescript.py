"""TypeScript and TSX: the JavaScript extractor over ``queries/typescript.scm``, which adds interfaces,
enums, abstract classes, signatures and namespaces to the patterns it shares with JavaScript.

`.tsx` needs its own grammar (JSX and `<T>expr` casts conflict), hence ``language_for``; both grammars name
their nodes alike, so one query serves both.
"""

from __future__ import annotations

import tree_sitter
import tree_sitter_typescript

from reposearcher_plugin.index import lang_javascript

NAME = "typescript"
EXTENSIONS = (".ts", ".mts", ".cts", ".tsx")


def language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_typescript.language_typescript())


def language_for(suffix: str) -> tree_sitter.Language:
    if suffix == ".tsx":
        return tree_sitter.Language(tree_sitter_typescript.language_tsx())
    return language()


class Extractor(lang_javascript.Extractor):
    query_name = "typescript"
    # `declare class A {}` / `export declare function f(): void;`
    wrapper_types = lang_javascript.Extractor.wrapper_types | {"ambient_declaration"}
