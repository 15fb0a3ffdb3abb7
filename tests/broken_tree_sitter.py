"""A tree-sitter runtime that cannot use our grammars, simulated without installing anything.

SWE-agent's own ``edit_anthropic`` bundle runs ``pip install 'tree-sitter==0.21.3'`` in the environment
first on PATH. Its ``Language.__init__(self, path_or_ptr, name)`` needs a name and an int pointer, so our
``Language(grammar_capsule)`` raises TypeError; a 0.22+ runtime whose ABI range excludes a grammar raises
``ValueError: Incompatible Language version 15. Must be between 13 and 14`` from ``Parser(language)``
(py-tree-sitter's parser_set_language); a mismatch that raises nothing would parse into error trees.

In process: ``break_runtime(monkeypatch, kind)``. In a subprocess: ``checkout_venv(..., tree_sitter_021=True)``
makes a virtual environment over this interpreter's packages in which a stand-in ``tree_sitter`` 0.21.3
(with its dist-info, so ``importlib.metadata`` reports that version) shadows the real one, and which
imports this checkout's ``reposearcher_plugin`` even under ``python -E`` (a ``.pth`` line, not PYTHONPATH).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tree_sitter

from reposearcher_plugin.index import languages

ROOT = Path(__file__).resolve().parents[1]
_REAL_PARSER = tree_sitter.Parser


class Language021:
    """tree-sitter 0.21.3's constructor: ``Language(ptr, name)``."""

    def __init__(self, path_or_ptr: Any, name: str) -> None:
        if not isinstance(path_or_ptr, (str, int)):
            raise TypeError("Expected a path or pointer for the first argument")


def incompatible_parser(language: Any) -> Any:
    raise ValueError("Incompatible Language version 15. Must be between 13 and 14")


class GarbledParser:
    """Parses, but into trees of errors: what an unnoticed ABI mismatch would look like."""

    def __init__(self, language: Any) -> None:
        self._parser = _REAL_PARSER(language)

    def parse(self, source: bytes) -> Any:
        return self._parser.parse(b")(}{ " + source)


BREAKAGES: dict[str, tuple[str, Any, str]] = {
    # kind: (tree_sitter attribute, replacement, what the error names)
    "0.21 Language(ptr, name)": ("Language", Language021, "missing 1 required positional argument: 'name'"),
    "incompatible ABI": ("Parser", incompatible_parser, "Incompatible Language version 15"),
    "error trees": ("Parser", GarbledParser, "syntax errors"),
}


def break_runtime(monkeypatch: pytest.MonkeyPatch, kind: str) -> str:
    """Make every grammar fail the way ``kind`` says; returns the text the error must carry."""
    attribute, replacement, expected = BREAKAGES[kind]
    clear_grammar_caches()
    monkeypatch.setattr(tree_sitter, attribute, replacement)
    return expected


def clear_grammar_caches() -> None:
    languages._parser_and_extractor.cache_clear()
    languages.check_grammars.cache_clear()


@pytest.fixture
def fresh_grammars() -> Iterator[None]:
    """Parsers and the check built anew before and after: a test's broken runtime must not stay cached."""
    clear_grammar_caches()
    yield
    clear_grammar_caches()


_FAKE_TREE_SITTER = '''
"""Stand-in for tree-sitter 0.21.3 (what SWE-agent's edit_anthropic installs)."""


class Language:
    def __init__(self, path_or_ptr, name):
        if not isinstance(path_or_ptr, (str, int)):
            raise TypeError("Expected a path or pointer for the first argument")


class Parser:
    def __init__(self):
        pass


class Node:
    pass


class Tree:
    pass
'''


def checkout_venv(where: Path, *, tree_sitter_021: bool = False) -> Path:
    """A venv over this interpreter's site-packages that imports this checkout's package (installed or
    not, even under ``-E``), with the stand-in tree-sitter 0.21.3 if asked; returns its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(where)],
        check=True,
        capture_output=True,
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = where / "lib" / version / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    # this checkout's package first, whatever is installed (site runs .pth lines that start with import)
    (site / "zz_reposearcher_checkout.pth").write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n")
    if tree_sitter_021:  # the venv's own site-packages come before the system's: this one is imported
        (site / "tree_sitter").mkdir()
        (site / "tree_sitter" / "__init__.py").write_text(
            textwrap.dedent(_FAKE_TREE_SITTER), encoding="utf-8"
        )
        dist = site / "tree_sitter-0.21.3.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tree-sitter\nVersion: 0.21.3\n")
    return where / "bin" / "python"
