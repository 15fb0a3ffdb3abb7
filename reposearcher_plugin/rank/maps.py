"""The repository lookups that the ranking's features need, built once per localizer over the search
index's documents: definitions by name, file and owner class; files by path suffix and module path; the
role of a file; imports; the definition a traceback frame ran in; definitions holding a literal text."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from typing import Any, NamedTuple, overload

from reposearcher_plugin.index import CLASS, METHOD, Entity, RepoIndex, entity_id, path_role
from reposearcher_plugin.index.locations import normalize_path, unique
from reposearcher_plugin.index.names import os_path
from reposearcher_plugin.index.reading import NotReadable, read_source
from reposearcher_plugin.rank.stems import name_stems
from reposearcher_plugin.tools.repo_tools import MAX_SHOW_BYTES
from reposearcher_plugin.tools.search_build import Documents


class EntityIds(Sequence[str]):
    """The entity id of every document, made when asked for (most documents are never shown)."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    def __len__(self) -> int:
        return len(self.documents)

    @overload
    def __getitem__(self, doc: int) -> str: ...

    @overload
    def __getitem__(self, doc: slice) -> list[str]: ...

    def __getitem__(self, doc: int | slice) -> str | list[str]:
        if isinstance(doc, slice):
            return [self[position] for position in range(*doc.indices(len(self)))]
        path, entity = self.documents[doc]
        return entity_id(path, entity.qualname)


class _Links(NamedTuple):
    """Class <-> method edges among one file's documents."""

    owner: dict[int, int]  # method -> its class
    members: dict[int, list[int]]  # class -> its methods, in file order


class RepoMaps:
    """Lookups the signals need, over the search index's documents; built once per localizer.

    Nothing is built up front: names are looked up through the index's name -> files map and each file's
    stored entity names, and what needs a file's definitions (its class <-> method edges, a definition's
    id) is worked out for that file when first asked, so a warm process decodes only the parses of the
    files a ranking looks at."""

    def __init__(self, index: RepoIndex, documents: Documents, lines: Callable[[str], list[str]]) -> None:
        self.index = index
        self.lines = lines
        self.documents = documents
        self.ids = EntityIds(documents)
        self._named: dict[str, dict[str, list[int]]] = {}  # per file: simple name -> its documents
        self._links: dict[str, _Links] = {}
        self._roles: dict[str, str] = {}
        self._bases: dict[int, list[list[int]]] = {}  # class -> per written base, the classes it names
        self._flat_bases: dict[int, list[int]] = {}
        self._ancestors: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._member_names: dict[int, frozenset[str]] = {}
        self._root = str(index.root)
        self._raw: dict[str, bytes | None] = {}  # file -> its bytes, for literal search
        self._texts: dict[str, str | None] = {}  # file -> its text, where the bytes would not do

    @cached_property
    def _suffixes(self) -> dict[str, list[str]]:
        """Path suffixes ("models/query.py", "query.py") -> files, for traceback and path mentions."""
        suffixes: dict[str, list[str]] = {}
        for path in self.index.files:
            parts = path.split("/")
            for start in range(len(parts)):
                suffixes.setdefault("/".join(parts[start:]), []).append(path)
        return suffixes

    @cached_property
    def _modules(self) -> dict[str, str]:
        """Dotted module paths, whole and by their tails ("db.models.query", "query") -> file; a package's
        ``__init__.py`` also by its module's name ("astropy.__init__")."""
        modules: dict[str, str] = {}
        for path in self.index.files:
            if path.endswith(".py"):
                parts = path[:-3].split("/")
                if parts[-1] == "__init__":
                    # a package is named as itself and as its module ("astropy.__init__")
                    for start in range(len(parts) - 1):
                        modules.setdefault(".".join(parts[start:]), path)
                    parts.pop()
                for start in range(len(parts)):
                    modules.setdefault(".".join(parts[start:]), path)
        return modules

    @cached_property
    def _module_words(self) -> dict[str, dict[tuple[str, ...], list[str]]]:
        """Files by the stemmed words of their module name (``palettes.py`` -> (palett,), a package's
        ``__init__.py`` -> its directory's name), grouped by the first of those words."""
        by_first: dict[str, dict[tuple[str, ...], list[str]]] = {}
        for path in self.index.files:
            words = module_name_words(path)
            if words:
                by_first.setdefault(words[0], {}).setdefault(words, []).append(path)
        return by_first

    def files_named_by(self, stems: set[str]) -> dict[str, int]:
        """The files whose module name's words (stemmed) are all among ``stems``, each with how many files
        share that name: ``{"seaborn/palettes.py": 1}`` for the stems of "Move palette functions"."""
        found: dict[str, int] = {}
        for first in stems:
            for words, paths in self._module_words.get(first, {}).items():
                if all(word in stems for word in words):
                    found.update(dict.fromkeys(paths, len(paths)))
        return found

    def _links_of(self, path: str) -> _Links:
        links = self._links.get(path)
        if links is None:
            span = self.documents.span(path)
            entities = self.index.files[path].parse.entities if span else ()
            classes = {
                entity.qualname: doc
                for doc, entity in zip(span, entities, strict=True)
                if entity.kind == CLASS
            }
            links = _Links({}, {})
            for doc, entity in zip(span, entities, strict=True):
                if entity.kind == METHOD and entity.parent in classes:
                    owner = classes[entity.parent]
                    links.owner[doc] = owner
                    links.members.setdefault(owner, []).append(doc)
            self._links[path] = links
        return links

    def role(self, path: str) -> str:
        role = self._roles.get(path)
        if role is None:
            role = self._roles[path] = path_role(path)
        return role

    def match_path(self, written: str) -> list[str]:
        """Repository files that ``written`` (absolute, relative, site-packages...) names, by the
        longest path suffix that some file has; a bare file name only when it is unambiguous enough."""
        parts = normalize_path(written).split("/")
        for start in range(len(parts)):
            targets = self._suffixes.get("/".join(parts[start:]))
            if targets:
                if start == len(parts) - 1 and len(parts) > 1:
                    return []  # only the file name matched a path with directories: some other file
                return targets if len(targets) <= 3 else []
        return []

    def match_module(self, dotted: str) -> tuple[str | None, str]:
        """``django.db.models.query.QuerySet`` -> (``django/db/models/query.py``, ``QuerySet``); needs at
        least two components of module path, so ``self.x`` or ``query.union`` are not modules."""
        parts = dotted.split(".")
        for end in range(len(parts), 1, -1):
            path = self._modules.get(".".join(parts[:end]))
            if path is not None:
                return path, ".".join(parts[end:])
        return None, ""

    def docs_named(self, name: str, path: str | None = None) -> list[int]:
        """Definitions whose qualified name is ``name`` or ends with ``.name``, in document order."""
        simple = name.rsplit(".", 1)[-1]
        paths = self.index.files_defining(simple) if path is None else [path]
        docs = [doc for found in paths for doc in self._named_in(found).get(simple, ())]
        if "." in name:
            suffix = "." + name
            docs = [
                doc
                for doc in docs
                if self.documents[doc][1].qualname == name or self.documents[doc][1].qualname.endswith(suffix)
            ]
        return docs

    def _named_in(self, path: str) -> dict[str, list[int]]:
        named = self._named.get(path)
        if named is None:
            named = {}
            span = self.documents.span(path)
            if span:
                indexed = self.index.files[path]
                names = indexed.names.split("\n")
                if len(names) != len(span):  # not the names of these documents: ask the parse
                    names = [entity.name for entity in indexed.parse.entities]
                for doc, simple in zip(span, names, strict=True):
                    named.setdefault(simple, []).append(doc)
            self._named[path] = named
        return named

    def docs_containing(self, fragment: str, limit: int = 50) -> list[int]:
        """Definitions whose source holds ``fragment`` literally (at most ``limit``: a fragment found
        everywhere says nothing).

        Searched in each file's bytes where that finds exactly what a search of its text (the lines the
        tools show, joined) finds: the file is UTF-8 (a substring of UTF-8 text is one of its bytes, and
        back) and the fragment has no line break (the text drops the "\\r" of a CRLF). Reading the bytes
        costs a tenth of decoding and splitting every file, which a fresh process pays for every
        quoted message."""
        try:
            needle = None if "\r" in fragment or "\n" in fragment else fragment.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only the texts can hold it
            needle = None
        found: list[int] = []
        for path in self.documents.paths:
            source = self._bytes(path) if needle is not None else None
            if source is None:
                source = self._text(path)
            if source is None:
                continue
            for line in _lines_holding(source, needle if isinstance(source, bytes) else fragment):
                entity = self.index.enclosing(path, line)
                doc = self._doc_of(path, entity) if entity is not None else None
                if doc is not None and doc not in found:
                    found.append(doc)
                    if len(found) > limit:
                        return []
        return found

    def _bytes(self, path: str) -> bytes | None:
        """The file's bytes when they are UTF-8, else None (then its text is searched)."""
        if path not in self._raw:
            indexed = self.index.files[path]
            limit = max(indexed.size, MAX_SHOW_BYTES)  # what RepoTools.lines reads
            try:
                data: bytes | None = read_source(os.path.join(self._root, os_path(path)), limit)
            except NotReadable:
                data = None
            if data is not None and not data.isascii():
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    data = None
            self._raw[path] = data
        return self._raw[path]

    def _text(self, path: str) -> str | None:
        """The file's text as the tools show it, its lines joined; None when it cannot be read."""
        if path not in self._texts:
            try:
                self._texts[path] = "\n".join(self.lines(path))
            except Exception:  # unreadable: nothing to find in it
                self._texts[path] = None
        return self._texts[path]

    def docs_using(self, word: str, paths: Iterable[str]) -> list[int]:
        """The definitions of ``paths`` whose own lines use ``word`` (index/identifiers.py), in order; only
        these files' words are decoded."""
        found: list[int] = []
        for path in paths:
            span = self.documents.span(path)
            if span:
                found += [span[position] for position in self.index.owners_using(path, word)]
        return found

    def docs_in_file(self, path: str) -> list[int]:
        return list(self.documents.span(path))

    def owner(self, doc: int) -> int | None:
        return self._links_of(self.documents.path_of(doc)).owner.get(doc)

    def members(self, doc: int) -> list[int]:
        return self._links_of(self.documents.path_of(doc)).members.get(doc, [])

    def bases(self, doc: int) -> list[int]:
        """The classes that the class ``doc`` names as its bases, resolved by their simple name: in its own
        file, else in the files it imports, else anywhere when at most three classes have the name."""
        flat = self._flat_bases.get(doc)
        if flat is None:
            flat = [base for resolved in self._resolved_bases(doc) for base in resolved]
            self._flat_bases[doc] = flat
        return flat

    def ancestors(self, doc: int, depth: int) -> list[tuple[int, int]]:
        """(base class, depth) up to ``depth`` levels above the class ``doc``, nearest first, each once;
        kept, as a ranking asks for the same classes' ancestors over and over."""
        key = (doc, depth)
        found = self._ancestors.get(key)
        if found is None:
            seen = {doc}
            found = []
            frontier = [doc]
            for level in range(1, depth + 1):
                frontier = [base for current in frontier for base in self.bases(current) if base not in seen]
                frontier = list(dict.fromkeys(frontier))
                seen.update(frontier)
                found += [(base, level) for base in frontier]
            self._ancestors[key] = found
        return found

    def member_names(self, doc: int) -> frozenset[str]:
        """The simple names of the class ``doc``'s methods (empty for anything else)."""
        names = self._member_names.get(doc)
        if names is None:
            names = self._member_names[doc] = frozenset(
                self.documents[member][1].name for member in self.members(doc)
            )
        return names

    def bases_all_known(self, doc: int) -> bool:
        """Every base the class ``doc`` names (``object`` aside) is a class of the repository: what it
        inherits is all in the index (``AppGroup(click.Group)`` inherits from outside)."""
        return all(self._resolved_bases(doc))

    def _resolved_bases(self, doc: int) -> list[list[int]]:
        """Per base written in the class's header, the classes it resolves to ([] for none)."""
        resolved = self._bases.get(doc)
        if resolved is None:
            resolved = self._bases[doc] = self._resolve_bases(doc)
        return resolved

    def _resolve_bases(self, doc: int) -> list[list[int]]:
        path = self.documents.path_of(doc)
        found: list[list[int]] = []
        local: set[str] | None = None
        path_of = self.documents.path_of

        def is_class(other: int) -> bool:
            return self.documents[other][1].kind == CLASS

        for written in self._written_bases(doc):
            named = self.docs_named(written.rsplit(".", 1)[-1])
            # by path first: the definitions of files that are not near are decoded only when no near
            # file has the class, to count the classes of that name
            near = [other for other in named if path_of(other) == path and is_class(other)]
            if not near:
                local = set(self.imports(path)) if local is None else local
                near = [other for other in named if path_of(other) in local and is_class(other)]
            if not near:
                classes = [other for other in named if is_class(other)]
                near = classes if len(classes) <= 3 else []
            found.append([other for other in near if other != doc])
        return found

    def _written_bases(self, doc: int) -> list[str]:
        """The bases as the class header writes them (``Base``, ``pkg.Other``), keywords
        (``metaclass=Meta``) and ``object`` left out.

        The index keeps no base list, so the header is read from the class's lines; a base written as a
        call or a subscript (``with_metaclass(M, B)``, ``Generic[T]``) makes the header unreadable here,
        and then none are given."""
        path, entity = self.documents[doc]
        if entity.kind != CLASS:
            return []
        try:
            lines = self.lines(path)
        except Exception:  # unreadable now: no bases to follow
            return []
        header = _CLASS_HEADER.search("\n".join(lines[entity.start - 1 : entity.start + _HEADER_LINES]))
        if header is None or header.group(2) is None:
            return []
        written = [part.strip() for part in header.group(2).split(",")]
        return [
            part
            for part in written
            if part and "=" not in part and part != "object" and _DOTTED_NAME.fullmatch(part)
        ]

    def imports(self, path: str) -> list[str]:
        indexed = self.index.files.get(path)
        if indexed is None:
            return []
        targets: list[str] = []
        for imported in indexed.parse.imports:
            targets += self.index.resolve_import(path, imported)
        return unique(targets)

    def frame_entity(self, path: str, line: int, function: str) -> int | None:
        """The definition a frame ran in: the one enclosing its line when its name agrees (or the frame
        names none), else the definition of that name in the file (the issue's version of the file may
        differ from this commit's)."""
        entity = self.index.enclosing(path, line)
        simple = function.rsplit(".", 1)[-1]  # IPython frames name Class.method
        if entity is not None and (not function or entity.name == simple or function.startswith("<")):
            return self._doc_of(path, entity)
        if function and not function.startswith("<"):
            docs = self.docs_named(function, path)
            if docs:
                return docs[0]
        return None

    def _doc_of(self, path: str, entity: Entity) -> int | None:
        span = self.documents.span(path)
        if span:
            for doc, candidate in zip(span, self.index.files[path].parse.entities, strict=True):
                if candidate == entity:
                    return doc
        return None


def module_name_words(path: str) -> tuple[str, ...]:
    """The stemmed words of a file's module name (its name without the extension; a package's
    ``__init__`` is its directory's name), stopwords left out; () for a name under MIN_MODULE_NAME
    letters, which matches too many words of prose (``io.py``, ``c.py``)."""
    directory, _, name = path.rpartition("/")
    name = name.split(".", 1)[0]
    if name == "__init__":
        name = directory.rpartition("/")[2]
    if len(name) < MIN_MODULE_NAME:
        return ()
    return name_stems(name)


# A module name shorter than this is never matched to an issue's words.
MIN_MODULE_NAME = 3

# A class header: decorators come first in the span, so the "class" line is searched for; the bases
# run to the first ")" (a base holding parentheses is a call, which names no class here).
_CLASS_HEADER = re.compile(r"^[ \t]*class[ \t]+(\w+)[ \t]*(?:\(([^()]*)\))?", re.M)
_HEADER_LINES = 12  # decorators and a base list split over lines fit in this many
_DOTTED_NAME = re.compile(r"[A-Za-z_][\w.]*")


def _lines_holding(source: Any, target: Any) -> Iterator[int]:
    """The line (1-based) of each occurrence of ``target`` in ``source``, overlapping ones included; both
    ``str`` or both ``bytes``."""
    line_end = b"\n" if isinstance(source, bytes) else "\n"
    start = source.find(target)
    while start >= 0:
        yield source.count(line_end, 0, start) + 1
        start = source.find(target, start + 1)
