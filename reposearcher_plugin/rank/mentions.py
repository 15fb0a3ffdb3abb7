"""What an issue names, before it is matched to a repository: identifiers, dotted names, file paths,
traceback frames and the literal words of quoted error messages (:func:`extract_mentions`), and the cap on
how much of an issue is read at all (:func:`cap_issue`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reposearcher_plugin.index.locations import normalize_path, unique
from reposearcher_plugin.rank.implied import asks_to_add, implied_dunders, missing_members
from reposearcher_plugin.tools.tokens import STOPWORDS

# Ranking reads at most this many characters of an issue, its head; the evidence says when it was cut.
# The longest issue in SWE-bench Lite and Loc-Bench has 56 K; beyond this an issue is pasted logs, whose
# head holds the report. Every step is linear, so the cap bounds the time (a fraction of a second here),
# for the CLI, MCP `localize`, the OpenHands hook (the user's whole prompt) and batch runs alike.
MAX_RANKED_ISSUE_CHARS = 200_000

# Issue text can be anything a user pastes (megabytes of log), so every pattern here runs in linear time:
# none can match the same characters in two ways (runs that could trade characters are possessive), and
# none fails after scanning far from each of many starting points (those start only where a word does).

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_BACKTICK = re.compile(r"`([^`\n]+)`")
# possessive: nothing follows, so the longest chain is the match; three times faster on a long one
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*+(?:\.[A-Za-z_]\w*+)++")
# a word not after a dot: ``(?<![\w.])[A-Za-z_]\w*``, spelled with the letter first so that the engine
# skips quickly to where one can start, then the character before it checked (a quarter faster)
_WORD = re.compile(r"[A-Za-z_](?<![\w.].)\w*+")
# ``name(``: the name is the word's tail from its first ASCII letter or underscore (``2to3_fix(`` names
# ``to3_fix``); tried once per word, not from every letter of it (quadratic on a 16 KB word)
_CALL = re.compile(r"(?<!\w)[^\W_A-Za-z]*+([A-Za-z_]\w*+)\s*\(")
_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.(?:py|pyi|pyx))\b")
_FRAME = re.compile(r'File "([^"\n]+)", line (\d+)(?:, in ([\w<>.]+))?')
# "ValueError: invalid literal ...", "E   TypeError: ...", "RemovedInDjango50Warning: ...". The prefix is
# pytest's "E" marks, blanks and ">": (E* then a blank)*, so that the E of "EOFError" is never one of them
# in a second way; the name is one possessive word that must end in Error, Exception, ...
_MESSAGE = re.compile(
    r"^(?:E*[ \t>])*+[\w.]*+(?:(?<=Error)|(?<=Exception)|(?<=Warning)|(?<=Exit)|(?<=Failure))"
    r":[ \t]*+(.{8,300})$",
    re.M,
)
# What a message was formatted with, cut out to keep its literal words: quoted values, bracketed parts,
# numbers, the marks _PYTHON_MESSAGES leaves, and words holding a path separator. The last are found
# apart (see _pieces_around_path_words): as one more alternative, ``\S*[/\\]\S*``, they were looked for
# from every character of a word without one, to the word's end.
_MESSAGE_BREAK = re.compile(
    r"\||'[^']*'|\"[^\"]*\"|`[^`]*`|<[^>]*>|\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|(?<!\w)[-+]?\d[\w.,:]*"
)
# a word holding a path separator: group 1 ends after its last separator
_SEPARATED_WORD = re.compile(r"(?<!\S)(\S*[/\\])\S*")
# characters where a _MESSAGE_BREAK match always starts, once unclosed brackets are masked (a quote
# only when another one follows it)
_BREAK_STARTS = re.compile(r"[|'\"`<(\[{]|(?<!\w)[-+]?\d")
_WORD_CHAR = re.compile(r"\w")
_BRACKETS = {"<": ">", "(": ")", "[": "]", "{": "}"}
_QUOTES = "'\"`"
# What Python itself says ("'NoneType' object has no attribute 'x'") is in no repository's code, and
# the few definitions that quote it are unrelated; only the words around it can point somewhere.
_PYTHON_MESSAGES = re.compile(
    r"object has no attribute|got an unexpected keyword argument|got multiple values for argument"
    r"|missing \d+ required positional arguments?|takes \d+ positional arguments? but \d+ (?:was|were) given"
    r"|is not defined|unsupported operand types?(?: for)?|object is not (?:callable|subscriptable|iterable)"
    r"|not supported between instances of|can only concatenate|index out of range|not enough values to unpack"
    r"|too many values to unpack|invalid literal for|division by zero|maximum recursion depth exceeded"
    r"|No module named|cannot import name|is not JSON serializable|object is not|is not a valid"
    r"|Traceback \(most recent call last\)"
)
# every _MESSAGE match holds one of these: the name's ending and the colon after it
_MESSAGE_NEEDLES = ("Error:", "Exception:", "Warning:", "Exit:", "Failure:")
MESSAGE_MIN_CHARS = 12
MESSAGE_MIN_WORDS = 3
MAX_MESSAGES = 8
_PYTEST_FRAME = re.compile(r"^[ \t>]*([\w./\\-]+\.py):(\d+):(?: in ([\w<>]+))?", re.M)
# IPython / Jupyter: "File ~/src/pkg/mod.py:1254, in Plotter._setup_scales(self, p)" (8.x) and
# "~/venv/site-packages/pkg/mod.py in _combine(self, other, conn)" (7.x, line number on later lines)
_IPYTHON_FRAME = re.compile(r"File (\S+?\.py):(\d+), in ([\w.<>]+)")
_IPYTHON_OLD_FRAME = re.compile(r"^[ \t]*(\S+\.py) in ([\w.<>]+)\(", re.M)


def message_fragments(message: str) -> list[str]:
    """The literal fragments of a quoted error message worth searching the code for, in order."""
    masked, unmask = _mask_unclosed_brackets(message)
    if not _may_hold_fragment(masked):
        return []
    fragments = []
    for piece in _literal_pieces(masked, unmask):
        fragment = piece.strip(" .:,;!?-")
        if len(fragment) >= MESSAGE_MIN_CHARS and len(fragment.split()) >= MESSAGE_MIN_WORDS:
            fragments.append(fragment)
    return fragments


def literal_pieces(message: str) -> list[str]:
    """What is left of ``message`` between the parts a message is formatted with: exactly
    ``re.split(_MESSAGE_BREAK.pattern + r"|\\S*[/\\\\]\\S*", message)``, in time linear in the message."""
    return _literal_pieces(*_mask_unclosed_brackets(message))


def _literal_pieces(masked: str, unmask: dict[int, str]) -> list[str]:
    if "/" in masked or "\\" in masked:
        pieces = _pieces_around_path_words(masked)
    else:
        pieces = _MESSAGE_BREAK.split(masked)
    return [piece.translate(unmask) for piece in pieces] if unmask else pieces


def _mask_unclosed_brackets(text: str) -> tuple[str, dict[int, str]]:
    """``text`` with each opening bracket after the last closing one of its kind replaced by a private-use
    character not in ``text`` (one per kind), and the table that puts them back. From such a bracket
    ``\\([^)]*\\)`` scans to the end and fails, from each of them (quadratic); masked, none is tried."""
    unmask: dict[int, str] = {}
    spare = 0xE000
    for opening, closing in _BRACKETS.items():
        last_close = text.rfind(closing)
        if text.find(opening, last_close + 1) < 0:
            continue
        while chr(spare) in text:
            spare += 1
        text = text[: last_close + 1] + text[last_close + 1 :].replace(opening, chr(spare))
        unmask[spare] = opening
        spare += 1
    return text, unmask


def _may_hold_fragment(masked: str) -> bool:
    """False when no piece can be a fragment: every piece lies between two characters where a break
    always starts (a quote unless it is the last of its kind), so none is longer than those stretches."""
    for quote in _QUOTES:  # the last one may have no partner: a plain character, inside a piece
        last = masked.rfind(quote)
        if last >= 0:
            masked = f"{masked[:last]} {masked[last + 1 :]}"
    return max(map(len, _BREAK_STARTS.split(masked))) >= MESSAGE_MIN_CHARS


def _pieces_around_path_words(text: str) -> list[str]:
    """The pieces between break matches, as ``re.split`` finds them: at each position the _MESSAGE_BREAK
    alternatives first, then a path word, which matches from any position of a word up to its last
    separator and runs to the word's end. The words are listed first, so at any position it is known
    at once whether a path word can start there; past the last of them ``re.split`` does the rest."""
    pieces: list[str] = []
    position = 0  # where the current piece starts
    # the next _MESSAGE_BREAK match at or after position (its start; len(text) when there is none), kept
    # until position passes it, so that no stretch of text is searched twice
    pending_start, pending_end = -1, -1
    for match in _SEPARATED_WORD.finditer(text):
        word_start, after_separator, word_end = match.start(), match.end(1), match.end()
        while position < after_separator:  # a path word can start anywhere before its last separator
            path_at = max(word_start, position)
            if pending_start < position:
                found = _MESSAGE_BREAK.search(text, position)
                pending_start, pending_end = found.span() if found else (len(text), len(text))
            if pending_start <= path_at:  # a tie goes to the earlier alternative
                pieces.append(text[position:pending_start])
                position = pending_end
            else:
                pieces.append(text[position:path_at])
                position = word_end
    if position and _WORD_CHAR.match(text[position - 1]):
        # the character before decides whether a digit starts a number: split after a word character
        rest = _MESSAGE_BREAK.split("a" + text[position:])
        rest[0] = rest[0][1:]
    else:
        rest = _MESSAGE_BREAK.split(text[position:])
    return pieces + rest


_CAMEL_CASE = re.compile(r"[a-z][A-Z]|[A-Z][a-z]+[A-Z]")
_NOT_A_NAME = re.compile(r"[\d.]+|[a-z]+\.(?:com|org|io|net|html|txt|rst|md|cfg|toml|yml|yaml)")


def cap_issue(issue: str, limit: int | None = None) -> tuple[str, dict[str, Any] | None]:
    """``issue`` cut to its first ``limit`` (MAX_RANKED_ISSUE_CHARS) characters, at a line end when one is
    near, and a note for the evidence saying so; the issue itself and None when it is not longer."""
    limit = MAX_RANKED_ISSUE_CHARS if limit is None else limit
    if len(issue) <= limit:
        return issue, None
    line_end = issue.rfind("\n", 0, limit)
    kept = line_end if line_end >= limit * 3 // 4 else limit
    note = {
        "issue_chars": len(issue),
        "ranked_chars": kept,
        "note": f"the issue has {len(issue):,} characters; only its first {kept:,} were ranked "
        f"(a limit of {limit:,}: MAX_RANKED_ISSUE_CHARS)",
    }
    return issue[:kept], note


# Lines that an issue pastes rather than writes: a program's output, a log, a shell or REPL session, a
# traceback, indented code. Their words are what the program printed or ran, not what the user says.
_PASTED_LINE_STARTS = ("    ", "\t", ">>>", "...", "$ ", "In [", "Out[", "E ", "Traceback ", "File ")


def prose_of(issue: str) -> str:
    """``issue`` without what it pastes: fenced blocks and the lines :data:`_PASTED_LINE_STARTS` start
    (indented code or output, REPL and shell sessions, traceback and pytest lines), so that the words of
    program output count apart from the user's own words. Linear: one pass over the lines."""
    unfenced = _FENCE.sub("\n", issue)
    return "\n".join(
        line
        for line in unfenced.split("\n")
        if not line.startswith(_PASTED_LINE_STARTS) and not line.lstrip(" ").startswith('File "')
    )


def _code_like(word: str) -> bool:
    """snake_case, CamelCase, dunder or ALLCAPS_WITH_UNDERSCORE: a word that prose does not use."""
    if "_" not in word and word.islower():  # most prose: no underscore, no capital for CamelCase
        return False
    core = word.strip("_")
    if not core:
        return False
    return "_" in core or word.startswith("__") or bool(_CAMEL_CASE.search(word))


def _cut(text: str, matches: list[re.Match[str]]) -> str:
    """``text`` with each of ``matches`` (in order, not overlapping) replaced by a blank: what
    ``pattern.sub(" ", text)`` gives when ``matches`` are the pattern's."""
    if not matches:
        return text
    kept, position = [], 0
    for match in matches:
        kept.append(text[position : match.start()])
        position = match.end()
    kept.append(text[position:])
    return " ".join(kept)


# Fast equivalents of a full ``finditer`` of the patterns above. A pattern whose matches always hold a
# literal, and can start only at a place found from that literal, is tried only there: a few quick
# ``str.find`` scans of the text, instead of a regular-expression attempt at every character of it.


def _fences(text: str) -> tuple[list[str], str]:
    """The matches of ``_FENCE`` (each from three backticks to the next three, or to the end) and the text
    with each cut out for a blank. ``text.split("```")`` finds the same backtick triples, left to right
    without overlaps, in one scan: the pieces between them alternate outside, inside, outside..."""
    pieces = text.split("```")
    fences = [f"```{piece}```" for piece in pieces[1:-1:2]]
    outside = pieces[0::2]
    if len(pieces) % 2 == 0:  # an odd number of triples: the last fence has no end and runs to the end
        fences.append(f"```{pieces[-1]}")
        outside.append("")
    return fences, " ".join(outside)


def _literal_start_matches(pattern: re.Pattern[str], literal: str, text: str) -> list[re.Match[str]]:
    """``list(pattern.finditer(text))`` for a pattern that starts with ``literal``: ``pattern.match`` where
    ``str.find`` finds the literal, which is quicker at skipping the text between them."""
    matches: list[re.Match[str]] = []
    found = text.find(literal)
    while found >= 0:
        match = pattern.match(text, found)
        if match:
            matches.append(match)
        found = text.find(literal, match.end() if match else found + 1)
    return matches


def _line_matches(pattern: re.Pattern[str], needles: tuple[str, ...], text: str) -> list[re.Match[str]]:
    """``list(pattern.finditer(text))`` for a pattern that starts with ``^`` (multiline), never crosses a
    line end and holds one of ``needles`` in every match: ``pattern.match`` at the start of each line
    that holds a needle. Each line is looked at once per needle, however many times it holds it."""
    line_starts: set[int] = set()
    for needle in needles:
        found = text.find(needle)
        while found >= 0:
            line_starts.add(text.rfind("\n", 0, found) + 1)
            line_end = text.find("\n", found)
            if line_end < 0:
                break
            found = text.find(needle, line_end)
    return [match for start in sorted(line_starts) if (match := pattern.match(text, start))]


def _run_start_matches(
    pattern: re.Pattern[str], run: re.Pattern[str], needle: re.Pattern[str], text: str
) -> list[re.Match[str]]:
    """``list(pattern.finditer(text))`` for a pattern whose matches start only where a run of ``run``'s
    characters starts (a lookbehind for any other character), stay inside the run and hold ``needle``:
    ``pattern.match`` at the start of each run holding the needle. A run is found from its first needle
    (which must read on to the run's end) and back to its start on the reversed text: each is read once."""
    matches: list[re.Match[str]] = []
    length = len(text)
    reversed_text = ""
    found = needle.search(text)
    while found:
        reversed_text = reversed_text or text[::-1]
        # the run read backwards from just before the needle, in the reversed text, ends where it starts
        match = pattern.match(text, length - run.match(reversed_text, length - found.start()).end())
        if match:
            matches.append(match)
        found = needle.search(text, found.end())
    return matches


# runs of the characters that _PATH and _DOTTED matches are made of, and what each match holds, with the
# rest of its run
_PATH_RUN = re.compile(r"[\w/.-]*+")
_PATH_NEEDLE = re.compile(r"\.py[\w/.-]*+")
_DOTTED_RUN = re.compile(r"[\w.]*+")
_DOTTED_NEEDLE = re.compile(r"\.[A-Za-z_][\w.]*+")


# on the reversed text: a "(", the blanks before it, and the word before them up to its first ASCII
# letter or underscore (the last in the reversed word: the greedy run gives back up to one)
_CALL_REVERSED = re.compile(r"\(\s*(\w*[A-Za-z_])")


def _calls(text: str) -> list[str]:
    """``_CALL.findall(text)``: each whole word that blanks and a "(" follow, from its first ASCII letter
    or underscore on. The words are found from the "(" backwards, on the reversed text: a literal "(" is
    quick to find, where ``_CALL`` is tried at every character."""
    if "(" not in text:
        return []
    return [name[::-1] for name in reversed(_CALL_REVERSED.findall(text[::-1]))]


@dataclass
class Mentions:
    """Code that an issue names, before it is matched to the repository."""

    dotted: list[str] = field(default_factory=list)  # ``QuerySet.union``, ``django.db.models.query``
    names: list[str] = field(default_factory=list)  # code-like simple names
    paths: list[str] = field(default_factory=list)  # ``django/db/models/query.py``, ``query.py``
    frames: list[tuple[str, int, str]] = field(default_factory=list)  # (path as written, line, function)
    messages: list[str] = field(default_factory=list)  # literal fragments of quoted error messages
    # special methods that the issue's code or words imply: ``len(x)`` -> ``__len__``, ``a * b`` ->
    # ``__mul__``, "not iterable" -> ``__iter__``; what it shows a class doing, not names it wrote
    dunders: list[str] = field(default_factory=list)
    # (class, member) that Python said a class lacks: "'OrderedSet' object has no attribute 'x'" or
    # "... is not reversible" (member ``__reversed__``)
    missing: list[tuple[str, str]] = field(default_factory=list)
    # the issue asks for something new (add, implement, support...): a member it names may not exist yet
    asks_to_add: bool = False


def extract_mentions(issue: str) -> Mentions:
    """Identifiers, dotted names, file paths and traceback frames, each once, in order of appearance."""
    # Each pattern holds a literal (```, ".py:", "File ", ...): a pass is skipped when the text lacks it,
    # and those that can be are tried only where their literal is (the fast finders above); words are
    # filtered once per distinct word. Long prose costs a few scans of it: the words of the code quoted
    # and of the whole text, and quick searches for the literals.
    found = Mentions()
    code, without_fences = _fences(issue)
    if "`" in without_fences:
        code += _BACKTICK.findall(without_fences)
    code_text = "\n".join(code)
    # a frame's file counts as a frame (weighed by depth), not as a plain mention of the file
    frames: list[tuple[int, str, int, str]] = []
    without_frames = issue
    for finder in _FRAME_FINDERS:
        in_issue = finder(issue)
        frames += [_frame_of(match) for match in in_issue]
        # each pattern is cut out of what the ones before it left: found again only when they cut something
        without_frames = _cut(without_frames, in_issue if without_frames is issue else finder(without_frames))
    found.frames = [(path, line, function) for _, path, line, function in sorted(frames)]
    paths = _run_start_matches(_PATH, _PATH_RUN, _PATH_NEEDLE, without_frames)
    without_paths = _cut(without_frames, paths)
    found.paths = unique(normalize_path(match.group(1)) for match in paths)
    dotted_names = _run_start_matches(_DOTTED, _DOTTED_RUN, _DOTTED_NEEDLE, without_paths)
    found.dotted = [
        name for name in unique([match.group() for match in dotted_names]) if not _NOT_A_NAME.fullmatch(name)
    ]
    names: list[str] = []
    # each list is made unique before it is filtered: only the first occurrence of a name counts
    names += [word for word in unique(_WORD.findall(code_text)) if word not in STOPWORDS]
    names += _calls(without_paths)
    names += [word for word in unique(_WORD.findall(without_paths)) if _code_like(word)]
    for dotted_name in found.dotted:
        names += dotted_name.split(".")
    names += [
        part
        for _, _, function in found.frames
        if not function.startswith("<")
        for part in function.split(".")
    ]
    found.names = [name for name in unique(names) if len(name) > 1 and not name.isdigit()]
    fragments: dict[str, None] = {}  # in order, each once
    messages = _line_matches(_MESSAGE, _MESSAGE_NEEDLES, issue)
    for message in unique(match.group(1) for match in messages):
        # the values a message was formatted with are not in the code: keep the literal words between
        for fragment in message_fragments(_PYTHON_MESSAGES.sub("|", message)):
            fragments[fragment] = None
        if len(fragments) >= MAX_MESSAGES:
            break
    found.messages = list(fragments)[:MAX_MESSAGES]
    found.dunders = implied_dunders(code_text, issue)
    found.missing = missing_members(issue)
    found.asks_to_add = asks_to_add(issue)
    return found


# the frame patterns' matches, in the order they are cut out
_FRAME_FINDERS: tuple[Callable[[str], list[re.Match[str]]], ...] = (
    lambda text: _literal_start_matches(_FRAME, 'File "', text),
    lambda text: _line_matches(_PYTEST_FRAME, (".py:",), text),
    lambda text: _literal_start_matches(_IPYTHON_FRAME, "File ", text) if ".py:" in text else [],
    lambda text: _line_matches(_IPYTHON_OLD_FRAME, (".py in ",), text),
)


def _frame_of(match: re.Match[str]) -> tuple[int, str, int, str]:
    """(where, path, line, function) of a frame pattern's match; the old IPython form has no line."""
    if match.re is _IPYTHON_OLD_FRAME:
        return match.start(), match.group(1), 0, match.group(2)
    return match.start(), match.group(1), int(match.group(2)), match.group(3) or ""
