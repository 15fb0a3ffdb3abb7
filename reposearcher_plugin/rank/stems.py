"""Word stems for matching an issue's words to identifier words across inflections and derivations
(``serialization`` ~ ``serialize`` ~ ``serializable`` ~ ``serializer``, ``palettes`` ~ ``palette``,
``parsing`` ~ ``parse``): :func:`word_stem` strips the longest known suffix that leaves a stem of
``MIN_STEM`` letters or more. A suffix list, not a full Porter stemmer: identifiers are short and
mostly English, and what matters is that two forms of one word meet, not that the stem is a word.
Each call is a few ``endswith`` tests on a lowercased token, so stemming a text is linear in it."""

from __future__ import annotations

from functools import lru_cache

from reposearcher_plugin.tools.tokens import STOPWORDS, split_identifier

# A stem keeps at least this many letters: shorter ones join unrelated words (``used``/``user``).
MIN_STEM = 4

# Longest first, so that ``izations`` is cut whole and not as ``s``.
_SUFFIXES = tuple(
    sorted(
        {
            "izations",
            "isations",
            "ization",
            "isation",
            "izables",
            "izable",
            "izers",
            "izer",
            "izing",
            "ized",
            "izes",
            "ize",
            "isers",
            "iser",
            "ising",
            "ised",
            "ises",
            "ise",
            "abilities",
            "ability",
            "ables",
            "able",
            "ibles",
            "ible",
            "ations",
            "ation",
            "ions",
            "ion",
            "ings",
            "ing",
            "ments",
            "ment",
            "ness",
            "ities",
            "ity",
            "ies",
            "ers",
            "er",
            "ors",
            "or",
            "ed",
            "es",
            "s",
            "ally",
            "ly",
            "al",
            "ive",
            "ates",
            "ated",
            "ating",
            "ators",
            "ator",
            "ate",
            "y",
            "e",
        },
        key=len,
        reverse=True,
    )
)


# The suffixes by their last letter, longest first: a word is tried only against those it can end with,
# a few instead of fifty (a pasted log of 25,000 distinct words is stemmed in a tenth of the time).
_BY_LAST_LETTER: dict[str, tuple[str, ...]] = {}
for _suffix in _SUFFIXES:
    _BY_LAST_LETTER[_suffix[-1]] = (*_BY_LAST_LETTER.get(_suffix[-1], ()), _suffix)


@lru_cache(maxsize=65536)
def word_stem(word: str) -> str:
    """``word`` (a lowercased token) with its longest known suffix cut, again until none is left that
    leaves MIN_STEM letters: one stem for every form (``serial``, ``serialize`` and ``serialization`` all
    give ``seri``), so that ``word_stem(word_stem(w)) == word_stem(w)``."""
    stem = word
    cut = True
    while cut and len(stem) > MIN_STEM:
        cut = False
        for suffix in _BY_LAST_LETTER.get(stem[-1], ()):
            if stem.endswith(suffix) and len(stem) - len(suffix) >= MIN_STEM:
                stem = stem[: -len(suffix)]
                cut = True
                break
    return stem


def stems_of(tokens: list[str] | set[str]) -> set[str]:
    """The stems of ``tokens``, each once."""
    return {word_stem(token) for token in set(tokens)}


@lru_cache(maxsize=65536)
def name_stems(name: str) -> tuple[str, ...]:
    """The stems of an identifier's words (``serialize_field`` -> serial, field), stopwords and
    one-letter words left out."""
    words = split_identifier(name)
    return tuple(word_stem(word) for word in words if word not in STOPWORDS and len(word) > 1)
