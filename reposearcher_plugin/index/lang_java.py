"""Java: classes, interfaces, enums, records and annotation types (any nesting), their methods and
constructors, and imports.

Definitions and imports are the captures of ``queries/java.scm``, walked by ``query_extractor``. Local
classes (declared in a method body) nest under the method (``Outer.run.Local``); methods of anonymous
classes and of enum-constant bodies are skipped, as they have no name an issue could refer to.
"""

from __future__ import annotations

import tree_sitter
import tree_sitter_java

from reposearcher_plugin.index.model import Import
from reposearcher_plugin.index.query_extractor import QueryExtractor, block_doc_before, node_text

NAME = "java"
EXTENSIONS = (".java",)

_ANNOTATIONS = frozenset({"annotation", "marker_annotation"})


def language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_java.language())


class Extractor(QueryExtractor):
    query_name = "java"

    def member_owner(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        body = node.parent
        if body is not None and body.type == "enum_body_declarations":  # `enum E { A; void m() {} }`
            body = body.parent
        return body.parent if body is not None else None

    def prelude(self, node: tree_sitter.Node, kind: str) -> tuple[tree_sitter.Node, str, tuple[str, ...]]:
        # modifiers, annotations included, are part of the node
        return node, block_doc_before(node, "block_comment"), _annotations(node)

    def imports(self, statements: list[tree_sitter.Node]) -> list[Import]:
        return [_import(node) for node in statements]


def _annotations(node: tree_sitter.Node) -> tuple[str, ...]:
    modifiers = node.named_child(0)
    if modifiers is None or modifiers.type != "modifiers":
        return ()
    return tuple(
        node_text(child)[1:].strip() for child in modifiers.named_children if child.type in _ANNOTATIONS
    )


def _import(node: tree_sitter.Node) -> Import:
    """`import a.b.C;` -> ("a.b.C", ()); `import a.b.*;` and `import static a.B.*;` -> (package, ("*",))."""
    line = node.start_point[0] + 1
    module = ""
    wildcard = False
    for child in node.named_children:
        if child.type in ("scoped_identifier", "identifier"):
            module = "".join(node_text(child).split())
        elif child.type == "asterisk":
            wildcard = True
    return Import(line, module, ("*",) if wildcard else ())
