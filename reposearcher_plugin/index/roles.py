"""The role of a file in its repository, from where it sits: library code, tests, documentation, code
copied in from another project (vendored, bundled or minified), or type stubs."""

from __future__ import annotations

import re

LIBRARY, TEST, DOCS, VENDORED, STUB = "library", "test", "docs", "vendored", "stub"
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
# Directories that hold another project's code, copied in (``astropy/extern/ply``,
# ``sklearn/externals/_arff.py``, ``django/contrib/admin/static/admin/js/vendor``): the repository's own
# changes rarely land there (7 of 5,717 commits mined from the 12 SWE-bench repositories).
_VENDORED_DIRS = frozenset(
    {"vendor", "vendored", "_vendor", "third_party", "thirdparty", "extern", "externals"}
)
# Bundled or minified builds of browser libraries, wherever they sit (Sphinx themes ship jquery.js and
# underscore.js): long files of generated-looking code that match every word of an issue somewhere.
_BUNDLED_FILE = re.compile(r"(?:^|[.-])min\.js$|^(?:jquery|underscore|lodash)\b.*\.js$", re.I)


def path_role(path: str) -> str:
    """``test`` for test code, ``docs`` for documentation, examples and benchmarks, ``vendored`` for code
    copied from elsewhere, ``stub`` for a type stub (``.pyi``), else ``library``.

    Decided by where the file sits, not by the word "test": ``django/test/client.py`` and
    ``sphinx/testing/fixtures.py`` are library code that users import. A test is a file under a
    directory named ``tests``, under a top-level ``test/`` or ``testing/`` directory (outside the
    package), or a file named ``test_*.py``, ``*_test.py``, ``*_tests.py`` or ``conftest.py``. Vendored
    code is a file under a ``vendor``, ``vendored``, ``_vendor``, ``third_party``, ``thirdparty``,
    ``extern`` or ``externals`` directory, or a bundled browser library (``*.min.js``, ``jquery*.js``,
    ``underscore*.js``, ``lodash*.js``). The roles are tried in that order: a test of vendored code is a
    test, a stub under ``extern/`` is vendored.
    """
    *directories, name = path.split("/")
    stem = name.rsplit(".", 1)[0]
    if "tests" in directories or (directories and directories[0] in ("test", "testing")):
        return TEST
    if stem.startswith("test_") or stem.endswith(("_test", "_tests")) or stem == "conftest":
        return TEST
    if any(directory in _DOC_DIRS for directory in directories):
        return DOCS
    if any(directory in _VENDORED_DIRS for directory in directories) or _BUNDLED_FILE.search(name):
        return VENDORED
    if name.endswith(".pyi"):
        return STUB
    return LIBRARY
