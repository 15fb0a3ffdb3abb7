"""Gold as LocAgent derives it: the existing functions and methods a patch edits (its ``edit_functions``).

The ``locagent`` protocol (metrics.py) scores against this kind of gold. Our own rules (gold.py) label
more: the class for a class-body change or a new method, the file for module-level code; LocAgent's
leave those out, and an instance whose patch edits no existing function or method has no gold at all,
which is how its SWE-bench Lite subset of 274 instances comes about. The rules below restate those of
``util/benchmark/gen_oracle_locations.py`` (``extract_module_from_patch``, with its defaults: at most one
edited Python file, no global variables) and ``parse_python_file.py`` of LocAgent's repository.

1. **Files.** The patch must edit exactly one existing ``.py`` file (a new file does not count); with none
   or more, the instance has no gold. Every Lite patch edits one.
2. **Definitions** are read with Python's ``ast``, as LocAgent reads them: every class (nested ones too)
   with its direct methods, spans from the ``def`` / ``class`` line (decorators outside) to the last line;
   and every function that is not a method, except that one named like a method of a class met before it
   (``ast.walk`` order, breadth first) is dropped. A file that does not parse has no definitions.
3. **A changed line's owner** (removed lines in the base file, added lines in the patched file): the
   classes are tried in that order: a line in one of a class's methods is ``Class.method``; a line
   elsewhere in a class (its body, a nested class's methods) is nothing. Then the functions: the first
   holding the line (an outer function before the ones nested in it). Module-level lines are nothing.
4. **Skipped lines**: blank ones, those whose text starts with ``#``, lines of an ``import`` statement
   (anywhere, in a function too), and the first lines of a class docstring (as many as
   ``ast.get_docstring`` returns).
5. **Edited, not added**: a removed line's owner is edited; an added line's owner is edited only when the
   base file has it (a function of that name, or that method in the first class of that name), otherwise
   it is a new definition and no gold.
6. **``merge_init``** (LocAgent's ``get_module_from_line_number_with_file_structure`` option): a line in a
   method ``__init__`` labels its class, ``path::C``. The released code defaults it off, and the
   Loc-Bench V1 gold has it off (it lists ``C.__init__``); the SWE-bench Lite gold that LocAgent's notebook
   scores has it on: its evaluation maps a predicted ``C.__init__`` to ``C`` for that reason (the
   ``docs`` branch of ``eval_metric.py``), a commented-out signature of that function in the same file
   has ``merge_init=True``, and only with it do the published SWE-bench Lite numbers come out
   (eval/results/locagent_protocol.md).

Ids are ``path::Class.method`` / ``path::function`` (LocAgent writes ``path.py:Class.method``), each once,
removed lines' owners first, then added lines'. The patch is applied as gold.py applies it (``git apply``:
exact lines, at the stated place or the nearest one that fits); LocAgent runs ``patch``, which also
accepts offset hunks.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from reposearcher_plugin.evaluation.diffs import NO_FILE, DiffError, diff_paths, parse_diff
from reposearcher_plugin.evaluation.gold import GoldError, apply_file_patch, split_lines
from reposearcher_plugin.evaluation.locations import unique
from reposearcher_plugin.index import entity_id

ReadBase = Callable[
    [str], str | None
]  # repository path -> the file's text at the base commit, None if absent


class _Label(NamedTuple):
    kind: str  # "function" (functions and methods) or "class" (an __init__ edit, with merge_init)
    name: str


@dataclass(frozen=True)
class _Span:
    name: str
    start: int
    end: int

    def holds(self, line: int) -> bool:
        return self.start <= line <= self.end


@dataclass
class _Structure:
    """What LocAgent's parser sees in one file."""

    classes: list[tuple[_Span, list[_Span]]] = field(default_factory=list)  # (class, its direct methods)
    functions: list[_Span] = field(default_factory=list)
    skipped: list[_Span] = field(default_factory=list)  # imports and class docstrings

    def owner(self, line: int, merge_init: bool) -> _Label | None:
        for cls, methods in self.classes:
            for method in methods:
                if method.holds(line):
                    if merge_init and method.name == "__init__":
                        return _Label("class", cls.name)
                    return _Label("function", f"{cls.name}.{method.name}")
            if cls.holds(line):
                return None  # a class body outside its own methods labels nothing
        for function in self.functions:
            if function.holds(line):
                return _Label("function", function.name)
        return None

    def has(self, label: _Label) -> bool:
        if label.kind == "class":
            return any(cls.name == label.name for cls, _ in self.classes)
        if "." not in label.name:
            return any(function.name == label.name for function in self.functions)
        class_name, method_name = label.name.split(".")[0], label.name.split(".")[-1]
        for cls, methods in self.classes:
            if cls.name == class_name:  # the first class of that name only
                return any(method.name == method_name for method in methods)
        return False

    def skips(self, line: int) -> bool:
        return any(span.holds(line) for span in self.skipped)


def _structure(text: str) -> _Structure:
    found = _Structure()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return found
    method_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            methods = [
                _Span(child.name, child.lineno, child.end_lineno or child.lineno)
                for child in node.body
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            method_names.update(method.name for method in methods)
            found.classes.append((_Span(node.name, node.lineno, node.end_lineno or node.lineno), methods))
            docstring = ast.get_docstring(node)
            if docstring:
                start = node.body[0].lineno
                found.skipped.append(_Span("docstring", start, start + len(docstring.splitlines()) - 1))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name not in method_names:
                found.functions.append(_Span(node.name, node.lineno, node.end_lineno or node.lineno))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found.skipped.append(_Span("import", node.lineno, node.end_lineno or node.lineno))
    return found


def locagent_gold(
    instance_id: str, patch: str, read_base: ReadBase, *, merge_init: bool = False
) -> list[str]:
    """The functions and methods ``patch`` edits, by LocAgent's rules (module docstring); ``[]`` when it
    edits none, or not exactly one existing Python file. ``read_base`` gives a file's base text.
    ``merge_init``: an edit of ``C.__init__`` labels the class ``C`` (LocAgent's SWE-bench Lite gold).

    Raises ``GoldError`` for a patch that cannot be read or does not fit the base file."""
    try:
        patch_set = parse_diff(patch)
    except DiffError as error:
        raise GoldError(f"{instance_id}: the patch is not a readable diff ({error})") from None
    edited_files = [patched for patched in patch_set if diff_paths(patched)[0].endswith(".py")]
    if len(edited_files) != 1:
        return []
    patched = edited_files[0]
    path = diff_paths(patched)[0]
    if path == NO_FILE:
        return []
    old_text = read_base(path)
    if old_text is None:
        raise GoldError(f"{instance_id}: the patch edits {path}, which the base commit lacks (wrong commit?)")
    old_lines = split_lines(old_text)
    applied = apply_file_patch(instance_id, path, old_lines, patched)
    old, new = _structure("\n".join(old_lines) + "\n"), _structure("\n".join(applied.new_lines) + "\n")
    edited: list[_Label] = []
    for line, text in applied.removed:
        if text.strip().startswith("#") or old.skips(line):
            continue
        label = old.owner(line, merge_init)
        if label:
            edited.append(label)
    for line, text in applied.added:
        if text.strip().startswith("#") or new.skips(line):
            continue
        label = new.owner(line, merge_init)
        if label and old.has(label):
            edited.append(label)
    return unique(entity_id(path, label.name) for label in edited)
