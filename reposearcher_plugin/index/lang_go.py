"""Go: functions, methods (``Receiver.Method``), struct and interface types with their interface methods,
imports and package-level variables and constants.

Definitions and imports are the captures of ``queries/go.scm``, walked by ``query_extractor``. Go declares
them only at package level (depth <= 4 counting an interface's method specs), so the query's start depth
is capped: matching then never enters function bodies, which cuts its cost about threefold. Types
declared inside a function body are therefore not indexed; they are invisible outside that function
anyway. Qualnames are flat except for methods: a receiver method is ``Receiver.Method`` wherever it is
declared, an interface's method spec ``Interface.Method``.
"""

from __future__ import annotations

import re

import tree_sitter
import tree_sitter_go

from reposearcher_plugin.index.model import METHOD, Import, Variable
from reposearcher_plugin.index.query_extractor import DOC_LIMIT, QueryExtractor, Scope, node_text

NAME = "go"
EXTENSIONS = (".go",)

# `//go:generate`, `//nolint:x` and the like are tool directives, not documentation (as go/ast treats them)
_DIRECTIVE = re.compile(r"//[a-z0-9]+:[a-z0-9]")
# What a receiver type may be wrapped in: `*T`, `T[K, V]`, `(T)`
_RECEIVER_WRAPPERS = frozenset({"pointer_type", "generic_type", "parenthesized_type"})


def language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_go.language())


class Extractor(QueryExtractor):
    query_name = "go"
    # source_file > type_declaration > type_spec > interface_type > method_elem
    max_start_depth = 4

    def kind(self, node: tree_sitter.Node, role: str, held: bool) -> str | None:
        if node.type == "method_declaration":  # a method by its receiver, not by where it sits
            return METHOD
        return super().kind(node, role, held)

    def name(self, node: tree_sitter.Node) -> str | None:
        name = super().name(node)
        if name is None or node.type != "method_declaration":
            return name
        receiver = _receiver_type(node)
        return f"{receiver}.{name}" if receiver else None

    def qualname(self, node: tree_sitter.Node, name: str, enclosing: Scope | None) -> str:
        # only the method specs of a named interface hang on their enclosing definition
        return super().qualname(node, name, enclosing) if node.type == "method_elem" else name

    def member_owner(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        return node.parent  # a method spec sits directly in its interface_type

    def member_holder(self, node: tree_sitter.Node) -> tree_sitter.Node:
        body = node.child_by_field_name("type")  # `type I interface { ... }`: the interface_type
        return body if body is not None else node

    def prelude(self, node: tree_sitter.Node, kind: str) -> tuple[tree_sitter.Node, str, tuple[str, ...]]:
        first = node
        declaration = node.parent
        # `type T struct{}` starts (and is documented) at `type`; in a `type ( ... )` group, at the spec
        if node.type == "type_spec" and declaration is not None and declaration.type == "type_declaration":
            opener = declaration.child(1)
            if opener is not None and opener.type != "(":
                first = declaration
        return first, _doc_before(first), ()

    def imports(self, statements: list[tree_sitter.Node]) -> list[Import]:
        imports: list[Import] = []
        for spec in statements:
            path = spec.child_by_field_name("path")
            if path is not None:
                imports.append(Import(spec.start_point[0] + 1, node_text(path)[1:-1], ()))
        return imports

    def variables(self, root: tree_sitter.Node) -> list[Variable]:
        found: list[Variable] = []
        for declaration in root.named_children:
            if declaration.type not in ("var_declaration", "const_declaration"):
                continue
            specs = declaration.named_children
            if specs and specs[0].type == "var_spec_list":  # `var ( ... )`
                specs = specs[0].named_children
            for spec in specs:
                if spec.type not in ("var_spec", "const_spec"):
                    continue
                for name in spec.children_by_field_name("name"):
                    if name.type == "identifier" and name.text != b"_":
                        found.append(Variable(node_text(name), name.start_point[0] + 1))
        return found


def _receiver_type(method: tree_sitter.Node) -> str:
    """`Server` for `(s *Server)`, `(Server)` and `(s *Server[T])`."""
    receiver = method.child_by_field_name("receiver")
    parameter = receiver.named_child(0) if receiver is not None else None
    if parameter is None:
        return ""
    node = parameter.child_by_field_name("type")
    while node is not None and node.type in _RECEIVER_WRAPPERS:
        node = node.child_by_field_name("type") if node.type == "generic_type" else node.named_child(0)
    return node_text(node) if node is not None and node.type == "type_identifier" else ""


def _doc_before(first: tree_sitter.Node) -> str:
    """The run of `//` comments on the lines directly above ``first``."""
    lines: list[str] = []
    expected_row = first.start_point[0] - 1  # the row the next comment up must end on
    comment = first.prev_named_sibling
    while comment is not None and comment.type == "comment" and comment.end_point[0] == expected_row:
        text = node_text(comment)
        if not text.startswith("//"):
            break
        if not _DIRECTIVE.match(text):
            lines.append(text[2:].strip())
        expected_row = comment.start_point[0] - 1
        comment = comment.prev_named_sibling
    return "\n".join(reversed(lines)).strip()[:DOC_LIMIT]
