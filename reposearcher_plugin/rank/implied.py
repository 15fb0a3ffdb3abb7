"""What an issue implies without naming it: the special methods its quoted code uses through builtins,
operators and statements (``len(x)`` -> ``__len__``, ``a * b`` -> ``__mul__``), the members Python says a
class lacks ("'C' object has no attribute 'm'", "... is not reversible"), and whether it asks for something
new (add, implement, support). :func:`reposearcher_plugin.rank.mentions.extract_mentions` reads them into
its ``Mentions``."""

from __future__ import annotations

import re

from reposearcher_plugin.index.locations import unique

# Builtins and library calls that Python answers with a special method of the argument's class.
_BUILTIN_DUNDERS = {
    "len": ("__len__",),
    "repr": ("__repr__",),
    "str": ("__str__",),
    "hash": ("__hash__",),
    "iter": ("__iter__",),
    "reversed": ("__reversed__",),
    "bool": ("__bool__",),
    "abs": ("__abs__",),
    "round": ("__round__",),
    "format": ("__format__",),
    "dir": ("__dir__",),
    "next": ("__next__",),
    "int": ("__int__", "__index__"),
    "float": ("__float__",),
    "complex": ("__complex__",),
    "bytes": ("__bytes__",),
    "divmod": ("__divmod__",),
    "pow": ("__pow__",),
    "copy": ("__copy__",),
    "deepcopy": ("__deepcopy__",),
    "dumps": ("__reduce__", "__reduce_ex__", "__getstate__"),
    "loads": ("__setstate__",),
    "getattr": ("__getattr__", "__getattribute__"),
    "setattr": ("__setattr__",),
    "delattr": ("__delattr__",),
    "sorted": ("__lt__",),
    "array": ("__array__",),
    "asarray": ("__array__",),
}
_BUILTIN_CALL = re.compile(r"(?<![\w])(" + "|".join(_BUILTIN_DUNDERS) + r")\s*\(")
# Binary operators between two operands in quoted code. Longest first, so ``**`` is not read as ``*``;
# the operands' ends are single characters, so each match is found in one step.
_BINARY_DUNDERS = {
    "**": ("__pow__", "__rpow__"),
    "//": ("__floordiv__", "__rfloordiv__"),
    "==": ("__eq__",),
    "!=": ("__ne__",),
    "<=": ("__le__",),
    ">=": ("__ge__",),
    "<<": ("__lshift__",),
    ">>": ("__rshift__",),
    "+=": ("__iadd__", "__add__"),
    "-=": ("__isub__", "__sub__"),
    "*=": ("__imul__", "__mul__"),
    "/=": ("__itruediv__", "__truediv__"),
    "+": ("__add__", "__radd__"),
    "-": ("__sub__", "__rsub__"),
    "*": ("__mul__", "__rmul__"),
    "/": ("__truediv__", "__rtruediv__"),
    "%": ("__mod__", "__rmod__"),
    "@": ("__matmul__", "__rmatmul__"),
    "&": ("__and__", "__rand__"),
    "|": ("__or__", "__ror__"),
    "^": ("__xor__", "__rxor__"),
    "<": ("__lt__",),
    ">": ("__gt__",),
}
_BINARY = re.compile(
    r"(?<=[\w)\]])[ \t]*("
    + "|".join(re.escape(operator) for operator in _BINARY_DUNDERS)
    + r")(?![=<>*/])[ \t]*(?=[\w(\[])"
)
_FOR_IN = re.compile(r"\bfor\s++\w++(?:\s*+,\s*+\w++)*+\s++in\s")
# ``a in b`` outside a ``for`` (which _FOR_IN reads, and which is cut out before this is looked for)
_MEMBERSHIP = re.compile(r"\w\s++(?:not\s++)?in\s++\w")
# Statements that use a protocol: iteration, membership, subscripts, unary minus and inversion.
_SYNTAX_DUNDERS = (
    (_FOR_IN, ("__iter__",)),
    (re.compile(r"\bdel\s+\w+\["), ("__delitem__",)),
    (re.compile(r"\w\[[^\]\n]{0,80}\]\s*+=(?!=)"), ("__setitem__",)),
    (re.compile(r"\w\["), ("__getitem__",)),
    (re.compile(r"(?<![\w)\]])-[A-Za-z_(]"), ("__neg__",)),
    (re.compile(r"~[A-Za-z_(]"), ("__invert__",)),
)
# What an issue says in words (or Python says in a message) about a protocol.
_ITER = ("__iter__",)
_PICKLE = ("__reduce__", "__getstate__", "__setstate__")
_WORD_DUNDERS = (
    (re.compile(r"\b(?:not|isn't) iterable|\biterat(?:e|es|ing|ion)\s+(?:over|through)", re.I), _ITER),
    (re.compile(r"\bnot reversible|\breversed\b", re.I), ("__reversed__",)),
    (re.compile(r"\bnot subscriptable|\bindexing\b", re.I), ("__getitem__",)),
    (re.compile(r"\bhas no len\(\)", re.I), ("__len__",)),
    (re.compile(r"\bunhashable\b|\bhashable\b", re.I), ("__hash__",)),
    (re.compile(r"\b(?:un)?pickl(?:e|ed|es|ing|able)\b", re.I), _PICKLE),
    (re.compile(r"\bdeep ?cop(?:y|ies|ying)\b", re.I), ("__deepcopy__",)),
    (re.compile(r"\bequality\b", re.I), ("__eq__",)),
)
_UNSUPPORTED_OPERAND = re.compile(r"unsupported operand type\(s\) for ([^\s:]+):")
_MISSING_ATTRIBUTE = re.compile(r"""['"](\w++)['"] object (?:has no attribute ['"](\w+)['"]|is not (\w+))""")
_NOT_PROTOCOL = {
    "iterable": "__iter__",
    "reversible": "__reversed__",
    "subscriptable": "__getitem__",
    "callable": "__call__",
}
_ASKS_TO_ADD = re.compile(
    r"\b(?:add|adds|added|adding|implement|implements|implemented|implementing|support|supports|supported"
    r"|supporting|missing|lacks|introduce|introduces|expose|provide|provides)\b",
    re.I,
)


# What an issue implies (special methods, a request for something new) is read from this many characters
# of its quoted code and of its text: those patterns cost microseconds a character on text made of
# operators or short words (a quarter of a million characters: over a second), and what an issue asks
# for, or shows a class doing, comes before its pasted logs.
IMPLIED_SCAN_CHARS = 20_000


def implied_dunders(code: str, issue: str) -> list[str]:
    """The special methods that ``code`` (what the issue quotes) uses through builtins, operators and
    statements, and that ``issue``'s words name (in order, each once), from the first
    ``IMPLIED_SCAN_CHARS`` of each. Operators are read in quoted code only: prose is full of dashes,
    slashes and asterisks."""
    code, issue = code[:IMPLIED_SCAN_CHARS], issue[:IMPLIED_SCAN_CHARS]
    found: list[str] = []
    for match in _BUILTIN_CALL.finditer(code):
        found += _BUILTIN_DUNDERS[match.group(1)]
    for match in _BINARY.finditer(code):
        found += _BINARY_DUNDERS[match.group(1)]
    for pattern, dunders in _SYNTAX_DUNDERS:
        if pattern.search(code):
            found += dunders
    if _MEMBERSHIP.search(_FOR_IN.sub(" ", code)):
        found.append("__contains__")
    for pattern, dunders in _WORD_DUNDERS:
        if pattern.search(issue):
            found += dunders
    for match in _UNSUPPORTED_OPERAND.finditer(issue):
        found += _BINARY_DUNDERS.get(match.group(1), ())
    found += [member for _, member in missing_members(issue) if member.startswith("__")]
    return unique(found)


def asks_to_add(issue: str) -> bool:
    """The issue asks for something new (add, implement, support, ...), in its first
    ``IMPLIED_SCAN_CHARS``."""
    return _ASKS_TO_ADD.search(issue, 0, IMPLIED_SCAN_CHARS) is not None


def missing_members(issue: str) -> list[tuple[str, str]]:
    """(class, member) for each "'C' object has no attribute 'm'" and "'C' object is not iterable" (and
    reversible, subscriptable, callable) in ``issue``, in order, each once."""
    found: list[tuple[str, str]] = []
    for match in _MISSING_ATTRIBUTE.finditer(issue):
        class_name, attribute, protocol = match.groups()
        member = attribute or _NOT_PROTOCOL.get(protocol or "")
        if member:
            found.append((class_name, member))
    return unique(found)
