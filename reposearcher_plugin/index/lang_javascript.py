"""JavaScript: classes, functions, methods, ES module / CommonJS imports and module-level bindings.

Definitions and imports are the captures of ``queries/javascript.scm`` (its patterns shared with TypeScript
are in ``queries/ecmascript.scm``), walked by ``query_extractor``. What the query cannot say is here: how a
member is named, where a definition starts (its declaration keyword, decorators, an `export`), the
`/** */` doc comment, how imports read, and the names a destructuring declaration binds.
``lang_typescript`` reuses this extractor with its own query and wrapper statements.
"""

from __future__ import annotations

from typing import ClassVar

import tree_sitter
import tree_sitter_javascript

from reposearcher_plugin.index.model import METHOD, Import, Variable
from reposearcher_plugin.index.query_extractor import QueryExtractor, block_doc_before, node_text

NAME = "javascript"
EXTENSIONS = (".js", ".jsx", ".mjs", ".cjs")

# Values that make `const x = ...` a definition rather than a variable.
_DEFINITION_VALUES = frozenset({"arrow_function", "function_expression", "generator_function", "class"})
_DECLARATIONS = frozenset({"lexical_declaration", "variable_declaration"})


def language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_javascript.language())


class Extractor(QueryExtractor):
    """Entities, imports and top-level variables of one JavaScript file."""

    query_name = "javascript"
    # statements that wrap a declaration and so start before it (and may carry its decorators)
    wrapper_types: ClassVar[frozenset[str]] = frozenset({"export_statement"})

    def name(self, node: tree_sitter.Node) -> str | None:
        return _member_name(node) or None

    def member_holder(self, node: tree_sitter.Node) -> tree_sitter.Node:
        # `const Panel = class { ... }`: the members sit in the class expression's body
        value = node.child_by_field_name("value") if node.type == "variable_declarator" else None
        return value if value is not None else node

    def prelude(self, node: tree_sitter.Node, kind: str) -> tuple[tree_sitter.Node, str, tuple[str, ...]]:
        first, decorators = self._extent(node, kind)
        return first, block_doc_before(first, "comment"), decorators

    def _extent(self, node: tree_sitter.Node, kind: str) -> tuple[tree_sitter.Node, tuple[str, ...]]:
        """The node a definition's lines (and doc comment) start at, and its decorators in source order."""
        first = node
        if node.type == "variable_declarator":
            declaration = node.parent
            # `const a = 1, f = () => {}`: only the first declarator starts with the keyword
            if (
                declaration is not None
                and declaration.type in _DECLARATIONS
                and node.prev_named_sibling is None
            ):
                first = declaration
        decorators = [_decorator(d) for d in node.children_by_field_name("decorator")]
        # TypeScript puts a method's decorators before it in the class body instead of inside it
        sibling = first.prev_named_sibling if kind == METHOD else None
        while sibling is not None and sibling.type == "decorator":
            decorators.insert(0, _decorator(sibling))
            first = sibling
            sibling = sibling.prev_named_sibling
        parent = first.parent
        while parent is not None and parent.type in self.wrapper_types:
            first = parent
            # `@dec export class A {}` puts the decorator on the export statement
            decorators[:0] = [_decorator(d) for d in parent.children_by_field_name("decorator")]
            parent = parent.parent
        return first, tuple(decorators)

    def imports(self, statements: list[tree_sitter.Node]) -> list[Import]:
        return _import_list(statements)

    def variables(self, root: tree_sitter.Node) -> list[Variable]:
        found: list[Variable] = []
        for statement in root.named_children:
            while statement.type in self.wrapper_types:
                # `export const`, or TypeScript's `declare const` whose declaration is its only child
                inner = statement.child_by_field_name("declaration")
                if inner is None:
                    inner = statement.named_child(0)
                if inner is None:
                    break
                statement = inner
            if statement.type not in _DECLARATIONS:
                continue
            for declarator in statement.named_children:
                if declarator.type != "variable_declarator":
                    continue
                value = declarator.child_by_field_name("value")
                if value is not None and value.type in _DEFINITION_VALUES:
                    continue  # an entity already
                target = declarator.child_by_field_name("name")
                if target is not None:
                    found.extend(Variable(node_text(n), n.start_point[0] + 1) for n in _bound_names(target))
        return found


def _import_list(statements: list[tree_sitter.Node]) -> list[Import]:
    imports: list[Import] = []
    for node in statements:
        line = node.start_point[0] + 1
        if node.type == "call_expression":  # require('m') / import('m')
            arguments = node.child_by_field_name("arguments")
            string = arguments.named_child(0) if arguments is not None else None
            if string is not None and string.type == "string":
                imports.append(Import(line, _string_value(string), ()))
            continue
        source = node.child_by_field_name("source")
        names: list[str] = []
        for child in node.named_children:
            if child.type == "import_clause":
                names.extend(_clause_names(child))
            elif child.type == "import_require_clause":  # TypeScript `import x = require('m')`
                source = child.child_by_field_name("source")
            elif child.type == "export_clause":
                names.extend(_specifier_names(child, "export_specifier"))
            elif child.type == "namespace_export":
                names.append("*")
        if node.type == "export_statement" and any(child.type == "*" for child in node.children):
            names.append("*")
        if source is not None:
            imports.append(Import(line, _string_value(source), tuple(names)))
    return imports


def _member_name(node: tree_sitter.Node) -> str:
    name = node.child_by_field_name("name")
    if name is None:
        name = node.child_by_field_name("property")  # JavaScript field_definition
    if name is None or name.type == "computed_property_name":
        return ""
    if name.type == "string":
        return _string_value(name)
    return "".join(node_text(name).split())  # `namespace A . B` -> "A.B"


def _decorator(node: tree_sitter.Node) -> str:
    return node_text(node).lstrip("@").strip()


def _clause_names(clause: tree_sitter.Node) -> list[str]:
    """Names an import clause takes: the local name for a default import (a default export has no other
    name, and the local one usually matches the exported class), the original name for `{a as b}`."""
    names: list[str] = []
    for child in clause.named_children:
        if child.type == "identifier":
            names.append(node_text(child))
        elif child.type == "namespace_import":
            names.append("*")
        elif child.type == "named_imports":
            names.extend(_specifier_names(child, "import_specifier"))
    return names


def _specifier_names(braces: tree_sitter.Node, specifier_type: str) -> list[str]:
    """Original names in `{a, b as c}` (aliases are local and mean nothing to the exporting module)."""
    names: list[str] = []
    for spec in braces.named_children:
        if spec.type == specifier_type:
            name = spec.child_by_field_name("name")
            if name is not None:
                names.append(node_text(name))
    return names


def _bound_names(pattern: tree_sitter.Node) -> list[tree_sitter.Node]:
    """Identifiers a declaration binds, in source order, through `{a, b: c, ...rest}` / `[x, y = 1]`
    destructuring. A stack, not recursion: a pattern may nest deeper than Python's recursion limit."""
    found: list[tree_sitter.Node] = []
    pending = [pattern]
    while pending:
        node = pending.pop()
        node_type = node.type
        if node_type in ("identifier", "shorthand_property_identifier_pattern"):
            found.append(node)
        elif node_type == "pair_pattern":
            value = node.child_by_field_name("value")
            if value is not None:
                pending.append(value)
        elif node_type in ("assignment_pattern", "object_assignment_pattern"):
            left = node.child_by_field_name("left")
            if left is not None:
                pending.append(left)
        elif node_type in ("object_pattern", "array_pattern", "rest_pattern"):
            pending.extend(reversed(node.named_children))
    return found


def _string_value(node: tree_sitter.Node) -> str:
    return node_text(node)[1:-1]
