"""Files the package writes and reads back: JSONL rows, whole-file replacement, names safe as file names.

Any layer may import this module (it imports nothing of the package). What batch outputs rely on lives
here once: a killed writer leaves at most a cut last JSONL line, which readers that resume can drop, and a
replaced file is either the old one or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


def safe_name(text: str) -> str:
    """``text`` (an instance id) as a file name: letters, digits and ``._-`` kept, anything else ``_``."""
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in text)


# --- writing --------------------------------------------------------------------------------------------


def json_line(row: Any) -> str:
    """``row`` as one JSONL line, newline included. Text stays readable UTF-8; a row holding a lone
    surrogate (UTF-8 cannot encode one) is written with JSON escapes instead, so it still reads back
    exactly."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row)
    return line + "\n"


def append_row(sink: TextIO, row: Any) -> None:
    """Append ``row`` to an open JSONL file and flush it, so a kill after this call keeps the row."""
    sink.write(json_line(row))
    sink.flush()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it renamed over it: a reader or
    a kill sees the old file or the new one, never a half-written one. The file keeps the mode of the one
    it replaces (0644 when new), not the private mode of the temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    """Replace ``path`` with ``payload`` as indented JSON and a final newline, atomically."""
    write_atomic(path, json.dumps(payload, indent=1) + "\n")


def write_jsonl(path: Path, rows: Any) -> None:
    """Replace ``path`` with ``rows`` (an iterable), one JSONL line each, atomically."""
    write_atomic(path, "".join(json_line(row) for row in rows))


# --- reading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonlLine:
    """One non-blank line of a JSONL text."""

    number: int  # 1-based, blank lines counted
    text: str  # as in the file, with its newline when it has one
    value: Any  # the parsed JSON; None when ``error``
    error: json.JSONDecodeError | None
    last: bool  # no line follows it: where a killed writer leaves its cut line


def jsonl_lines(text: str) -> list[JsonlLine]:
    """The non-blank lines of ``text``, each parsed. Lines end at ``\\n`` only: U+2028, NEL and the other
    breaks ``str.splitlines`` knows may stand unescaped inside a JSON string."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    lines: list[JsonlLine] = []
    for index, piece in enumerate(pieces):
        if not piece.strip():
            continue
        last = index == len(pieces) - 1
        line_text = piece if last and not text.endswith("\n") else piece + "\n"
        try:
            lines.append(JsonlLine(index + 1, line_text, json.loads(piece), None, last))
        except json.JSONDecodeError as error:
            lines.append(JsonlLine(index + 1, line_text, None, error, last))
    return lines


class JsonlError(ValueError):
    """A line of a JSONL file that is not JSON: ``{source}:{number}: not JSON ({reason})``."""

    def __init__(self, source: str, number: int, cause: json.JSONDecodeError) -> None:
        super().__init__(f"{source}:{number}: not JSON ({cause.msg})")
        self.source = source
        self.number = number
        self.cause = cause


def parse_jsonl(text: str, source: str, *, drop_cut_tail: bool = False) -> list[Any]:
    """The rows of JSONL ``text`` read from ``source`` (named in errors). Raises JsonlError on a line that
    is not JSON, except, with ``drop_cut_tail``, the last line: the one a killed writer was writing."""
    rows: list[Any] = []
    for line in jsonl_lines(text):
        if line.error is None:
            rows.append(line.value)
        elif not (drop_cut_tail and line.last):
            raise JsonlError(source, line.number, line.error)
    return rows


def read_text(path: Path, errors: str = "strict") -> str:
    """The UTF-8 text of ``path``, gunzipped when it is named ``*.gz``."""
    if path.suffix == ".gz":
        import gzip

        with gzip.open(path, "rt", encoding="utf-8", errors=errors) as handle:
            return handle.read()
    return path.read_text(encoding="utf-8", errors=errors)


def read_jsonl(path: Path, *, errors: str = "strict", drop_cut_tail: bool = False) -> list[Any]:
    """The rows of the JSONL file ``path`` (``*.gz`` too); see ``parse_jsonl``."""
    return parse_jsonl(read_text(path, errors), str(path), drop_cut_tail=drop_cut_tail)


def without_cut_line(path: Path) -> str:
    """The text of a JSONL file that a writer may have been killed in, its unfinished last line cut off
    the file too, so that appending goes on after the last whole line."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
    return data[:end].decode("utf-8")
