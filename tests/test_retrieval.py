"""The retrieval localizer (the no-LLM default) and its plain-BM25 baseline, on small made-up repositories."""

from __future__ import annotations

import json

import pytest

from reposearcher_plugin.index import path_role
from reposearcher_plugin.rank import (
    DEFAULT_WEIGHTS,
    FEATURES,
    Ranking,
    RetrievalLocalizer,
    extract_mentions,
    rank_signals,
)
from reposearcher_plugin.tools import RepoTools

QUERYSET = '''
    """Query sets."""


    class QuerySet:
        """A lazy database lookup for a set of objects."""

        def union(self, *other_qs, all=False):
            """Combine the results of several query sets with SQL UNION."""
            return self._combinator_query("union", *other_qs, all=all)

        def intersection(self, *other_qs):
            """Keep the rows that every query set has (SQL INTERSECT)."""
            return self._combinator_query("intersection", *other_qs)

        def order_by(self, *field_names):
            """Sort the results by the given fields."""
            obj = self._chain()
            obj.query.add_ordering(*field_names)
            return obj

        def _combinator_query(self, combinator, *other_qs, all=False):
            clone = self._chain()
            clone.query.clear_ordering(force=True)
            clone.query.combinator = combinator
            return clone
    '''

COMPILER = '''
    class SQLCompiler:
        def get_combinator_sql(self, combinator, all):
            """Compile the parts of a combined query: union ordering and limits."""
            parts = []
            for query in self.query.combined_queries:
                parts.append(query.get_compiler().as_sql())
            if self.query.ordering:
                raise DatabaseError("ORDER BY not allowed in subqueries of compound statements.")
            return parts

        def as_sql(self):
            return "SELECT"
    '''

REPO = {
    "lib/__init__.py": "",
    "lib/db/__init__.py": "",
    "lib/db/query.py": QUERYSET,
    "lib/db/compiler.py": COMPILER,
    "lib/http/__init__.py": "",
    "lib/http/cookies.py": '''
        def parse_cookie(cookie):
            """Parse a Cookie header into a dict of names and values."""
            return dict(pair.split("=", 1) for pair in cookie.split(";"))
        ''',
    "tests/__init__.py": "",
    "tests/test_query.py": '''
        from lib.db.query import QuerySet


        class UnionOrderingTests:
            def test_union_ordering(self):
                """union with ordering of combined query sets."""
                QuerySet().union(QuerySet()).order_by("name")
        ''',
}


@pytest.fixture
def repo(make_index):
    return make_index(REPO)


def test_traceback_frame_function_ranks_first(repo):
    issue = """Crash when ordering a combined query

    Traceback (most recent call last):
      File "/home/me/app/views.py", line 10, in index
        rows = list(qs)
      File "/usr/lib/python3.11/site-packages/lib/db/query.py", line 9, in union
        return self._combinator_query("union", *other_qs, all=all)
      File "/usr/lib/python3.11/site-packages/lib/db/compiler.py", line 8, in get_combinator_sql
        raise DatabaseError("ORDER BY not allowed in subqueries of compound statements.")
    DatabaseError: ORDER BY not allowed in subqueries of compound statements.
    """
    ranking = RetrievalLocalizer(repo).rank(issue)
    assert ranking.locations[0] == "lib/db/compiler.py::SQLCompiler.get_combinator_sql"
    assert ranking.files[0] == "lib/db/compiler.py"
    assert "lib/db/query.py" in ranking.files[:2]
    frames = ranking.evidence["frames"]
    # the user's own file is not in the repository; the in-repository frames are, deepest weighing most
    assert [frame["file"] for frame in frames] == ["lib/db/query.py", "lib/db/compiler.py"]
    assert frames[1]["entity"] == "lib/db/compiler.py::SQLCompiler.get_combinator_sql"
    assert frames[1]["weight"] > frames[0]["weight"]


def test_pytest_style_frame_is_read(repo):
    issue = "Fails\n\nlib/db/compiler.py:8: in get_combinator_sql\n    raise DatabaseError\nE   DatabaseError"
    ranking = RetrievalLocalizer(repo).rank(issue)
    assert ranking.locations[0] == "lib/db/compiler.py::SQLCompiler.get_combinator_sql"


def test_exact_mention_of_class_method_ranks_it_first(repo):
    issue = "`QuerySet.intersection()` returns rows that only one of the query sets has."
    ranking = RetrievalLocalizer(repo).rank(issue)
    assert ranking.locations[0] == "lib/db/query.py::QuerySet.intersection"
    assert ranking.evidence["qualified_names"]["QuerySet.intersection"] == [
        "lib/db/query.py::QuerySet.intersection"
    ]


def test_module_path_mention_points_at_its_file(repo):
    issue = "Something about lib.http.cookies is wrong with names and values."
    ranking = RetrievalLocalizer(repo).rank(issue)
    assert ranking.files[0] == "lib/http/cookies.py"
    assert ranking.locations[0] == "lib/http/cookies.py::parse_cookie"


def test_test_files_are_demoted_below_library_code_with_the_same_text(make_index):
    body = '''
        def render_widget(widget):
            """Render the widget markup with its attributes."""
            return widget.markup()
        '''
    index = make_index({"pkg/__init__.py": "", "pkg/widgets.py": body, "tests/test_widgets.py": body})
    issue = "render_widget drops the markup attributes of a widget"
    ranking = RetrievalLocalizer(index).rank(issue)
    assert ranking.locations[:2] == ["pkg/widgets.py::render_widget", "tests/test_widgets.py::render_widget"]
    assert ranking.files[0] == "pkg/widgets.py"


def test_library_test_helpers_are_not_demoted(make_index):
    body = '''
        class Client:
            """A test client that sends requests to the application."""

            def request(self, path):
                """Send a request to the path and return the response."""
                return path
        '''
    index = make_index(
        {
            "django/__init__.py": "",
            "django/test/__init__.py": "",
            "django/test/client.py": body,
            "tests/test_client.py": body,
        }
    )
    ranking = RetrievalLocalizer(index).rank("The test Client request returns the wrong response for a path")
    assert ranking.files[0] == "django/test/client.py"
    assert ranking.locations[0].startswith("django/test/client.py::")


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("django/test/client.py", "library"),
        ("sphinx/testing/fixtures.py", "library"),
        ("lib/matplotlib/testing/decorators.py", "library"),
        ("tests/test_client.py", "test"),
        ("testing/test_terminal.py", "test"),
        ("test/unit/helpers.py", "test"),
        ("sklearn/linear_model/tests/test_ridge.py", "test"),
        ("sympy/core/tests/test_basic.py", "test"),
        ("src/pkg/conftest.py", "test"),
        ("pkg/module_test.py", "test"),
        ("docs/conf.py", "docs"),
        ("examples/plot_thing.py", "docs"),
        ("pkg/contest.py", "library"),
        ("pkg/latest.py", "library"),
    ],
)
def test_path_role_decides_by_place_not_by_word(path, role):
    assert path_role(path) == role


def test_plain_mode_is_bm25_alone_and_differs_from_default(repo):
    issue = "`QuerySet.intersection()` returns rows that only one of the query sets has."
    plain = RetrievalLocalizer(repo, plain=True).rank(issue)
    default = RetrievalLocalizer(repo).rank(issue)
    assert plain.evidence["mode"] == "plain-bm25"
    assert plain.locations != default.locations
    # plain ranks files by their best definition, tests included
    tools = RepoTools(repo)
    best = tools.search.documents[int(tools.search.scores(["query", "sets"]).argmax())]
    assert best[0] in RetrievalLocalizer(repo, tools, plain=True).rank("query sets").files[:1]


@pytest.mark.parametrize("issue", ["", "   \n\t", "!!! ??? ...", "zzzqqq xxyyzz", "🙂 ünïcödé ∑"])
@pytest.mark.parametrize("plain", [False, True])
def test_empty_or_garbage_issue_gives_an_empty_ranking(repo, issue, plain):
    ranking = RetrievalLocalizer(repo, plain=plain).rank(issue)
    assert isinstance(ranking, Ranking)
    assert ranking.locations == []
    assert ranking.files == []
    json.dumps(ranking.evidence)


def test_rank_limits_and_ids_are_unique_and_known(repo):
    issue = "union ordering of combined query sets, intersection and order_by"
    tools = RepoTools(repo)
    ranking = RetrievalLocalizer(repo, tools).rank(issue, max_files=2, max_locations=3)
    assert len(ranking.files) <= 2
    assert len(ranking.locations) == 3
    assert len(set(ranking.locations)) == 3
    assert all(tools.location_exists(location) for location in ranking.locations)


def test_evidence_is_json_serialisable_and_explains_the_ranking(repo):
    issue = """`QuerySet.union` in lib/db/query.py loses the ordering

    File "lib/db/compiler.py", line 8, in get_combinator_sql
    """
    ranking = RetrievalLocalizer(repo).rank(issue)
    evidence = json.loads(json.dumps(ranking.evidence))
    assert evidence["mode"] == "default"
    assert evidence["paths"] == {"lib/db/query.py": ["lib/db/query.py"]}
    assert evidence["frames"][0]["entity"] == "lib/db/compiler.py::SQLCompiler.get_combinator_sql"
    assert evidence["top"][0]["id"] == ranking.locations[0]
    assert set(evidence["top"][0]) <= {"id", "score", *FEATURES}
    assert evidence["weights"]["traceback"] == DEFAULT_WEIGHTS.traceback


def test_signals_rescore_without_the_index(repo):
    issue = "`QuerySet.intersection()` returns rows that only one of the query sets has."
    localizer = RetrievalLocalizer(repo)
    signals = localizer.signals(issue)
    assert rank_signals(signals).locations == localizer.rank(issue).locations


def test_extract_mentions_reads_names_paths_and_frames():
    issue = """`QuerySet.union()` in django/db/models/query.py breaks; see django.db.models.sql.compiler.

    ```python
    qs1.union(qs2).order_by('name')
    ```
    File "/venv/lib/site-packages/django/db/models/sql/compiler.py", line 420, in get_combinator_sql
    """
    mentions = extract_mentions(issue)
    assert "QuerySet.union" in mentions.dotted
    assert "django.db.models.sql.compiler" in mentions.dotted
    assert "django/db/models/query.py" in mentions.paths
    assert mentions.frames == [
        ("/venv/lib/site-packages/django/db/models/sql/compiler.py", 420, "get_combinator_sql")
    ]
    assert {"QuerySet", "union", "order_by", "get_combinator_sql"} <= set(mentions.names)
    assert "breaks" not in mentions.names  # prose is left to BM25


def test_quoted_error_message_points_at_the_code_that_raises_it(make_index):
    index = make_index(
        {
            "pkg/__init__.py": "",
            "pkg/parse.py": """
                def read_line(line):
                    if not line.startswith("#"):
                        raise ValueError(f"Unrecognized header line: {line!r}")
                    return line


                def read_all(lines):
                    return [read_line(line) for line in lines]
                """,
        }
    )
    issue = "Reading a file fails\n\n    ValueError: Unrecognized header line: 'abc'\n"
    ranking = RetrievalLocalizer(index).rank(issue)
    assert ranking.locations[0] == "pkg/parse.py::read_line"
    assert ranking.evidence["messages"] == {"Unrecognized header line": ["pkg/parse.py::read_line"]}


def test_python_builtin_messages_are_not_searched():
    issue = "AttributeError: 'NoneType' object has no attribute 'read'\nValueError: Invalid IPv6 URL"
    assert extract_mentions(issue).messages == ["Invalid IPv6 URL"]


def test_ipython_frames_are_read():
    issue = (
        "File ~/src/seaborn/_core/plot.py:1254, in Plotter._setup_scales(self, p)\n"
        "~/venv/site-packages/django/db/models/query_utils.py in __and__(self, other)\n"
    )
    assert extract_mentions(issue).frames == [
        ("~/src/seaborn/_core/plot.py", 1254, "Plotter._setup_scales"),
        ("~/venv/site-packages/django/db/models/query_utils.py", 0, "__and__"),
    ]


def test_a_long_issue_is_cut_and_the_evidence_says_so(make_index, monkeypatch):
    """Past MAX_RANKED_ISSUE_CHARS only the head is ranked (issue 12, item 4): every localizer that ranks
    (CLI, MCP ``localize``, the OpenHands hook, batch runs) goes through RetrievalLocalizer.rank."""
    from reposearcher_plugin.agent.localizers import RankingLocalizer
    from reposearcher_plugin.rank import mentions

    index = make_index({"pkg/__init__.py": "", "pkg/query.py": QUERYSET})
    head = "QuerySet.union() drops the ordering\n"
    tail = "log line with union intersection order_by\n" * 200  # 8,600 characters
    monkeypatch.setattr(mentions, "MAX_RANKED_ISSUE_CHARS", 2_000)
    for plain in (False, True):
        ranking = RetrievalLocalizer(index, plain=plain).rank(head + tail)
        cut = ranking.evidence["issue_cut"]
        assert cut["issue_chars"] == len(head + tail) and 1_500 <= cut["ranked_chars"] <= 2_000
        assert "only its first" in cut["note"] and (head + tail)[cut["ranked_chars"]] == "\n"
        assert "issue_cut" not in RetrievalLocalizer(index, plain=plain).rank(head).evidence
    result = RankingLocalizer("retrieval-rules").localize(index, head + tail, instance_id="long")
    assert result.trajectory.evidence["issue_cut"]["issue_chars"] == len(head + tail)
    assert result.locations[0] == "pkg/query.py::QuerySet.union"
