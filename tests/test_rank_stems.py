"""Word stems and the ranking features made from them (issue 15, item 3): ``name_words`` (a definition
named in the issue's words, any form of them), the file-level ``module_name`` (a file whose module name
the title spells), and ``bm25_prose`` (BM25 of the issue without what it pastes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reposearcher_plugin.rank import RetrievalLocalizer
from reposearcher_plugin.rank.maps import module_name_words
from reposearcher_plugin.rank.mentions import _FENCE, prose_of
from reposearcher_plugin.rank.stems import _SUFFIXES, MIN_STEM, name_stems, word_stem

SERIALIZERS = '''
    def to_json(value):
        """Write a value as JSON text."""
        return str(value)


    class Serializer:
        """Turns records into text."""

        def serialize_record(self, record):
            return to_json(record)

        def render(self, record):
            return to_json(record)
    '''

PALETTES = '''
    def color_list(n):
        """Evenly spaced colors."""
        return [i / n for i in range(n)]
    '''

PLOTS = '''
    def plot_colors(n):
        """Plot colors."""
        return [i / n for i in range(n)]


    def draw_colors(n):
        """Draw colors."""
        return [i / n for i in range(n)]
    '''


def test_the_forms_of_a_word_share_its_stem():
    forms = ["serial", "serialize", "serialized", "serializes", "serialization", "serializable", "serializer"]
    assert {word_stem(form) for form in forms} == {"seri"}
    assert word_stem("palettes") == word_stem("palette")
    assert word_stem("parsing") == word_stem("parse") == word_stem("parsed")
    assert word_stem("validation") == word_stem("validator") == word_stem("validate")


def test_short_words_keep_enough_letters_to_stay_apart():
    assert word_stem("used") != word_stem("user")
    assert word_stem("is") == "is"
    assert word_stem("") == ""


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=30))
def test_a_stem_is_a_prefix_of_its_word_and_stemming_it_again_changes_nothing(word):
    stem = word_stem(word)
    assert word.startswith(stem)
    assert len(stem) >= min(len(word), MIN_STEM)
    assert word_stem(stem) == stem


def _stem_by_every_suffix(word: str) -> str:
    """word_stem as first written: every suffix tried, longest first, until none is cut."""
    stem = word
    while True:
        suffix = next(
            (end for end in _SUFFIXES if stem.endswith(end) and len(stem) - len(end) >= MIN_STEM), None
        )
        if suffix is None:
            return stem
        stem = stem[: -len(suffix)]


@given(
    st.lists(st.sampled_from(["ser", "ial", "iz", "ation", "able", "s", "e", "ed", "ing", "y", "ly", "or"]))
)
def test_stems_by_last_letter_are_those_of_every_suffix(pieces):
    word = "".join(pieces)
    assert word_stem(word) == _stem_by_every_suffix(word)


def test_an_identifier_s_name_stems_leave_out_stopwords_and_single_letters():
    assert name_stems("serialize_the_record") == ("seri", "record")
    assert name_stems("toJSON") == ("json",)  # "to" is a stopword
    assert name_stems("x") == ()


def test_module_names_are_a_file_s_name_or_its_package_s():
    assert module_name_words("seaborn/palettes.py") == ("palett",)
    assert module_name_words("sphinx/domains/python/__init__.py") == ("python",)
    assert module_name_words("pkg/io.py") == ()  # too short to be told from a word of prose
    assert module_name_words("pylint/extensions/while_used.py") == ("used",)  # "while" is a stopword


def test_prose_leaves_out_fenced_indented_repl_shell_and_traceback_lines():
    issue = (
        "Title words\n"
        "The user says this.\n"
        "```\nprinted output\n```\n"
        "    indented code\n"
        ">>> repl_input()\n"
        "$ shell command\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "E   AssertionError\n"
        "And then this."
    )
    assert prose_of(issue).split("\n") == ["Title words", "The user says this.", "", "", "And then this."]


def test_a_definition_named_in_other_forms_of_the_issue_s_words_gets_name_words(make_index):
    index = make_index({"records/__init__.py": "", "records/serializers.py": SERIALIZERS})
    signals = RetrievalLocalizer(index).signals("Record serialization drops fields\n\nIt loses data.")
    value = dict(zip(signals.ids, signals.features["name_words"], strict=True))
    assert value["records/serializers.py::Serializer.serialize_record"] == 1.0  # seri + record
    assert value["records/serializers.py::Serializer"] == 1.0
    assert value.get("records/serializers.py::Serializer.render", 0.0) == 0.0


def test_a_file_whose_module_name_the_title_spells_gets_module_name(make_index):
    index = make_index({"pkg/__init__.py": "", "pkg/palettes.py": PALETTES, "pkg/plots.py": PLOTS})
    signals = RetrievalLocalizer(index).signals("Move palette functions into their own module\n\ncolors")
    assert signals.file_features["pkg/palettes.py"]["module_name"] == 1.0
    assert "module_name" not in signals.file_features.get("pkg/plots.py", {})
    assert signals.evidence["module_names"] == {"pkg/palettes.py": 1.0}
    # the body does not name modules: every change list names many
    signals = RetrievalLocalizer(index).signals("Move functions\n\nthe palette ones")
    assert "module_name" not in signals.file_features.get("pkg/palettes.py", {})


def test_bm25_prose_is_bm25_without_the_pasted_output(make_index):
    index = make_index({"pkg/__init__.py": "", "pkg/palettes.py": PALETTES, "pkg/plots.py": PLOTS})
    localizer = RetrievalLocalizer(index)
    plain = localizer.signals("colors are wrong\n\nthe colors")
    assert list(plain.features["bm25_prose"]) == list(plain.features["bm25"])  # nothing pasted
    pasted = localizer.signals("colors are wrong\n\n```\ndraw plot draw plot\n```\n")
    prose = dict(zip(pasted.ids, pasted.features["bm25_prose"], strict=True))
    whole = dict(zip(pasted.ids, pasted.features["bm25"], strict=True))
    # the pasted words lift draw_colors in the whole issue's BM25 only
    draw, color = "pkg/plots.py::draw_colors", "pkg/palettes.py::color_list"
    assert whole[draw] / whole[color] > prose[draw] / prose[color]


@given(
    st.lists(
        st.sampled_from(["`", "```", "\n", " ", "    ", "\t", ">>>", "...", "$ ", "E ", 'File "', "a"])
    ).map("".join)
)
def test_prose_is_some_of_the_issue_s_lines_in_order(text):
    lines = iter(_FENCE.sub("\n", text).split("\n"))
    prose = prose_of(text)
    for line in prose.split("\n") if prose else []:
        assert any(line == other for other in lines)  # a subsequence: consumed in order


def test_huge_hostile_issue_text(make_index):
    # each piece once per line is linear; a scan from every line to the text's end would take minutes
    # here (the time budgets are eval/bench_hostile_text.py's)
    index = make_index({"pkg/__init__.py": "", "pkg/palettes.py": PALETTES, "pkg/plots.py": PLOTS})
    localizer = RetrievalLocalizer(index)
    unclosed_fences = "palettes " + "```\n    >>> serialization_" * 20_000
    one_word = "palettes\n" + "serializations" * 40_000
    deep = "palettes\n" + "(" * 100_000 + "colors" + ")" * 100_000
    for issue in (unclosed_fences, one_word, deep):
        signals = localizer.signals(issue)
        assert signals.file_features["pkg/palettes.py"]["module_name"] == 1.0
        assert len(prose_of(issue)) <= len(issue)


def test_a_package_s_init_module_is_named_by_its_dotted_path(make_index):
    # "remove a check from `astropy.__init__`": the package's own file, not every module under it
    index = make_index({"pkg/__init__.py": "def setup():\n    pass\n", "pkg/sub.py": PALETTES})
    maps = RetrievalLocalizer(index).maps
    assert maps.match_module("pkg.__init__") == ("pkg/__init__.py", "")
    assert maps.match_module("pkg.__init__.setup") == ("pkg/__init__.py", "setup")
    assert maps.match_module("pkg.sub") == ("pkg/sub.py", "")
