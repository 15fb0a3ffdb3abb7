"""The identifier-shaped words of a file, per definition: what reference lookups answer from.

A *word* is a maximal run of ASCII letters, digits and underscores that does not start with a digit: the
unit ``find_references`` has always matched (a whole word, in code, comments and strings alike), so
answering from these words gives exactly what scanning every line gave. Tree-sitter identifier nodes
would miss the words in comments, docstrings and strings, and change those answers.

Each word is attributed to the *owner* of the line it is on: the innermost definition whose span holds the
line, as ``repo_index.innermost`` picks it (the latest-starting one; of two starting on the same line, the
later in the file's entity order), or the module itself for lines outside every definition. A definition
therefore owns its own lines, not those of the definitions nested in it. The words are computed once per
file content, with its parse, and cached beside it (compressed: a tree's snapshot holds every file's
words and is read whole on each warm load; they are decoded only when a lookup first needs them).

Words are found in the bytes: a run of ASCII characters survives UTF-8 decoding with replacement
unchanged (a replaced byte is never ASCII), and no run crosses a "\\n", so the words of the bytes are the
words of the decoded lines the tools show.
"""

from __future__ import annotations

import heapq
import marshal
import re
import zlib
from collections.abc import Sequence
from itertools import accumulate

from reposearcher_plugin.index.model import Entity

_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPACE_OUTSIDE_WORDS = bytes(byte if byte in _WORD_BYTES else 0x20 for byte in range(256))
# a run that starts with a digit is a number or part of one (``0x1f``, ``2nd``): never an identifier
_DIGIT_LED = re.compile(rb"(?m)^[0-9][^\n]*\n")
MODULE_LEVEL = -1  # the owner of lines outside every definition


def owner_runs(entities: Sequence[Entity], line_total: int) -> list[tuple[int, int, int]]:
    """``(first line, last line, owner)`` covering lines 1..``line_total`` in order, where the owner is the
    position in ``entities`` of the innermost definition holding those lines, or ``MODULE_LEVEL``.

    The owner only changes where a definition starts or just after one ends, so this sweeps those
    boundaries with a heap of the definitions open there (O(d log d) for d definitions, whatever the
    file's length)."""
    if line_total <= 0:
        return []
    by_start = sorted(range(len(entities)), key=lambda position: (entities[position].start, position))
    boundaries = sorted({1, *(entity.start for entity in entities), *(entity.end + 1 for entity in entities)})
    boundaries = [line for line in boundaries if 1 <= line <= line_total]
    # open definitions as (-start, -position, end): the top is the latest-starting, later-listed one
    open_here: list[tuple[int, int, int]] = []
    pushed = 0
    runs = []
    for step, first in enumerate(boundaries):
        while pushed < len(by_start) and entities[by_start[pushed]].start <= first:
            position = by_start[pushed]
            heapq.heappush(open_here, (-entities[position].start, -position, entities[position].end))
            pushed += 1
        while open_here and open_here[0][2] < first:  # ended before this line: closed for good
            heapq.heappop(open_here)
        last = boundaries[step + 1] - 1 if step + 1 < len(boundaries) else line_total
        runs.append((first, last, -open_here[0][1] if open_here else MODULE_LEVEL))
    return runs


def words_by_owner(source: bytes, entities: Sequence[Entity]) -> tuple[str, ...]:
    """The words of ``source`` per owner: first the module level's, then each entity's, in the order of
    ``entities``; each as its distinct words in order of first occurrence, joined by "\n" ("" for none)."""
    line_lengths = list(map(len, source.split(b"\n")))
    if line_lengths[-1] == 0:  # a final "\n" starts no line (index/lines.py)
        line_lengths.pop()
    # the text of lines 1..n is source[:through[n - 1] + n - 1]: their lengths and the "\n"s between them
    through = list(accumulate(line_lengths))
    # every byte that cannot be in a word becomes a space, so a split() finds the runs (in C: several
    # times faster than a regular expression)
    spaced = source.translate(_SPACE_OUTSIDE_WORDS)
    pieces: list[list[bytes]] = [[] for _ in range(len(entities) + 1)]
    for first, last, owner in owner_runs(entities, len(line_lengths)):
        start = through[first - 2] + first - 1 if first > 1 else 0
        pieces[owner + 1].append(spaced[start : through[last - 1] + last - 1])
    return tuple(_distinct_words(b" ".join(owned)) for owned in pieces)


def _distinct_words(spaced: bytes) -> str:
    words = b"\n".join(dict.fromkeys(spaced.split())) + b"\n"
    return _DIGIT_LED.sub(b"", words)[:-1].decode()


def encode_words(words: tuple[str, ...]) -> bytes:
    """For the cache and the snapshot: zlib at level 1 keeps about a third of the bytes (Django: 2.7 of
    7.6 MB) for a quarter of the time the words themselves take."""
    return zlib.compress(marshal.dumps(words), 1)


def decode_words(data: bytes) -> tuple[str, ...]:
    return marshal.loads(zlib.decompress(data))
