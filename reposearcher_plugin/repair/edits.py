"""SEARCH/REPLACE edit blocks: parsing a model's reply (tolerantly) and applying the blocks to the files
of a snapshot, exactly or line by line ignoring surrounding whitespace."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reposearcher_plugin.repair.diff import git_diff
from reposearcher_plugin.repair.files import ENCODING, inside_repository


@dataclass
class EditBlock:
    path: str
    search: str
    replace: str


# "### path/to/file.py"; a path has a dot or a slash, so a "### Fix" heading is not taken for one
_FILE_LINE = re.compile(r"^\s*#{2,4}\s*(?:file:\s*)?`?([^\s`]*[./][^\s`]*)`?\s*$")
_SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\s*$")
_NUMBERED = re.compile(r"^\s*\d+ \| ?")


def parse_edit_blocks(text: str) -> tuple[list[EditBlock], list[str]]:
    """Edit blocks of a reply and a message per malformed one. Tolerant: the ``### path`` line may sit
    inside or outside the code fence, fences may be missing, and one path serves the blocks after it."""
    blocks: list[EditBlock] = []
    malformed: list[str] = []
    lines = text.splitlines()
    path: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _FILE_LINE.match(line)
        if match:
            path = match.group(1).removeprefix("./")
            index += 1
            continue
        if not _SEARCH.match(line):
            index += 1
            continue
        start = index
        search: list[str] = []
        replace: list[str] = []
        index += 1
        while index < len(lines) and not _DIVIDER.match(lines[index]) and not _SEARCH.match(lines[index]):
            search.append(lines[index])
            index += 1
        if index >= len(lines) or not _DIVIDER.match(lines[index]):
            malformed.append(f"block at reply line {start + 1}: no ======= line after <<<<<<< SEARCH")
            continue
        index += 1
        while index < len(lines) and not _REPLACE.match(lines[index]) and not _SEARCH.match(lines[index]):
            replace.append(lines[index])
            index += 1
        if index >= len(lines) or not _REPLACE.match(lines[index]):
            malformed.append(f"block at reply line {start + 1}: no >>>>>>> REPLACE line")
            continue
        index += 1
        if path is None:
            malformed.append(f"block at reply line {start + 1}: no '### path/to/file.py' line before it")
            continue
        blocks.append(EditBlock(path, _join(_unnumber(search)), _join(_unnumber(replace))))
    return blocks, malformed


def _unnumber(lines: list[str]) -> list[str]:
    # Models often copy the prompt's "  12 | code" prefixes; strip them only when every line has one,
    # so a real line that happens to start with digits and a bar survives.
    content = [line for line in lines if line.strip()]
    if content and all(_NUMBERED.match(line) for line in content):
        return [_NUMBERED.sub("", line, count=1) for line in lines]
    return lines


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def apply_edit(content: str, block: EditBlock) -> tuple[str | None, str]:
    """``(new content, how)``; ``None`` with a reason when the SEARCH text is not in the file."""
    if not block.search.strip():
        return None, "empty SEARCH block"
    if block.search in content:
        return content.replace(block.search, block.replace, 1), "exact"
    if block.search.rstrip("\n") and block.search.rstrip("\n") in content and not content.endswith("\n"):
        return content.replace(block.search.rstrip("\n"), block.replace.rstrip("\n"), 1), "exact"
    fuzzy = _apply_whitespace_tolerant(content, block)
    if fuzzy is not None:
        return fuzzy, "whitespace-tolerant"
    return None, "SEARCH text not found in the file"


def _apply_whitespace_tolerant(content: str, block: EditBlock) -> str | None:
    # Line by line, ignoring each line's surrounding whitespace and blank lines at the block's ends; the
    # replacement is re-indented by the difference between the model's and the file's indentation.
    file_lines = content.splitlines(keepends=True)
    search = block.search.splitlines()
    while search and not search[0].strip():
        search.pop(0)
    while search and not search[-1].strip():
        search.pop()
    if not search:
        return None
    wanted = [line.strip() for line in search]
    stripped = [line.strip() for line in file_lines]
    for start in range(len(file_lines) - len(wanted) + 1):
        if stripped[start : start + len(wanted)] != wanted:
            continue
        file_indent = _indent(file_lines[start])
        model_indent = _indent(search[0])
        replace = []
        for line in block.replace.splitlines():
            if not line.strip():
                replace.append("\n")
            elif line.startswith(model_indent):
                replace.append(file_indent + line[len(model_indent) :] + "\n")
            else:
                replace.append(line + "\n")
        newline_end = file_lines[start + len(wanted) - 1].endswith("\n")
        if replace and not newline_end:
            replace[-1] = replace[-1].rstrip("\n")
        return "".join(file_lines[:start] + replace + file_lines[start + len(wanted) :])
    return None


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


@dataclass
class AppliedEdits:
    applied: list[str] = field(default_factory=list)  # "path (exact|whitespace-tolerant|new file)"
    failed: list[str] = field(default_factory=list)  # "path: why"
    patch: str = ""  # git diff of the applied edits ("" when none applied)


def apply_edits(snapshot: Path, blocks: Sequence[EditBlock]) -> AppliedEdits:
    """Apply ``blocks`` to a writable copy of the files they touch; the patch is their ``git diff``.

    Only the touched files are copied (the diff of a whole-snapshot copy is the same, and copying Django
    per attempt is not free); the copy is a one-commit git repository so the diff has real blob ids and
    is exactly what ``git apply`` takes."""
    result = AppliedEdits()
    contents: dict[str, str | None] = {}  # path -> current text (None: the file does not exist)
    originals: dict[str, bytes | None] = {}
    for block in blocks:
        if not inside_repository(block.path):
            result.failed.append(f"{block.path}: not a path inside the repository")
            continue
        if block.path not in contents:
            source = snapshot / block.path
            raw = source.read_bytes() if source.is_file() else None
            originals[block.path] = raw
            contents[block.path] = None if raw is None else raw.decode(*ENCODING)
        current = contents[block.path]
        if current is None:
            if block.search.strip():
                result.failed.append(f"{block.path}: no such file")
                continue
            contents[block.path] = block.replace  # an empty SEARCH on a new file creates it
            result.applied.append(f"{block.path} (new file)")
            continue
        crlf = "\r\n" in current
        text = current.replace("\r\n", "\n") if crlf else current
        updated, how = apply_edit(text, block)
        if updated is None:
            result.failed.append(f"{block.path}: {how}")
            continue
        contents[block.path] = updated.replace("\n", "\r\n") if crlf else updated
        result.applied.append(f"{block.path} ({how})")
    changed = {path: text for path, text in contents.items() if text is not None}
    if result.applied:
        result.patch = git_diff(originals, changed)
    return result
