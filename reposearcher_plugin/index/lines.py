"""The one line model: where a line of a source file ends, for the index and for every view of code.

A line ends at "\\n" and nowhere else. Entity spans are tree-sitter rows, and tree-sitter starts a new row
only after "\\n"; git numbers the lines of a diff the same way, so gold spans from patches agree too. A "\\r"
right before "\\n" belongs to the line ending (CRLF files) and is not part of the line's text. Every other
character that ``str.splitlines`` would split at (a lone "\\r", form feed, vertical tab, the file/group/record
separators, NEL, U+2028, U+2029) is an ordinary character inside a line: counting it as a line end is
what shifted every span of a file with form feeds.
"""

from __future__ import annotations

# What str.splitlines() also treats as a line end. Shown escaped in numbered views, so that an observation
# splits into lines exactly where its numbers say, whoever splits it.
OTHER_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = str.maketrans(
    {
        "\r": "\\r",
        "\x0b": "\\v",
        "\x0c": "\\f",
        "\x1c": "\\x1c",
        "\x1d": "\\x1d",
        "\x1e": "\\x1e",
        "\x85": "\\x85",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
    }
)


def split_lines(text: str) -> list[str]:
    """The lines of ``text``: split at "\n", without a CRLF's "\r"; a final "\n" starts no new line."""
    # replacing every CRLF first keeps the work in C; "a\r\r\n" still keeps its first "\r"
    lines = (text.replace("\r\n", "\n") if "\r" in text else text).split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def line_count(data: bytes) -> int:
    """How many lines ``split_lines`` finds in ``data`` decoded (a decoder never makes or eats "\\n")."""
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


def shown_line(line: str) -> str:
    """``line`` as a numbered view prints it: the characters other readers take for line ends escaped."""
    return line.translate(_ESCAPES) if any(mark in line for mark in OTHER_LINE_BREAKS) else line
