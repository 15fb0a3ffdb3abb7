"""Python extraction: every construct the index promises, with exact ids, kinds and spans."""

from __future__ import annotations

import pytest

from reposearcher_plugin.index import CLASS, FUNCTION, METHOD, Import, Variable

SOURCE = '''
"""Module docstring."""
import os
import os.path as osp, sys
from . import sibling
from .. import parent_mod
from .pkg.inner import thing as alias, other
from __future__ import annotations
from typing import *

LIMIT = 10
a, b = 1, 2
typed: int = 3


def top(x):
    """Top-level function."""

    def inner():
        def deepest():
            return 1

        return deepest

    return inner


async def fetch(url):
    return url


@decorator
@other.decorator(arg=1)
def decorated():
    pass


class Outer(Base):
    """An outer class."""

    attr = 1

    class Inner:
        def method(self):
            class Local:
                def local_method(self):
                    pass

            return Local

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, new):
        self._value = new

    @value.deleter
    def value(self):
        del self._value

    async def run(self):
        pass

    @staticmethod
    def helper():
        pass
    # a trailing comment is not part of the class


if True:
    def conditional():
        pass
else:
    def conditional():
        pass

try:
    import fast_json as json
except ImportError:
    import json
'''


def _table(parse):
    return [(e.qualname, e.kind, e.start, e.end) for e in parse.entities]


def test_every_python_definition_with_exact_ids_kinds_and_spans(make_index):
    index = make_index({"pkg/mod.py": SOURCE})
    parse = index.files["pkg/mod.py"].parse
    assert parse.language == "python"
    assert _table(parse) == [
        ("top", FUNCTION, 15, 24),
        ("top.inner", FUNCTION, 18, 22),
        ("top.inner.deepest", FUNCTION, 19, 20),
        ("fetch", FUNCTION, 27, 28),
        ("decorated", FUNCTION, 31, 34),
        ("Outer", CLASS, 37, 67),
        ("Outer.Inner", CLASS, 42, 48),
        ("Outer.Inner.method", METHOD, 43, 48),
        ("Outer.Inner.method.Local", CLASS, 44, 46),
        ("Outer.Inner.method.Local.local_method", METHOD, 45, 46),
        ("Outer.value", METHOD, 50, 52),
        ("Outer.value", METHOD, 54, 56),
        ("Outer.value", METHOD, 58, 60),
        ("Outer.run", METHOD, 62, 63),
        ("Outer.helper", METHOD, 65, 67),
        ("conditional", FUNCTION, 72, 73),
        ("conditional", FUNCTION, 75, 76),
    ]
    by_start = {e.start: e for e in parse.entities}
    assert by_start[31].decorators == ("decorator", "other.decorator(arg=1)")
    assert [by_start[line].decorators for line in (50, 54, 58)] == [
        ("property",),
        ("value.setter",),
        ("value.deleter",),
    ]
    assert by_start[15].doc == "Top-level function."
    assert by_start[37].doc == "An outer class."
    assert by_start[27].doc == ""
    assert parse.syntax_errors == 0


def test_python_imports_and_module_level_assignments(make_index):
    parse = make_index({"pkg/mod.py": SOURCE}).files["pkg/mod.py"].parse
    assert parse.imports == (
        Import(2, "os", ()),
        Import(3, "os.path", ()),
        Import(3, "sys", ()),
        Import(4, ".", ("sibling",)),
        Import(5, "..", ("parent_mod",)),
        Import(6, ".pkg.inner", ("thing", "other")),
        Import(7, "__future__", ("annotations",)),
        Import(8, "typing", ("*",)),
        Import(79, "fast_json", ()),
        Import(81, "json", ()),
    )
    assert parse.variables == (
        Variable("LIMIT", 10),
        Variable("a", 11),
        Variable("b", 11),
        Variable("typed", 12),
    )


def test_relative_and_absolute_imports_resolve_to_repository_files(make_index):
    index = make_index(
        {
            "src/app/__init__.py": "",
            "src/app/models.py": "class Model: pass\n",
            "src/app/views/__init__.py": "",
            "src/app/views/detail.py": (
                "from . import helpers\n"
                "from .. import models\n"
                "from ..models import Model\n"
                "from app.views.helpers import render\n"
                "import app.models\n"
                "import requests\n"
            ),
            "src/app/views/helpers.py": "def render(): pass\n",
        }
    )
    path = "src/app/views/detail.py"
    resolved = [index.resolve_import(path, imp) for imp in index.files[path].parse.imports]
    assert resolved == [
        ["src/app/views/helpers.py"],
        ["src/app/models.py"],
        ["src/app/models.py"],
        ["src/app/views/helpers.py"],
        ["src/app/models.py"],
        [],
    ]


def test_same_named_classes_in_different_files_stay_apart(make_index):
    index = make_index(
        {
            "a/forms.py": "class Form:\n    def clean(self):\n        pass\n",
            "b/forms.py": "class Form:\n    def save(self):\n        pass\n",
        }
    )
    assert [(p, e.qualname) for p, e in index.methods("Form", "clean")] == [("a/forms.py", "Form.clean")]
    assert [(p, e.qualname) for p, e in index.methods("Form", "save")] == [("b/forms.py", "Form.save")]
    assert [p for p, _ in index.classes("Form")] == ["a/forms.py", "b/forms.py"]


def test_library_code_named_test_is_indexed_like_any_other(make_index):
    index = make_index(
        {
            "django/test/client.py": "class Client:\n    def get(self):\n        pass\n",
            "tests/test_client.py": "def test_get():\n    pass\n",
        }
    )
    assert set(index.files) == {"django/test/client.py", "tests/test_client.py"}
    assert [p for p, _ in index.methods("Client", "get")] == ["django/test/client.py"]


def test_qualified_lookups_and_enclosing_definition(make_index):
    index = make_index({"pkg/mod.py": SOURCE})
    assert [e.qualname for _, e in index.classes("Outer.Inner")] == ["Outer.Inner"]
    assert [e.qualname for _, e in index.functions("inner")] == ["top.inner"]
    assert index.enclosing("pkg/mod.py", 20).qualname == "top.inner.deepest"
    assert index.enclosing("pkg/mod.py", 40).qualname == "Outer"
    assert index.enclosing("pkg/mod.py", 10) is None


@pytest.mark.parametrize(
    "source",
    ["def helper():\n    return 1\n\n\ndef f():\n", "class Empty:\n", "def f():\n    # a comment only\n"],
)
def test_a_definition_with_an_empty_body_at_the_end_of_a_file_is_indexed(make_index, source):
    # tree-sitter recovers ``def f():`` at the end of a file with an empty body; reading its docstring
    # once raised IndexError and the whole file was skipped as "parse failed"
    index = make_index({"pkg/mod.py": source})
    assert "pkg/mod.py" in index.files and not index.skipped
    last = index.files["pkg/mod.py"].parse.entities[-1]
    assert last.name in ("f", "Empty") and last.doc == ""
