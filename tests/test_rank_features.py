"""Features of the default ranking for its known failure classes (issue 15, item 3): special methods that
operators and builtins imply, a class that lacks the method an issue asks for, inherited methods, one
call-graph hop, and vendored code and type stubs demoted; on small made-up repositories."""

from __future__ import annotations

import pytest

from reposearcher_plugin.index import path_role
from reposearcher_plugin.rank import RetrievalLocalizer, extract_mentions

ORDERED_SET = '''
    class OrderedSet:
        """A set that keeps the order in which items were added."""

        def __init__(self, iterable=None):
            self.dict = dict.fromkeys(iterable or ())

        def add(self, item):
            self.dict[item] = None

        def remove(self, item):
            del self.dict[item]

        def discard(self, item):
            self.dict.pop(item, None)

        def __iter__(self):
            return iter(self.dict)

        def __contains__(self, item):
            return item in self.dict

        def __bool__(self):
            return bool(self.dict)

        def __len__(self):
            return len(self.dict)
    '''

VECTOR = '''
    class Vector:
        """A point in the plane."""

        def __init__(self, x, y):
            self.x = x
            self.y = y

        def __add__(self, other):
            return Vector(self.x + other.x, self.y + other.y)

        def __mul__(self, factor):
            return Vector(self.x * factor, self.y)

        def __eq__(self, other):
            return (self.x, self.y) == (other.x, other.y)

        def __repr__(self):
            return f"Vector({self.x}, {self.y})"

        def norm(self):
            return (self.x**2 + self.y**2) ** 0.5
    '''

FIELDS = '''
    class Field:
        """A form field: cleans and validates one value."""

        def clean(self, value):
            value = self.to_python(value)
            self.validate(value)
            return value

        def to_python(self, value):
            return value

        def validate(self, value):
            if value in (None, ""):
                raise ValueError("This field is required.")


    class CharField(Field):
        """A text field."""

        strip = True
    '''

OTHER_CLEANS = '''
    class Form:
        def clean(self):
            return self.cleaned_data


    class Serializer:
        def clean(self, value):
            """Return the value without spaces."""
            return value.strip()
    '''


def test_operators_builtins_and_words_imply_special_methods():
    issue = (
        "Scaling and comparing vectors\n\n```python\nv = Vector(1, 2) * 3\nassert v == Vector(3, 6)\n"
        "for item in reversed(s):\n    print(len(s), s[0])\n```\nAlso `a ** b`; prose - dashes / slashes * stars."
    )
    dunders = extract_mentions(issue).dunders
    assert {"__mul__", "__eq__", "__reversed__", "__len__", "__iter__", "__getitem__", "__pow__"} <= set(
        dunders
    )
    assert "__sub__" not in dunders and "__truediv__" not in dunders  # operators in prose are not read


def test_what_python_says_a_class_lacks_is_read():
    mentions = extract_mentions(
        "TypeError: 'OrderedSet' object is not reversible\n"
        "AttributeError: 'QuerySet' object has no attribute 'explain'"
    )
    assert mentions.missing == [("OrderedSet", "__reversed__"), ("QuerySet", "explain")]
    assert "__reversed__" in mentions.dunders
    assert extract_mentions("Add reversed() support to OrderedSet").asks_to_add
    assert not extract_mentions("OrderedSet crashes on an empty list").asks_to_add


def test_an_operator_in_the_issue_marks_the_mentioned_class_s_special_method(make_index):
    # a feature column for the learned ranker; the hand-set rules give it no weight (scoring.Weights)
    index = make_index({"geometry/__init__.py": "", "geometry/vector.py": VECTOR})
    issue = "Scaling a Vector gives a wrong y\n\n```python\nprint(Vector(1, 2) * 3)\n```\nprints Vector(3, 2)"
    signals = RetrievalLocalizer(index).signals(issue)
    marked = [
        entity
        for entity, value in zip(signals.ids, signals.features["operator_mention"], strict=True)
        if value
    ]
    assert marked == ["geometry/vector.py::Vector.__mul__"]


def test_a_class_asked_to_gain_a_method_ranks_above_its_methods(make_index):
    index = make_index({"utils/__init__.py": "", "utils/datastructures.py": ORDERED_SET})
    issue = (
        "Allow calling reversed() on an OrderedSet\n\nCurrently, OrderedSet isn't reversible, though it is "
        "ordered. Add a __reversed__ method to OrderedSet.\n\n"
        "```python\nreversed(OrderedSet([1, 2, 3]))\n```\nTypeError: 'OrderedSet' object is not reversible\n"
    )
    ranking = RetrievalLocalizer(index).rank(issue)
    assert ranking.locations[0] == "utils/datastructures.py::OrderedSet"


def test_a_mentioned_subclass_s_inherited_method_is_its_base_s(make_index):
    index = make_index(
        {
            "forms/__init__.py": "",
            "forms/fields.py": FIELDS,
            "other/__init__.py": "",
            "other/misc.py": OTHER_CLEANS,
        }
    )
    issue = "`CharField.clean()` returns the stripped value\n\nCalling CharField().clean(' x ') drops spaces."
    ranking = RetrievalLocalizer(index).rank(issue)
    assert ranking.locations[0] == "forms/fields.py::Field.clean"


def test_bases_are_read_from_the_class_header(make_index):
    index = make_index({"forms/__init__.py": "", "forms/fields.py": FIELDS})
    localizer = RetrievalLocalizer(index)
    maps = localizer.maps
    (char_field,) = maps.docs_named("CharField")
    assert [maps.ids[base] for base in maps.bases(char_field)] == ["forms/fields.py::Field"]
    (field,) = maps.docs_named("Field")
    assert maps.bases(field) == []


def test_one_call_graph_hop_marks_the_helpers_and_the_callers_of_a_mentioned_function(make_index):
    # feature columns for the learned ranker; the hand-set rules give them no weight (scoring.Weights)
    index = make_index(
        {
            "http/__init__.py": "",
            "http/multipart.py": '''
                def parse_header(line):
                    """Read a Content-Type or Content-Disposition line."""
                    key, _, rest = line.partition(";")
                    return key.strip(), _split_params(rest)


                def _split_params(rest):
                    out = {}
                    for item in rest.split(";"):
                        name, _, value = item.partition("=")
                        out[name.strip()] = value
                    return out


                def format_header(key, params):
                    """Write a header line back from its key and parameters."""
                    return key + "".join(f"; {name}={value}" for name, value in params.items())


                def header_length(key, params):
                    """The length of a header line."""
                    return len(format_header(key, params))
                ''',
        }
    )
    issue = (
        "format_header() drops a parameter\n\n`format_header('form-data', {'name': 'a'})` gives 'form-data'"
    )
    signals = RetrievalLocalizer(index).signals(issue)

    def marked(feature: str) -> list[str]:
        return [entity for entity, value in zip(signals.ids, signals.features[feature], strict=True) if value]

    assert marked("callee") == []  # it calls nothing of the repository's
    assert marked("caller") == ["http/multipart.py::header_length"]
    signals = RetrievalLocalizer(index).signals("parse_header() splits a quoted value")
    assert marked("callee") == ["http/multipart.py::_split_params"]
    assert marked("caller") == []


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("astropy/extern/ply/yacc.py", "vendored"),
        ("sklearn/externals/_arff.py", "vendored"),
        ("django/contrib/admin/static/admin/js/vendor/jquery/jquery.js", "vendored"),
        ("sphinx/themes/basic/static/jquery-3.5.1.js", "vendored"),
        ("sphinx/themes/basic/static/underscore.js", "vendored"),
        ("pkg/static/app.min.js", "vendored"),
        ("pkg/static/admin.js", "library"),
        ("lib/matplotlib/pyplot.pyi", "stub"),
        ("astropy/extern/tests/test_ply.py", "test"),
        ("pkg/external.py", "library"),
        ("pkg/minimal.js", "library"),
    ],
)
def test_vendored_code_and_stubs_have_their_own_roles(path, role):
    assert path_role(path) == role


def test_stubs_and_vendored_copies_rank_below_the_library_code(make_index):
    source = '''
        def set_linewidth(width):
            """Set the line width of the artist in points."""
            if width is None:
                width = rcParams["lines.linewidth"]
            self._linewidth = float(width)
            self.stale = True
        '''
    # a stub is short, so its words weigh more in BM25; a vendored copy sorts first on a tie
    stub = 'def set_linewidth(width: float) -> None:\n    """Set the line width of the artist in points."""\n'
    index = make_index(
        {
            "lib/__init__.py": "",
            "lib/artist.py": source,
            "lib/artist.pyi": stub,
            "lib/_vendor/artist.py": source,
        }
    )
    ranking = RetrievalLocalizer(index).rank("`set_linewidth` ignores the width of the artist")
    assert ranking.files[0] == "lib/artist.py"
    assert ranking.locations[0] == "lib/artist.py::set_linewidth"
