"""The role of a file in its repository, from where it sits: library code, tests, or documentation."""

from __future__ import annotations

LIBRARY, TEST, DOCS = "library", "test", "docs"
_DOC_DIRS = frozenset(
    {
        "doc",
        "docs",
        "documentation",
        "example",
        "examples",
        "galleries",
        "tutorials",
        "benchmarks",
        "asv_bench",
    }
)


def path_role(path: str) -> str:
    """``test`` for test code, ``docs`` for documentation, examples and benchmarks, else ``library``.

    Decided by where the file sits, not by the word "test": ``django/test/client.py`` and
    ``sphinx/testing/fixtures.py`` are library code that users import. A test is a file under a
    directory named ``tests``, under a top-level ``test/`` or ``testing/`` directory (outside the
    package), or a file named ``test_*.py``, ``*_test.py``, ``*_tests.py`` or ``conftest.py``.
    """
    *directories, name = path.split("/")
    stem = name.rsplit(".", 1)[0]
    if "tests" in directories or (directories and directories[0] in ("test", "testing")):
        return TEST
    if stem.startswith("test_") or stem.endswith(("_test", "_tests")) or stem == "conftest":
        return TEST
    if any(directory in _DOC_DIRS for directory in directories):
        return DOCS
    return LIBRARY
