"""The in-memory index of one repository tree: files, definitions, imports, and fast lookups by name.

It is immutable once built, so one instance can serve any number of concurrent tool calls and rollouts.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate
from pathlib import Path

from reposearcher_plugin.index.cache import ParseCache
from reposearcher_plugin.index.identifiers import decode_words
from reposearcher_plugin.index.languages import PARSER_VERSION, language_name
from reposearcher_plugin.index.model import CLASS, FUNCTION, METHOD, Entity, FileParse, Import, decode_parse


@dataclass(frozen=True)
class BuildStats:
    """What the build that produced an index did; part of the index, fixed when it is constructed."""

    files: int = 0
    entities: int = 0
    parsed: int = 0  # files parsed in this build
    from_cache: int = 0  # files whose parse came from the content cache
    unchanged: int = 0  # files reused from the previous snapshot without reading them
    skipped: dict[str, int] = field(default_factory=dict)  # reason kind -> count
    seconds: float = 0.0


def content_key(module: str, digest: str) -> str:
    """The cache key of a file's content as ``module`` parses it: what the parse and everything derived
    from the content alone (the search index's tokens) are stored under."""
    return f"{PARSER_VERSION}:{module}:{digest}"


class IndexedFile:
    """One parsed file. Its parse stays encoded until first use: a warm load then costs one read of
    the snapshot, not the construction of every entity of the repository."""

    __slots__ = (
        "_blob",
        "_joined_words",
        "_parse",
        "_positions",
        "_words",
        "_words_blob",
        "digest",
        "module",
        "names",
        "path",
        "size",
    )

    def __init__(
        self, path: str, module: str, size: int, digest: str, blob: bytes, names: str, words: bytes
    ) -> None:
        self.path = path
        self.module = module  # language module that parsed it
        self.size = size
        self.digest = digest  # sha1 of the bytes that were parsed
        self.names = names  # "\n"-joined simple names of its entities, in order
        self._blob: bytes | None = blob
        self._parse: FileParse | None = None
        self._positions: dict[str, tuple[int, ...]] | None = None
        self._words_blob: bytes | None = words
        self._words: tuple[str, ...] | None = None
        self._joined_words: tuple[str, list[int]] | None = None

    @property
    def parse(self) -> FileParse:
        if self._parse is None:
            self._parse = decode_parse(self._blob)  # type: ignore[arg-type]
            self._blob = None
        return self._parse

    @property
    def words(self) -> tuple[str, ...]:
        """Its identifier words (index/identifiers.py), "\n"-joined per owner: [0] the lines outside every
        definition, [i + 1] the lines ``parse.entities[i]`` owns. Decoded on first use, apart from the
        parse, which most lookups need without them."""
        if self._words is None:
            self._words = decode_words(self._words_blob)  # type: ignore[arg-type]
            self._words_blob = None
        return self._words

    def owners_of(self, word: str) -> list[int]:
        """The owners whose words hold ``word`` (0: the lines outside every definition, i + 1:
        ``parse.entities[i]``), in order, each once: found in all of the file's words at once, so the cost
        is that of one search of the file's words, not of one per definition."""
        if not word:  # no run of characters is empty (the search for one never ended)
            return []
        if "\n" in word:  # not a word: matched within each owner's words, as always
            return [owner for owner, owned in enumerate(self.words) if _holds_word(owned, word)]
        if self._joined_words is None:
            words = self.words
            starts = list(accumulate((len(owned) + 1 for owned in words[:-1]), initial=0))
            self._joined_words = ("\n".join(words), starts)
        joined, starts = self._joined_words
        owners: list[int] = []
        # a word holds no "\n", so a match never spans two owners, and none starts inside another match
        start = joined.find(word)
        while start != -1:
            end = start + len(word)
            if (start == 0 or joined[start - 1] == "\n") and (end == len(joined) or joined[end] == "\n"):
                owner = bisect.bisect_right(starts, start) - 1
                if not owners or owners[-1] != owner:
                    owners.append(owner)
            start = joined.find(word, end)
        return owners

    @property
    def language(self) -> str:
        return language_name(self.module)

    @property
    def content_key(self) -> str:
        return content_key(self.module, self.digest)

    def positions(self, qualname: str) -> tuple[int, ...]:
        """Where the entities called ``qualname`` are in ``parse.entities`` (several when a property's
        getter and setter, or the two branches of an ``if``, define the same name); built on first use."""
        if self._positions is None:
            positions: dict[str, list[int]] = {}
            for position, entity in enumerate(self.parse.entities):
                positions.setdefault(entity.qualname, []).append(position)
            self._positions = {name: tuple(found) for name, found in positions.items()}
        return self._positions.get(qualname, ())


def entity_id(path: str, qualname: str) -> str:
    """The contract id (docs/formats.md): ``path::Class.method``."""
    return f"{path}::{qualname}"


def innermost(entities: Iterable[Entity], line: int) -> Entity | None:
    """The innermost of ``entities`` whose span holds ``line`` (the latest-starting one that does)."""
    best = None
    for entity in entities:
        if entity.start <= line <= entity.end and (best is None or entity.start >= best.start):
            best = entity
    return best


def _holds_word(words: str, word: str) -> bool:
    """``word`` is one of the "\n"-joined ``words``."""
    start = words.find(word)
    while start != -1:
        end = start + len(word)
        if (start == 0 or words[start - 1] == "\n") and (end == len(words) or words[end] == "\n"):
            return True
        start = words.find(word, end)
    return False


def entity_count(files: dict[str, IndexedFile]) -> int:
    """How many definitions ``files`` hold, counted from their names without decoding a parse."""
    return sum(indexed.names.count("\n") + 1 for indexed in files.values() if indexed.names)


def name_map(files: dict[str, IndexedFile]) -> dict[str, list[str]]:
    """Simple entity name -> the files that define it, in path order."""
    by_name: dict[str, list[str]] = {}
    for path, indexed in files.items():
        if indexed.names:
            for name in set(indexed.names.split("\n")):
                by_name.setdefault(name, []).append(path)
    return by_name


class RepoIndex:
    def __init__(
        self,
        root: Path,
        files: dict[str, IndexedFile],
        other_files: list[str],
        skipped: dict[str, str],
        *,
        stats: BuildStats,
        by_name: dict[str, list[str]] | None = None,
        cache: ParseCache | None = None,
    ) -> None:
        self.root = root
        self.files = files
        self.other_files = other_files
        self.skipped = skipped
        self.stats = stats  # what the build that produced it did
        # the cache it was built with (None: uncached), for what upper layers derive from its files
        self.cache = cache
        # simple name -> files defining it (path order): where every name lookup starts
        self._by_name = by_name if by_name is not None else name_map(files)
        self.entity_count = entity_count(files)

    def entities(self) -> Iterator[tuple[str, Entity]]:
        for path, indexed in self.files.items():
            for entity in indexed.parse.entities:
                yield path, entity

    def names(self) -> list[str]:
        return list(self._by_name)

    def files_defining(self, name: str) -> Sequence[str]:
        """The files that define something whose simple name is ``name``, in index order (no parse is
        decoded: the names are kept beside each parse)."""
        return self._by_name.get(name, ())

    # --- lookups -------------------------------------------------------------------------------------

    def lookup(self, name: str, kinds: tuple[str, ...], file: str | None = None) -> list[tuple[str, Entity]]:
        """Definitions called ``name`` (a simple name, or a dotted qualified-name suffix such as
        ``Outer.Inner``), of the given kinds, optionally only in ``file``."""
        simple = name.rsplit(".", 1)[-1]
        dotted = "." in name
        found = []
        for path in self._by_name.get(simple, ()):
            if file is not None and path != file:
                continue
            for entity in self.files[path].parse.entities:
                if entity.kind not in kinds or entity.name != simple:
                    continue
                if dotted and not (entity.qualname == name or entity.qualname.endswith("." + name)):
                    continue
                found.append((path, entity))
        return found

    def classes(self, name: str, file: str | None = None) -> list[tuple[str, Entity]]:
        return self.lookup(name, (CLASS,), file)

    def functions(self, name: str, file: str | None = None) -> list[tuple[str, Entity]]:
        return self.lookup(name, (FUNCTION,), file)

    def methods(self, class_name: str, method_name: str, file: str | None = None) -> list[tuple[str, Entity]]:
        """Methods ``method_name`` of every class called ``class_name`` (each class's own, not inherited)."""
        found = []
        for path, owner in self.classes(class_name, file):
            for candidate_path, method in self.lookup(method_name, (METHOD,), path):
                if candidate_path == path and method.parent == owner.qualname:
                    found.append((path, method))
        return sorted(set(found), key=lambda item: (item[0], item[1].start))

    def members(self, path: str, owner: Entity) -> list[Entity]:
        """Definitions directly inside ``owner`` (methods of a class, nested functions of a function)."""
        prefix = owner.qualname + "."
        return [
            entity
            for entity in self.files[path].parse.entities
            if entity.qualname.startswith(prefix)
            and "." not in entity.qualname[len(prefix) :]
            and owner.start <= entity.start
            and entity.end <= owner.end
        ]

    def enclosing(self, path: str, line: int) -> Entity | None:
        """The innermost definition of ``path`` whose span holds ``line``."""
        return innermost(self.files[path].parse.entities, line)

    def find(self, location: str) -> Entity | None:
        """The definition with entity id ``location`` (``path::Class.method``), the first in file order
        when several share the id; None when the index has none (a file alone is not a definition)."""
        found = self.find_all(location)
        return found[0] if found else None

    def find_all(self, location: str) -> tuple[Entity, ...]:
        """Every definition with entity id ``location``, in file order: one lookup, not a scan."""
        path, _, qualname = location.partition("::")
        indexed = self.files.get(path)
        if indexed is None or not qualname:
            return ()
        entities = indexed.parse.entities
        return tuple(entities[position] for position in indexed.positions(qualname))

    # --- words: references between definitions (index/identifiers.py) ------------------------------------
    # A word is an identifier-shaped run of characters (code, comments and strings alike), attributed to the
    # innermost definition holding its line. Computed once per file content with the parse, so each call
    # here is a lookup; nothing reads a file.

    @cached_property
    def _files_by_word(self) -> dict[str, tuple[str, ...]]:
        """word -> the files it occurs in, in index order: built once per index, on first use."""
        by_word: dict[str, list[str]] = {}
        for path, indexed in self.files.items():
            for word in set("\n".join(indexed.words).split("\n")):
                by_word.setdefault(word, []).append(path)
        by_word.pop("", None)  # from owners without words
        return {word: tuple(paths) for word, paths in by_word.items()}

    def files_using(self, word: str) -> tuple[str, ...]:
        """The files in which ``word`` occurs as a whole word, in index order."""
        return self._files_by_word.get(word, ())

    def referencing(self, name: str) -> list[str]:
        """Who uses the word ``name`` in their own lines (a call, an attribute, a type, a mention in a
        comment or string): entity ids, and a file's path for its lines outside every definition. In index
        order: file by file, the module level first, then definitions in file order; each id once.
        Lines of a nested definition count for it, not for the definitions around it."""
        found: list[str] = []
        for path in self.files_using(name):
            indexed = self.files[path]
            for owner in indexed.owners_of(name):
                found.append(entity_id(path, indexed.parse.entities[owner - 1].qualname) if owner else path)
        return list(dict.fromkeys(found))

    def owners_using(self, path: str, word: str) -> list[int]:
        """The positions in ``path``'s ``parse.entities`` of the definitions whose own lines use ``word``,
        in file order; only this file's words are decoded ([] for a file the index does not have)."""
        indexed = self.files.get(path)
        if indexed is None:
            return []
        return [owner - 1 for owner in indexed.owners_of(word) if owner]

    def names_used_by(self, location: str) -> list[str]:
        """The words the definition ``location`` (an entity id; a file's path for its module-level lines)
        uses in its own lines, in order of first use; [] when the index does not know it. Which of them
        name definitions is for the caller to ask (``lookup``)."""
        path, _, qualname = location.partition("::")
        indexed = self.files.get(path)
        if indexed is None:
            return []
        words = indexed.words
        owners = [position + 1 for position in indexed.positions(qualname)] if qualname else [0]
        return list(dict.fromkeys(word for owner in owners for word in words[owner].split("\n") if word))

    # --- imports ---------------------------------------------------------------------------------------

    @cached_property
    def _python_modules(self) -> dict[str, str]:
        """Dotted module name -> file, for every Python file, both from the repository root and from the
        top of its package (so ``src/pkg/mod.py`` answers to ``pkg.mod`` as well as ``src.pkg.mod``)."""
        packages = {path.rsplit("/", 1)[0] for path in self.files if path.endswith("/__init__.py")}
        modules: dict[str, str] = {}
        for path, indexed in self.files.items():
            if indexed.language != "python" or not path.endswith(".py"):
                continue
            parts = path[:-3].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            if not parts:
                continue
            modules.setdefault(".".join(parts), path)
            # climb while the containing directory is a package; the first non-package is a source root
            top = len(parts) - 1
            while top > 0 and "/".join(parts[:top]) in packages:
                top -= 1
            if top > 0:
                modules.setdefault(".".join(parts[top:]), path)
        return modules

    def resolve_import(self, path: str, imported: Import) -> list[str]:
        """Repository files an import refers to ([] for third-party and standard-library modules)."""
        if self.files[path].language != "python":
            return []
        module = imported.module
        if module.startswith("."):
            dots = len(module) - len(module.lstrip("."))
            package = path.split("/")[:-1]
            package = package[: max(0, len(package) - (dots - 1))]  # each extra dot climbs one package
            module = ".".join(part for part in (".".join(package), module[dots:]) if part)
        modules = self._python_modules
        # `from pkg import sub` may name a submodule; names that are not submodules live in pkg itself
        submodules = [modules.get(f"{module}.{name}" if module else name) for name in imported.names]
        resolved = [submodule for submodule in submodules if submodule]
        target = modules.get(module)
        if target and (not imported.names or len(resolved) < len(imported.names)):
            resolved.append(target)
        return list(dict.fromkeys(resolved))
