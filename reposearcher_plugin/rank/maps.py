"""The repository lookups that the ranking's features need, built once per localizer over the search
index's documents: definitions by name, file and owner class; files by path suffix and module path; the
role of a file; imports; the definition a traceback frame ran in; definitions holding a literal text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import NamedTuple, overload

from reposearcher_plugin.index import CLASS, METHOD, Entity, RepoIndex, entity_id, path_role
from reposearcher_plugin.index.locations import normalize_path, unique
from reposearcher_plugin.tools.search_index import Documents


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
        """Dotted module paths, whole and by their tails ("db.models.query", "query") -> file."""
        modules: dict[str, str] = {}
        for path in self.index.files:
            if path.endswith(".py"):
                parts = path[:-3].split("/")
                if parts[-1] == "__init__":
                    parts.pop()
                for start in range(len(parts)):
                    modules.setdefault(".".join(parts[start:]), path)
        return modules

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
        everywhere says nothing)."""
        found: list[int] = []
        for path, text in self.texts.items():
            start = text.find(fragment)
            while start >= 0:
                entity = self.index.enclosing(path, text.count("\n", 0, start) + 1)
                doc = self._doc_of(path, entity) if entity is not None else None
                if doc is not None and doc not in found:
                    found.append(doc)
                    if len(found) > limit:
                        return []
                start = text.find(fragment, start + 1)
        return found

    @cached_property
    def texts(self) -> dict[str, str]:
        """Each source file's text that has definitions, for literal message search."""
        texts: dict[str, str] = {}
        for path in self.documents.paths:
            try:
                texts[path] = "\n".join(self.lines(path))
            except Exception:  # unreadable: nothing to find in it
                continue
        return texts

    def docs_in_file(self, path: str) -> list[int]:
        return list(self.documents.span(path))

    def owner(self, doc: int) -> int | None:
        return self._links_of(self.documents.path_of(doc)).owner.get(doc)

    def members(self, doc: int) -> list[int]:
        return self._links_of(self.documents.path_of(doc)).members.get(doc, [])

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
