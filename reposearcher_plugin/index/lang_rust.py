"""Rust: structs, enums, unions and traits, functions, methods of impls and traits, `use` imports and
top-level consts and statics.

Definitions and imports are the captures of ``queries/rust.scm``, walked by ``query_extractor``. `impl`
blocks and `mod` blocks are scopes, not entities: a method is ``Type.method`` whatever trait it implements
(``impl fmt::Display for a::Foo<T>`` -> ``Foo``), and items of ``mod m { ... }`` are ``m.item``.
"""

from __future__ import annotations

import tree_sitter
import tree_sitter_rust

from reposearcher_plugin.index.model import FUNCTION, METHOD, Import, Variable
from reposearcher_plugin.index.query_extractor import (
    DOC_LIMIT,
    QueryExtractor,
    node_text,
    strip_comment_stars,
)

NAME = "rust"
EXTENSIONS = (".rs",)

# What names the implemented type hides behind: `Foo<T>`, `a::Foo`, `&'a Foo`, `*const Foo`, `dyn Tr`
_TYPE_WRAPPERS = {
    "generic_type": "type",
    "scoped_type_identifier": "name",
    "reference_type": "type",
    "pointer_type": "type",
    "dynamic_type": "trait",
    "abstract_type": "trait",
}
_COMMENTS = frozenset({"line_comment", "block_comment"})


def language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_rust.language())


class Extractor(QueryExtractor):
    query_name = "rust"

    def kind(self, node: tree_sitter.Node, role: str, held: bool) -> str | None:
        # an `fn` directly in an impl or trait body is a method; at top level, in a mod, nested in a
        # function or declared in an `extern` block it is a function
        return METHOD if role == FUNCTION and held else role

    def name(self, node: tree_sitter.Node) -> str | None:
        if node.type == "impl_item":
            return _type_name(node.child_by_field_name("type")) or None
        return super().name(node) or None

    def member_owner(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        body = node.parent
        return body.parent if body is not None and body.type == "declaration_list" else None

    def prelude(self, node: tree_sitter.Node, kind: str) -> tuple[tree_sitter.Node, str, tuple[str, ...]]:
        """The node an item's lines start at (its first attribute), its `///` / `/** */` doc and attributes.

        Outer doc comments and attributes bind to the next item whatever lies between, so the whole run of
        them above the item is read, blank lines and plain comments included.
        """
        first = node
        docs: list[str] = []
        attributes: list[str] = []
        sibling = node.prev_named_sibling
        while sibling is not None:
            if sibling.type == "attribute_item":
                first = sibling
                attributes.append(node_text(sibling)[2:-1].strip())
            elif sibling.type in _COMMENTS:
                if sibling.child_by_field_name("outer") is not None:
                    doc = sibling.child_by_field_name("doc")
                    text = node_text(doc) if doc is not None else ""
                    docs.append(text.strip() if sibling.type == "line_comment" else strip_comment_stars(text))
                elif sibling.child_by_field_name("inner") is not None:
                    break  # `//!` documents the enclosing module
            else:
                break
            sibling = sibling.prev_named_sibling
        return first, "\n".join(reversed(docs)).strip()[:DOC_LIMIT], tuple(reversed(attributes))

    def imports(self, statements: list[tree_sitter.Node]) -> list[Import]:
        return [_import(node) for node in statements]

    def variables(self, root: tree_sitter.Node) -> list[Variable]:
        found: list[Variable] = []
        for item in root.named_children:
            if item.type in ("const_item", "static_item"):
                name = item.child_by_field_name("name")
                if name is not None:
                    found.append(Variable(node_text(name), name.start_point[0] + 1))
        return found


def _type_name(node: tree_sitter.Node | None) -> str:
    """The bare name of an implemented type: `Foo` for `crate::a::Foo<T>`, `&'a Foo` or `Foo`."""
    while node is not None and node.type in _TYPE_WRAPPERS:
        node = node.child_by_field_name(_TYPE_WRAPPERS[node.type])
    if node is None:
        return ""
    if node.type in ("type_identifier", "primitive_type"):
        return node_text(node)
    # tuples, arrays, slices, `impl<T> Tr for T`: the compact source text is the best name there is
    return "".join(node_text(node).split())


def _import(node: tree_sitter.Node) -> Import:
    line = node.start_point[0] + 1
    if node.type == "extern_crate_declaration":  # `extern crate serde;`: the crate is the import
        name = node.child_by_field_name("name")
        return Import(line, node_text(name) if name is not None else "", ())
    argument = node.child_by_field_name("argument")
    return Import(line, _compact(node_text(argument)) if argument is not None else "", ())


def _compact(text: str) -> str:
    """`crate::a::{b, c as d}` -> `crate::a::{b,c as d}`: whitespace dropped except between two words."""
    words = text.split()
    out = words[0] if words else ""
    for word in words[1:]:
        joins_words = (out[-1].isalnum() or out[-1] == "_") and (word[0].isalnum() or word[0] == "_")
        out += f" {word}" if joins_words else word
    return out
