"""Which files are parsed, by which grammar, and the one entry point that turns bytes into a FileParse.

Each language module provides ``NAME``, ``EXTENSIONS``, ``language()`` (the tree-sitter grammar) and an
``Extractor(language)`` callable ``(root, source) -> (entities, imports, variables)``. Grammars come from
the per-language ``tree-sitter-<lang>`` wheels, which ship compiled grammars (tree-sitter-language-pack
1.x downloads grammars at run time, which fails offline).
"""

from __future__ import annotations

import hashlib
import importlib
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import tree_sitter

from reposearcher_plugin.index.lines import line_count
from reposearcher_plugin.index.model import FileParse

# module name -> extensions it parses; imported lazily so a Python-only repository never loads the others
_LANGUAGE_MODULES: dict[str, tuple[str, ...]] = {
    "lang_python": (".py", ".pyi"),
    "lang_javascript": (".js", ".jsx", ".mjs", ".cjs"),
    "lang_typescript": (".ts", ".mts", ".cts", ".tsx"),
    "lang_java": (".java",),
    "lang_go": (".go",),
    "lang_rust": (".rs",),
}
EXTENSION_MODULES = {ext: module for module, exts in _LANGUAGE_MODULES.items() for ext in exts}


def _parser_version() -> str:
    """A hash of the extraction code itself: a cached parse made by other code is never reused."""
    here = Path(__file__).parent
    digest = hashlib.sha1(tree_sitter.__version__.encode() if hasattr(tree_sitter, "__version__") else b"")
    extraction = [*here.glob("lang_*.py"), here / "languages.py", here / "lines.py", here / "model.py"]
    for source in sorted(extraction):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


PARSER_VERSION = _parser_version()


def module_for(path: str) -> str | None:
    """The language module that parses ``path``, or None for files we do not parse."""
    dot = path.rfind(".")
    return EXTENSION_MODULES.get(path[dot:].lower()) if dot > path.rfind("/") else None


@cache
def _load(module_name: str) -> ModuleType:
    return importlib.import_module(f"reposearcher_plugin.index.{module_name}")


@cache
def _parser_and_extractor(module_name: str, path_suffix: str) -> tuple[tree_sitter.Parser, Any]:
    module = _load(module_name)
    grammar = module.language_for(path_suffix) if hasattr(module, "language_for") else module.language()
    return tree_sitter.Parser(grammar), module.Extractor(grammar)


def language_name(module_name: str) -> str:
    return _load(module_name).NAME


def parse_tree(module_name: str, path: str, source: bytes) -> tree_sitter.Tree:
    """Only the tree-sitter parse: the floor that `reposearcher bench` compares indexing against."""
    parser, _ = _parser_and_extractor(module_name, _suffix(path))
    return parser.parse(source)


def parse_source(module_name: str, path: str, source: bytes) -> FileParse:
    parser, extract = _parser_and_extractor(module_name, _suffix(path))
    tree = parser.parse(source)
    root = tree.root_node
    entities, imports, variables = extract(root, source)
    lossy = False
    if not source.isascii():
        try:
            source.decode("utf-8")
        except UnicodeDecodeError:
            lossy = True
    return FileParse(
        language=_load(module_name).NAME,
        lines=line_count(source),
        entities=tuple(entities),
        imports=tuple(imports),
        variables=tuple(variables),
        syntax_errors=_count_errors(root) if root.has_error else 0,
        decoded_lossy=lossy,
    )


def _suffix(path: str) -> str:
    return path[path.rfind(".") :].lower()


def _count_errors(root: tree_sitter.Node) -> int:
    count = 0
    cursor = root.walk()
    while True:
        node = cursor.node
        if node is not None and (node.is_error or node.is_missing):
            count += 1
        if node is not None and node.has_error and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return count
