"""Which files are parsed, by which grammar, and the one entry point that turns bytes into a FileParse.

Each language module provides ``NAME``, ``EXTENSIONS``, ``language()`` (the tree-sitter grammar) and an
``Extractor(language)`` callable ``(root, source) -> (entities, imports, variables)``: Python's walks
statements (``lang_python``), the others are ``query_extractor.QueryExtractor`` over their
``queries/<language>.scm`` with a few hooks. Grammars come from
the per-language ``tree-sitter-<lang>`` wheels, which ship compiled grammars (tree-sitter-language-pack
1.x downloads grammars at run time, which fails offline).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
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
    extraction = [
        *here.glob("lang_*.py"),
        *here.glob("queries/*.scm"),
        here / "query_extractor.py",
        here / "languages.py",
        here / "lines.py",
        here / "model.py",
        here / "identifiers.py",  # identifier words are cached beside a parse
    ]
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


# --- start-up self-check: the installed tree-sitter runtime can load and use our grammars ----------------
# A runtime that cannot load a grammar makes every file fail to parse, and a failed parse is a skipped file:
# the index comes out empty and every search answers "No class named ..." as if that were the truth.
# SWE-agent's own edit_anthropic bundle runs `pip install tree-sitter==0.21.3` into whatever environment
# is first on PATH; 0.21 wants Language(ptr, name) and refuses 0.23+ grammars (TypeError, or "Incompatible
# Language version" ValueError). Hosts call check_grammars() at start-up so that is one loud error instead.

REQUIRED_TREE_SITTER = ">=0.25,<0.27"  # pyproject.toml's pin (tests keep the two equal)
_GRAMMAR_PACKAGES = {
    "lang_python": "tree_sitter_python",
    "lang_javascript": "tree_sitter_javascript",
    "lang_typescript": "tree_sitter_typescript",
    "lang_java": "tree_sitter_java",
    "lang_go": "tree_sitter_go",
    "lang_rust": "tree_sitter_rust",
}
# (module, file name, source): each must parse without errors into at least one definition
_PROBES: tuple[tuple[str, str, bytes], ...] = (
    ("lang_python", "probe.py", b"class Probe:\n    def run(self):\n        return 1\n"),
    ("lang_javascript", "probe.js", b"class Probe {\n  run() { return 1; }\n}\n"),
    ("lang_typescript", "probe.ts", b"class Probe {\n  run(): number { return 1; }\n}\n"),
    ("lang_typescript", "probe.tsx", b"class Probe {\n  run(): number { return 1; }\n}\n"),
    ("lang_java", "Probe.java", b"class Probe {\n  int run() { return 1; }\n}\n"),
    ("lang_go", "probe.go", b"package probe\n\nfunc Run() int { return 1 }\n"),
    ("lang_rust", "probe.rs", b"struct Probe;\n\nimpl Probe {\n    fn run(&self) -> i32 { 1 }\n}\n"),
)


class GrammarRuntimeError(RuntimeError):
    """The installed tree-sitter runtime cannot parse with a grammar: indexing would find nothing."""


def _distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _required_tree_sitter() -> str:
    from importlib.metadata import PackageNotFoundError, requires

    try:
        for requirement in requires("reposearcher-plugin") or []:
            found = re.match(r"\s*([A-Za-z0-9_.-]+)\s*([^;]*)$", requirement)
            if found and found[1].lower().replace("_", "-") == "tree-sitter":
                return found[2].strip()
    except PackageNotFoundError:
        pass
    return REQUIRED_TREE_SITTER


def _probe_failure(module_name: str, path: str, source: bytes) -> str | None:
    """Why parsing a known snippet failed, or None when it gave definitions and no syntax errors."""
    try:
        parse = parse_source(module_name, path, source)
    except Exception as error:  # whatever the runtime raises (TypeError, ValueError, ...) is the finding
        return f"{type(error).__name__}: {error}"
    if parse.syntax_errors or not parse.entities:
        found = f"{parse.syntax_errors} syntax errors and {len(parse.entities)} definitions"
        return f"a known snippet parsed into {found}"
    return None


@cache
def check_grammars() -> None:
    """Parse a tiny snippet with every grammar; raise GrammarRuntimeError naming the installed tree-sitter
    and the version required when one fails. Cached: a process checks once (about 0.1 s, most of it
    loading the grammars, which indexing reuses)."""
    for module_name, path, source in _PROBES:
        reason = _probe_failure(module_name, path, source)
        if reason is None:
            continue
        package = _GRAMMAR_PACKAGES[module_name].replace("_", "-")
        installed = _distribution_version("tree-sitter")
        required = _required_tree_sitter()
        raise GrammarRuntimeError(
            f"tree-sitter {installed} cannot parse {path.rpartition('.')[2]} files with {package} "
            f"{_distribution_version(package)} ({reason}). RepoSearcher needs tree-sitter{required}; "
            "without it every file fails to parse and the index is empty. (SWE-agent's edit_anthropic "
            "tools install tree-sitter 0.21.3 into the environment first on PATH.) Give RepoSearcher its "
            f"own virtual environment, or reinstall: pip install 'tree-sitter{required}'"
        )


def grammar_fingerprint() -> str:
    """A cheap key (no grammar loaded) for the runtime and grammars installed: the interpreter, and the
    names, sizes and modification times of their compiled modules. A host that runs once per call keeps
    one successful check per key on disk instead of loading every grammar each time."""
    digest = hashlib.sha1(f"{PARSER_VERSION}\0{sys.executable}".encode())
    for package in ("tree_sitter", *sorted(set(_GRAMMAR_PACKAGES.values()))):
        spec = importlib.util.find_spec(package)
        origin = spec.origin if spec is not None else None
        digest.update(f"\0{package}={origin}".encode())
        if not origin:
            continue
        folder = os.path.dirname(origin)
        for name in sorted(os.listdir(folder)):
            if name.endswith((".so", ".pyd", ".dylib", ".py")):
                stat = os.stat(os.path.join(folder, name))
                digest.update(f"\0{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]
