"""The records an index is made of.

They are plain named tuples on purpose: a warm index load unpickles tens of thousands of them, and tuples
are several times faster to (un)pickle than dataclasses. Every field is a builtin so a parse result can be
cached, sent between processes and compared in tests without custom code.
"""

from __future__ import annotations

import marshal
from typing import NamedTuple

CLASS = "class"
FUNCTION = "function"
METHOD = "method"
DEFINITION_KINDS = (CLASS, FUNCTION, METHOD)


class Entity(NamedTuple):
    """A class, function or method defined in a file.

    ``qualname`` joins the names of the enclosing definitions with dots (``Outer.Inner.method``,
    ``outer.inner``); the entity id is ``path::qualname``. Two entities of one file may share a qualname
    (a property getter and its setter, a function defined in both branches of an ``if``): both are kept.
    """

    qualname: str
    kind: str  # CLASS, FUNCTION (top-level or nested in a function) or METHOD (directly in a class)
    start: int  # 1-based first line, decorators / attributes included
    end: int  # 1-based last line
    doc: str  # docstring or doc comment, "" when there is none
    decorators: tuple[str, ...]  # decorator / annotation texts without "@", e.g. ("property",)

    @property
    def name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    @property
    def parent(self) -> str:
        """Qualified name of the enclosing definition, "" at module level."""
        return self.qualname.rpartition(".")[0]


class Import(NamedTuple):
    """One imported module (and the names taken from it) as written in the source.

    ``module`` keeps relative dots (``..utils``) for Python and the literal source string for
    JavaScript/TypeScript (``./widget``); ``names`` lists what a ``from``-style import takes (``*`` for a
    star import) and is empty for a plain ``import module``.
    """

    line: int
    module: str
    names: tuple[str, ...]


class Variable(NamedTuple):
    """A module-level assignment (``DEFAULT_TIMEOUT = 30``)."""

    name: str
    line: int


class FileParse(NamedTuple):
    """Everything the index keeps of one source file; cached by content hash."""

    language: str
    lines: int
    entities: tuple[Entity, ...]
    imports: tuple[Import, ...]
    variables: tuple[Variable, ...]
    syntax_errors: int  # ERROR / MISSING nodes tree-sitter recovered from; what parsed is still kept
    decoded_lossy: bool  # True when the bytes were not valid UTF-8 (names were decoded with replacement)


def encode_parse(parse: FileParse) -> bytes:
    """Serialize a parse as plain tuples with marshal: about twice as fast as pickling named tuples."""
    return marshal.dumps(
        (
            parse.language,
            parse.lines,
            tuple(tuple(entity) for entity in parse.entities),
            tuple(tuple(imported) for imported in parse.imports),
            tuple(tuple(variable) for variable in parse.variables),
            parse.syntax_errors,
            parse.decoded_lossy,
        )
    )


def decode_parse(data: bytes) -> FileParse:
    language, lines, entities, imports, variables, syntax_errors, lossy = marshal.loads(data)
    return FileParse(
        language,
        lines,
        tuple(Entity._make(entity) for entity in entities),
        tuple(Import._make(imported) for imported in imports),
        tuple(Variable._make(variable) for variable in variables),
        syntax_errors,
        lossy,
    )
