"""The one extractor for the languages whose definitions and imports are found by a tree-sitter query
(JavaScript, TypeScript, Java, Go, Rust; Python has its own statement walk, see ``lang_python``).

What a language defines is data: ``queries/<language>.scm``, one query per language, matched in C. A
definition can sit anywhere (in a callback, an IIFE, a class expression), so a statement-level walk would
miss them and a full walk in Python would cost more. The capture name says what a node is:

``@definition.class``
    a class-like entity (class, interface, enum, struct, trait); members directly in its body are methods.
``@definition.function``
    a function entity (a method instead, in a language that says so, when it sits directly in a body
    that holds members: Rust's ``fn`` in an ``impl`` or ``trait``).
``@definition.method``
    a member: a method when it sits directly in the body of the class-like on top of the nesting stack,
    skipped otherwise (members of anonymous classes and of bodies the parser lost have no name to hang on).
``@namespace``
    prefixes the qualnames of its contents but is no entity (TypeScript ``namespace``, Rust ``mod``).
``@implementation``
    like a namespace, and its members are methods (Rust ``impl Type``: its methods are ``Type.method``).
``@import``
    an import statement, read by the language's ``imports`` hook.

Captures whose name starts with ``_`` only serve predicates. A query file may start with
``; inherits: other`` to include the patterns of ``queries/other.scm`` first (JavaScript and TypeScript
share one, ``ecmascript.scm``).

Nesting comes from a stack of byte ranges over the captures in document order, not from climbing
parents. What a query cannot say stays in a small per-language subclass: how a node is named, where its
lines and doc comment start, which node's body holds its members, how imports and top-level variables read.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import ClassVar, NamedTuple

import tree_sitter

from reposearcher_plugin.index.model import CLASS, FUNCTION, METHOD, Entity, Import, Variable

DOC_LIMIT = 1000

_NAMESPACE = "namespace"
_IMPLEMENTATION = "implementation"
# capture name -> the role of its nodes: an entity kind, or one of the two scopes
_ROLES = {
    "definition.class": CLASS,
    "definition.function": FUNCTION,
    "definition.method": METHOD,
    "namespace": _NAMESPACE,
    "implementation": _IMPLEMENTATION,
}
_INHERITS = re.compile(r";\s*inherits:\s*([\w,\s-]+?)\s*$")


class Scope(NamedTuple):
    """An open definition on the nesting stack."""

    end_byte: int
    qualname: str
    member_holder: tree_sitter.Node | None  # what ``member_owner`` gives for its members; None: holds none


class QueryExtractor:
    """Entities, imports and top-level variables of one file, from the query ``queries/<query_name>.scm``.

    Subclasses name their query and implement the hooks below the ``__call__``; the walk is shared.
    """

    query_name: ClassVar[str]
    # Matching enters no deeper than this (None: everywhere); Go declares only at package level.
    max_start_depth: ClassVar[int | None] = None

    def __init__(self, lang: tree_sitter.Language) -> None:
        # One query for definitions and imports: matching costs a pass over every node of the tree (about a
        # third of the parse), so a second query would cost as much again.
        query = tree_sitter.Query(lang, query_text(self.query_name))
        unknown = sorted(
            name
            for name in (query.capture_name(index) for index in range(query.capture_count))
            if name not in _ROLES and name != "import" and not name.startswith("_")
        )
        if unknown:  # a misspelt capture would silently find nothing
            known = ", ".join(f"@{name}" for name in [*_ROLES, "import"])
            raise ValueError(f"queries/{self.query_name}.scm captures {unknown} (known: {known}, or @_name)")
        self._query = tree_sitter.QueryCursor(query)
        if self.max_start_depth is not None:
            self._query.set_max_start_depth(self.max_start_depth)

    def __call__(
        self, root: tree_sitter.Node, source: bytes
    ) -> tuple[list[Entity], list[Import], list[Variable]]:
        captures = self._query.captures(root)
        definitions = [(node, role) for capture, role in _ROLES.items() for node in captures.get(capture, ())]
        # py-tree-sitter groups captures by name without keeping the cursor's order (py-tree-sitter#450),
        # and the nesting stack relies on seeing an enclosing definition before what it contains.
        definitions.sort(key=lambda found: (found[0].start_byte, -found[0].end_byte))
        return (
            self._entities(definitions),
            self.imports(in_document_order(captures.get("import", []))),
            self.variables(root),
        )

    def _entities(self, definitions: list[tuple[tree_sitter.Node, str]]) -> list[Entity]:
        entities: list[Entity] = []
        stack: list[Scope] = []
        for node, role in definitions:
            start_byte = node.start_byte
            while stack and stack[-1].end_byte <= start_byte:
                stack.pop()
            enclosing = stack[-1] if stack else None
            # asked only inside a class-like: most definitions are not
            held = (
                enclosing is not None
                and enclosing.member_holder is not None
                and enclosing.member_holder == self.member_owner(node)
            )
            kind = self.kind(node, role, held)
            if kind is None:
                continue
            name = self.name(node)
            if name is None:  # anonymous, computed (`[Symbol.iterator]`) or lost to a syntax error
                continue
            qualname = self.qualname(node, name, enclosing)
            if kind == _NAMESPACE:
                stack.append(Scope(node.end_byte, qualname, None))
                continue
            if kind == _IMPLEMENTATION:
                stack.append(Scope(node.end_byte, qualname, self.member_holder(node)))
                continue
            first, doc, decorators = self.prelude(node, kind)
            entities.append(
                Entity(qualname, kind, first.start_point[0] + 1, node.end_point[0] + 1, doc, decorators)
            )
            stack.append(Scope(node.end_byte, qualname, self.member_holder(node) if kind == CLASS else None))
        return entities

    # --- hooks ---------------------------------------------------------------------------------------

    def kind(self, node: tree_sitter.Node, role: str, held: bool) -> str | None:
        """The entity kind of a node captured in ``role`` (the role itself for a scope); None skips it.
        ``held``: the node sits directly in the body of the definition on top of the nesting stack, and
        that body holds members."""
        if role == METHOD and not held:
            return None
        return role

    def name(self, node: tree_sitter.Node) -> str | None:
        """The name a definition adds to qualnames; None skips it (recovered from a syntax error without
        a name)."""
        name = node.child_by_field_name("name")
        return node_text(name) if name is not None else None

    def qualname(self, node: tree_sitter.Node, name: str, enclosing: Scope | None) -> str:
        return f"{enclosing.qualname}.{name}" if enclosing is not None else name

    def member_owner(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        """The node whose body directly holds ``node`` (the parent of its parent by default)."""
        body = node.parent
        return body.parent if body is not None else None

    def member_holder(self, node: tree_sitter.Node) -> tree_sitter.Node:
        """What ``member_owner`` gives for the members of the class-like (or implementation) ``node``."""
        return node

    def prelude(self, node: tree_sitter.Node, kind: str) -> tuple[tree_sitter.Node, str, tuple[str, ...]]:
        """The node a definition's lines start at (its doc comment is above it), the doc, the decorators."""
        return node, "", ()

    def imports(self, statements: list[tree_sitter.Node]) -> list[Import]:
        return []

    def variables(self, root: tree_sitter.Node) -> list[Variable]:
        return []


@cache
def query_text(name: str) -> str:
    """The patterns of ``queries/<name>.scm``, those of the files it inherits from first."""
    text = (files("reposearcher_plugin.index") / "queries" / f"{name}.scm").read_text(encoding="utf-8")
    first_line = text.split("\n", 1)[0]
    inherited = _INHERITS.match(first_line)
    if inherited is None:
        return text
    parents = [part.strip() for part in inherited[1].split(",") if part.strip()]
    return "".join(query_text(parent) for parent in parents) + text


def in_document_order(nodes: list[tree_sitter.Node]) -> list[tree_sitter.Node]:
    """Captures sorted by position, enclosing nodes first (see py-tree-sitter#450)."""
    return sorted(nodes, key=lambda node: (node.start_byte, -node.end_byte))


def node_text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def strip_comment_stars(body: str) -> str:
    """A block comment's body without the `*` its lines may start with."""
    lines = [line.strip() for line in body.splitlines()]
    return "\n".join(line[1:].strip() if line.startswith("*") else line for line in lines).strip()


def block_doc_before(first: tree_sitter.Node, comment_type: str) -> str:
    """A `/** */` comment ending on the line before (or the line of) ``first``, stripped of its markers."""
    comment = first.prev_named_sibling
    if comment is None or comment.type != comment_type or comment.end_point[0] < first.start_point[0] - 1:
        return ""
    text = node_text(comment)
    if not text.startswith("/**"):
        return ""
    body = text[3:-2] if text.endswith("*/") else text[3:]
    if "\n" not in body:  # the common one-liner, without the per-line work
        return body.strip()[:DOC_LIMIT]
    return strip_comment_stars(body)[:DOC_LIMIT]
