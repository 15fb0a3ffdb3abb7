"""The RepoSearcher tools over one index: each returns exactly the text an agent sees.

Read-only: nothing here writes to the repository or runs its code. Every observation is deterministic
(sorted, capped with an explicit marker that says how to see the rest), and a name that is not found
answers with the closest names so the model can recover in one more call.

The line cache is ``line_cache.py``, the overview tree ``structure.py``, the BM25 search
``search_index.py`` (its tokens ``tokens.py``). What stays is one job, every tool's observation, and stays
one module: the tools share its helpers (argument checks, numbered views, not-found suggestions), so each
wording a model sees is written once.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from reposearcher_plugin.index import CLASS, FUNCTION, METHOD, Entity, RepoIndex, entity_id
from reposearcher_plugin.index.lines import shown_line, split_lines
from reposearcher_plugin.index.names import os_path
from reposearcher_plugin.index.reading import BINARY, TOO_LARGE, UNREADABLE, NotReadable, read_source
from reposearcher_plugin.tools.line_cache import LINE_CACHE_BYTES, LineCache, line_cost
from reposearcher_plugin.tools.paths import PathRefused, confine, quoted
from reposearcher_plugin.tools.search_index import EntitySearch
from reposearcher_plugin.tools.spec import short_repr
from reposearcher_plugin.tools.structure import plural, render_structure
from reposearcher_plugin.tools.tokens import IDENTIFIER, query_tokens

# Caps keep observations within what a model context can take; every cut says how to see the rest.
MAX_VIEW_LINES = 200
MAX_CODE_LINES = 150
MAX_STRUCTURE_LINES = 400
MAX_REFERENCES = 80
MAX_CANDIDATES = 10
MAX_LINE_CHARS = 300
MAX_LISTED_LOCATIONS = 10
# submit checks this many distinct locations: each costs a path resolution (~50 us), and a model may send
# a list of 100,000 (4.6 s to check before)
MAX_CHECKED_LOCATIONS = 1_000
MAX_SUGGESTED_NAME_CHARS = 200  # no definition's name is longer; only shorter names get close matches
# show_code reads no file larger than this (an indexed source file is always readable): a log of
# hundreds of megabytes would cost seconds and gigabytes to answer one call
MAX_SHOW_BYTES = 16 << 20


class ToolFailure(Exception):
    """A tool call that cannot be answered; its message is the observation."""


class RepoTools:
    """Implementations of every tool of every profile, over one index."""

    def __init__(
        self,
        index: RepoIndex,
        *,
        max_file_bytes: int = MAX_SHOW_BYTES,
        line_cache_bytes: int = LINE_CACHE_BYTES,
    ) -> None:
        self.index = index
        self.root: Path = index.root
        self.max_file_bytes = max_file_bytes
        self.line_cache = LineCache(line_cache_bytes)
        # the BM25 index over definitions, shared with the retrieval localizer; built on first search
        self.search = EntitySearch(index, self.lines)

    # --- shared helpers ----------------------------------------------------------------------------

    def file_arg(self, file: str | None) -> str | None:
        """Confine and check a file argument; None stays None (meaning: any file)."""
        if file is None:
            return None
        try:
            path = confine(self.root, file)
        except PathRefused as refused:
            raise ToolFailure(str(refused)) from None
        if path in self.index.files:
            return path
        if path in self.index.skipped:
            raise ToolFailure(f"{path} is not indexed: {self.index.skipped[path]}")
        if path in set(self.index.other_files):
            raise ToolFailure(
                f"{path} is not a source file the index parses; view it with show_code({path!r}, 1, 100)"
                if self._on_disk(path).is_file()
                else f"{path} cannot be read"
            )
        close = difflib.get_close_matches(path, list(self.index.files), n=5, cutoff=0.6)
        if not close:
            tail = path.rsplit("/", 1)[-1]
            close = [known for known in self.index.files if known.rsplit("/", 1)[-1] == tail][:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ToolFailure(f"No file {quoted(path)} in the repository.{hint}")

    def _on_disk(self, path: str) -> Path:
        """Where a repository path (index/names.py: non-UTF-8 bytes escaped) lies on the file system."""
        return self.root / os_path(path)

    def lines(self, path: str) -> list[str]:
        """The lines of ``path`` by the index's line model (``index.lines``), so spans and views agree."""
        cached = self.line_cache.get(path)
        if cached is not None:
            return cached
        indexed = self.index.files.get(path)
        limit = max(self.max_file_bytes, indexed.size) if indexed is not None else self.max_file_bytes
        try:
            data = read_source(self._on_disk(path), limit)
        except NotReadable as refused:
            raise ToolFailure(_refusal(path, refused, limit)) from None
        lines = split_lines(data.decode("utf-8", "replace"))
        self.line_cache.put(path, lines, line_cost(len(data), len(lines)))
        return lines

    def numbered(self, path: str, start: int, end: int) -> str:
        lines = self.lines(path)
        width = len(str(end))
        out = []
        for number in range(start, min(end, len(lines)) + 1):
            text = lines[number - 1]
            if len(text) > MAX_LINE_CHARS:
                text = text[:MAX_LINE_CHARS] + " ...[line cut]"
            out.append(f"{number:>{width}} | {shown_line(text)}")
        return "\n".join(out)

    def raw(self, path: str, entity: Entity) -> str:
        return "\n".join(self.lines(path)[entity.start - 1 : entity.end])

    def _header(self, path: str, entity: Entity) -> str:
        return f"{entity_id(path, entity.qualname)} ({entity.kind}, lines {entity.start}-{entity.end})"

    def _show_entity(self, path: str, entity: Entity) -> str:
        span = entity.end - entity.start + 1
        header = self._header(path, entity)
        if span <= MAX_CODE_LINES:
            return f"{header}\n{self.numbered(path, entity.start, entity.end)}"
        if entity.kind == CLASS:
            return f"{header}\n{self._class_outline(path, entity)}"
        end = entity.start + MAX_CODE_LINES - 1
        return (
            f"{header}\n{self.numbered(path, entity.start, end)}\n"
            f"... [cut: {entity.end - end} more lines; see them with "
            f"show_code({path!r}, {end + 1}, {entity.end})]"
        )

    def _class_outline(self, path: str, entity: Entity) -> str:
        """A long class: its header up to the first member, then one line per member."""
        members = self.index.members(path, entity)
        head_end = min(members[0].start - 1 if members else entity.end, entity.start + 40)
        parts = [self.numbered(path, entity.start, head_end)]
        parts.append(
            f"... [class body is {entity.end - entity.start + 1} lines; its {len(members)} members are "
            "listed below. See one with search_class_method or show_code]"
        )
        lines = self.lines(path)
        for member in members:
            first = member.start
            # show the def line itself, not the decorators above it
            while first < member.end and lines[first - 1].lstrip().startswith("@"):
                first += 1
            signature = lines[first - 1].strip() if first <= len(lines) else member.name
            decorated = f"  @{' @'.join(member.decorators)}" if member.decorators else ""
            parts.append(
                f"  {member.start}-{member.end}: {shown_line(signature[:MAX_LINE_CHARS])}{decorated}"
            )
        return "\n".join(parts)

    def _not_found(self, what: str, name: str, kinds: tuple[str, ...], file: str | None) -> str:
        names = self.index.names()
        lowered = name.rsplit(".", 1)[-1].lower()
        close = [known for known in names if known.lower() == lowered]
        if len(lowered) <= MAX_SUGGESTED_NAME_CHARS:  # difflib's cost grows with the name's length
            close += difflib.get_close_matches(name.rsplit(".", 1)[-1], names, n=6, cutoff=0.75)
        suggestions: list[str] = []
        for candidate in dict.fromkeys(close):
            for path, entity in self.index.lookup(candidate, (CLASS, FUNCTION, METHOD))[:3]:
                suggestions.append(f"  {entity_id(path, entity.qualname)} ({entity.kind})")
        where = f" in {file}" if file else ""
        message = f"No {what} named {quoted(name)}{where}."
        other_kinds = [k for k in (CLASS, FUNCTION, METHOD) if k not in kinds]
        elsewhere = self.index.lookup(name, tuple(other_kinds), file)
        if elsewhere:
            message += f" {quoted(name)} exists as:\n" + "\n".join(
                f"  {entity_id(p, e.qualname)} ({e.kind})" for p, e in elsewhere[:MAX_CANDIDATES]
            )
        elif file and self.index.lookup(name, kinds):
            message += " It is defined in other files:\n" + "\n".join(
                f"  {entity_id(p, e.qualname)} ({e.kind})" for p, e in self.index.lookup(name, kinds)
            )
        elif suggestions:
            message += " Closest names:\n" + "\n".join(dict.fromkeys(suggestions[:MAX_CANDIDATES]))
        return message

    def _matches(self, found: Sequence[tuple[str, Entity]], label: str) -> str:
        if len(found) == 1:
            return self._show_entity(*found[0])
        total = sum(entity.end - entity.start + 1 for _, entity in found)
        if len(found) <= 3 and total <= MAX_CODE_LINES:
            shown = "\n\n".join(self._show_entity(path, entity) for path, entity in found)
            return f"Found {len(found)} {label}:\n\n{shown}"
        limit = MAX_CANDIDATES * 3
        listing = "\n".join(f"  {self._header(path, entity)}" for path, entity in found[:limit])
        more = f"\n  ... and {len(found) - limit} more" if len(found) > limit else ""
        return f"Found {len(found)} {label}; pass `file` to choose one:\n{listing}{more}"

    # --- default profile --------------------------------------------------------------------------------

    def get_repo_structure(self, path: str = ".", depth: int = 2) -> str:
        try:
            base = confine(self.root, path)
        except PathRefused as refused:
            raise ToolFailure(str(refused)) from None
        depth = max(1, min(int(depth), 8))
        prefix = f"{base}/" if base else ""
        sources = [p for p in self.index.files if p.startswith(prefix)]
        others = [p for p in self.index.other_files if p.startswith(prefix)]
        if not sources and not others:
            if base in self.index.files:
                raise ToolFailure(f"{base} is a file; see its definitions with show_code or search_code")
            raise ToolFailure(f"No directory {quoted(path)} in the repository")
        out = [f"{base or '.'}/", *render_structure(sources, others, len(prefix), depth)]
        if len(out) > MAX_STRUCTURE_LINES:
            hidden = len(out) - MAX_STRUCTURE_LINES
            out = [
                *out[:MAX_STRUCTURE_LINES],
                f"... [cut: {hidden} more lines; pass a subdirectory or less depth]",
            ]
        return "\n".join(out)

    def get_imports_of_file(self, file: str) -> str:
        path = self.file_arg(file)
        assert path is not None
        imports = self.index.files[path].parse.imports
        if not imports:
            return f"{path} imports nothing."
        out = [f"Imports of {path}:"]
        for imported in imports:
            if imported.names:
                text = f"from {imported.module} import {', '.join(imported.names)}"
            else:
                text = f"import {imported.module}"
            targets = self.index.resolve_import(path, imported)
            resolved = f"  -> {', '.join(targets)}" if targets else ""
            out.append(f"  {imported.line}: {text}{resolved}")
        return "\n".join(out)

    def search_class(self, class_name: str, file: str | None = None) -> str:
        path = self.file_arg(file)
        found = self.index.classes(class_name, path)
        if not found:
            return self._not_found("class", class_name, (CLASS,), path)
        return self._matches(found, f"classes named {class_name!r}")

    def search_function(self, function_name: str, file: str | None = None) -> str:
        path = self.file_arg(file)
        found = self.index.functions(function_name, path)
        if not found:
            return self._not_found("function", function_name, (FUNCTION,), path)
        return self._matches(found, f"functions named {function_name!r}")

    def search_class_method(self, class_name: str, method_name: str, file: str | None = None) -> str:
        path = self.file_arg(file)
        found = self.index.methods(class_name, method_name, path)
        if found:
            return self._matches(found, f"methods {class_name}.{method_name}")
        if not self.index.classes(class_name, path):
            return self._not_found("class", class_name, (CLASS,), path)
        owners = self.index.classes(class_name, path)
        available = sorted(
            {member.name for owner_path, owner in owners for member in self.index.members(owner_path, owner)}
        )
        close = difflib.get_close_matches(method_name, available, n=5, cutoff=0.6)
        message = f"Class {quoted(class_name)} has no method {quoted(method_name)}."
        if close:
            message += f" Closest: {', '.join(close)}."
        if available:
            shown = ", ".join(available[:60]) + (" ..." if len(available) > 60 else "")
            message += f"\nIts methods: {shown}"
        return message

    def show_code(self, file: str, start_line: int = 1, end_line: int | None = None) -> str:
        try:
            path = confine(self.root, file)
        except PathRefused as refused:
            raise ToolFailure(str(refused)) from None
        if path not in self.index.files and not self._on_disk(path).is_file():
            self.file_arg(file)  # raises with suggestions
        lines = self.lines(path)
        total = len(lines)
        if total == 0:
            return f"{path} is empty."
        start = max(1, int(start_line))
        end = total if end_line is None else min(int(end_line), total)
        # short_repr, not str(): str() of a model's 4,301-digit integer raises
        if start > total:
            raise ToolFailure(
                f"{path} has only {total} lines; start_line {short_repr(start)} is past its end"
            )
        if end < start:
            raise ToolFailure(f"end_line {short_repr(end)} is before start_line {start}")
        cut_end = min(end, start + MAX_VIEW_LINES - 1)
        body = self.numbered(path, start, cut_end)
        header = f"{path} (lines {start}-{cut_end} of {total})"
        if cut_end < end:
            rest = f"show_code({path!r}, {cut_end + 1}, {end})"
            body += f"\n... [cut: {end - cut_end} more lines; see them with {rest}]"
        return f"{header}\n{body}"

    def search_code(self, query: str, k: int = 10) -> str:
        tokens = query_tokens(query)
        if not tokens:
            raise ToolFailure("search_code needs a query with words or identifiers")
        k = max(1, min(int(k), 50))
        documents = self.search.documents
        if not documents:
            return "The repository has no indexed definitions."
        if not self.search.known(tokens):
            return f"No definition matches {quoted(query)}."
        out = [f"Top matches for {quoted(query)}:"]
        for rank, (doc, score) in enumerate(self.search.top(tokens, k), start=1):
            if score <= 0:
                break
            path, entity = documents[doc]
            doc_line = f" — {entity.doc.splitlines()[0][:120]}" if entity.doc else ""
            out.append(f"{rank:>2}. {self._header(path, entity)} score={score:.2f}{doc_line}")
        return "\n".join(out) if len(out) > 1 else f"No definition matches {quoted(query)}."

    def find_references(self, name: str) -> str:
        word = name.strip().rsplit(".", 1)[-1]
        if not IDENTIFIER.fullmatch(word):
            raise ToolFailure(f"find_references needs an identifier, got {quoted(name)}")
        hits: list[str] = []
        total = 0
        files_with_hits = 0
        # only the files the index knows hold the word (its words are exactly those this scan matches)
        for path in self.index.files_using(word):
            try:
                lines = self.lines(path)
            except ToolFailure:
                continue
            found_here = False
            for number, text in enumerate(lines, start=1):
                if word in text and _has_whole_word(text, word):
                    total += 1
                    found_here = True
                    if len(hits) < MAX_REFERENCES:
                        owner = self.index.enclosing(path, number)
                        where = f" [{owner.qualname}]" if owner else ""
                        hits.append(f"  {path}:{number}{where}: {shown_line(text.strip()[:MAX_LINE_CHARS])}")
            files_with_hits += found_here
        if not total:
            return f"No references to {quoted(word)} in the repository's source files."
        head = f"{total} references to {quoted(word)} in {plural(files_with_hits, 'file')}"
        if total > len(hits):
            head += f" (showing the first {len(hits)}; narrow with search_code or show_code)"
        return head + ":\n" + "\n".join(hits)

    def submit(self, locations: list[str], reason: str | None = None) -> str:
        cleaned = [str(location).strip() for location in locations if str(location).strip()]
        if not cleaned:
            raise ToolFailure("submit needs at least one location (a file path or path::Class.method)")
        distinct = list(dict.fromkeys(cleaned))
        checked = distinct[:MAX_CHECKED_LOCATIONS]
        unknown = [location for location in checked if not self.location_exists(location)]
        message = f"Submitted {plural(len(cleaned), 'location')}."
        if unknown:
            listed = [_cut(location, 120) for location in unknown[:MAX_LISTED_LOCATIONS]]
            if len(unknown) > MAX_LISTED_LOCATIONS:
                listed.append(f"and {len(unknown) - MAX_LISTED_LOCATIONS} more")
            message += f" Not found in the index (kept as given): {', '.join(listed)}"
        if len(distinct) > len(checked):
            message += "; " if unknown else " "
            message += (
                f"{len(distinct) - len(checked):,} distinct locations after the first {len(checked):,} "
            )
            message += "were not checked."
        return message

    def location_exists(self, location: str) -> bool:
        path, _, qualname = location.partition("::")
        try:
            path = confine(self.root, path)
        except PathRefused:
            return False
        if path not in self.index.files:
            return False
        return not qualname or self.index.find(entity_id(path, qualname)) is not None

    # --- tooltrain profile: the official RepoSearcher tools, raw code as they return it ------------------

    def get_code_of_class(self, file_name: str, class_name: str) -> str:
        path = self.file_arg(file_name)
        found = self.index.classes(class_name, path)
        if not found:
            return self._not_found("class", class_name, (CLASS,), path)
        return "\n\n".join(self.raw(p, entity) for p, entity in found)

    def get_code_of_class_function(self, file_name: str, class_name: str, func_name: str) -> str:
        path = self.file_arg(file_name)
        found = self.index.methods(class_name, func_name, path)
        if not found:
            if not self.index.classes(class_name, path):
                return self._not_found("class", class_name, (CLASS,), path)
            return self._not_found(f"method of class {class_name!r}", func_name, (METHOD,), path)
        return "\n\n".join(self.raw(p, entity) for p, entity in found)

    def get_code_of_file_function(self, file_name: str, func_name: str) -> str:
        path = self.file_arg(file_name)
        found = self.index.functions(func_name, path)
        if not found:
            return self._not_found("function", func_name, (FUNCTION,), path)
        return "\n\n".join(self.raw(p, entity) for p, entity in found)

    def exit(self) -> str:
        return "exit"


def _refusal(path: str, refused: NotReadable, limit: int) -> str:
    """What a model is told about a file ``read_source`` refused."""
    if refused.kind == BINARY:
        return f"{path} is a binary file"
    if refused.kind == TOO_LARGE:
        size = f"{refused.size} bytes" if refused.size is not None else f"more than {limit} bytes"
        return f"{path} is too large to show ({size}; the limit is {limit} bytes)"
    if refused.kind == UNREADABLE:
        return f"{path} cannot be read: {refused.detail}"
    return f"{path} cannot be shown: {refused.reason}"


_WORD_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _has_whole_word(text: str, word: str) -> bool:
    """``word`` occurs in ``text`` not inside a longer identifier. (A regular expression built around the
    word costs seconds to compile for a megabyte-long one; this costs one find per occurrence.)"""
    start = text.find(word)
    while start != -1:
        end = start + len(word)
        if (start == 0 or text[start - 1] not in _WORD_CHARACTERS) and (
            end == len(text) or text[end] not in _WORD_CHARACTERS
        ):
            return True
        start = text.find(word, start + 1)
    return False


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... (cut; {len(text)} characters)"
