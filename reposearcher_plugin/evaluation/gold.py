"""Gold locations from a gold patch: the entities (and files) the patch edits, read against the tree of
the base commit.

Output format (ToolTrain / CoSIL gold): ``{instance_id: ["path.py::Class.method", "path.py::func",
"path.py", ...]}``. Rules (docs/gold.md explains each and measures them against published gold):

1. **Removed and modified lines** map to the innermost definition (class, function, method; nested
   definitions as ``outer.inner``) that holds the line in the base-commit file.
2. **Added lines** map to the innermost definition that holds them in the patched file. When that
   definition exists in the base file (same qualified name) it is the label; a definition that exists only
   in the patched file (a new method, a new function) is replaced by its nearest enclosing definition
   that does exist at the base (the class that gains a method), or by the file when there is none.
   So every label names something that exists at the base commit, where a localizer searches.
3. **Decorators** belong to the definition they decorate (entity spans include them).
4. **Class-body lines** outside any method (class attributes, the class statement, its docstring) map to
   the class itself.
5. **Lines outside every definition** (imports, module-level assignments and code, module docstring)
   make the file itself a label (``"path.py"``).
6. **Blank lines** (added or removed lines holding only whitespace) are ignored. Comment lines count,
   and a comment directly above a definition (only comment lines between them) belongs to it.
7. **Deleted definitions** are labelled (rule 1): they exist at the base, and finding them is finding
   the fix.
8. **Deleted files** are labelled by their path alone. **New files** are left out: nothing at the base
   commit to find (the edits that wire them in, an import, a registration, are labelled as usual).
   **Renamed files** are labelled under their base path.
9. **Files the index does not parse** (documentation, changelogs, data, configuration, Cython...) are left
   out unless ``include_non_source`` is set, in which case they are labelled by their path. Files in any
   language the index parses follow rules 1-6.
10. Labels come per file in patch order: entities by their first line at the base, then the file label.

Hunks apply as ``git apply`` applies them: context and removed lines must match exactly, at the stated
line or the nearest line where they do (some gold patches are offset by a few lines). A patch that does
not fit the base tree raises ``GoldError``: gold derived from the wrong tree would be silently wrong.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import unidiff

from reposearcher_plugin.evaluation import gold_source
from reposearcher_plugin.evaluation.diffs import DiffError, diff_paths, parse_diff
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.evaluation.locations import normalize_location, unique
from reposearcher_plugin.index import Entity, ParseCache, RepoIndex, build_index, entity_id, innermost
from reposearcher_plugin.index.languages import module_for, parse_source
from reposearcher_plugin.index.names import os_path
from reposearcher_plugin.workspace import Workspace, WorkspaceError

Progress = Callable[[int, int], None]  # (instances done, instances to do)


class GoldError(gold_source.GoldError):
    """Gold cannot be derived for an instance (an unreadable patch, or one that does not fit the base).
    A kind of ``gold_source.GoldError``, so ``eval loc`` reports it like any other gold problem."""


@dataclass(frozen=True)
class GoldResult:
    instance_id: str
    labels: list[str] | None  # None when it failed
    error: str = ""


class Attribution(NamedTuple):
    """Why a label is in the gold: one changed line (or a whole-file rule) and what it maps to."""

    path: str  # the file at the base commit
    side: str  # "removed" (line at the base), "added" (line in the patched file) or "file"
    line: int  # 1-based line number on that side; 0 for whole-file rules
    text: str  # the line as the patch writes it ("" for whole-file rules)
    label: str  # entity id or path
    start: int  # first line of the label's definition at the base (0 for a file label): label order
    note: str  # how it was mapped, when not simply "innermost enclosing definition"


class BaseTree(Protocol):
    """The files of a base commit as gold reads them: an index of a checked-out tree (``IndexTree``) or
    blobs read straight out of git (evaluation/mining_gold.py), which need no checkout at all."""

    where: str  # names the tree in error messages

    def read(self, path: str) -> bytes | None:
        """The bytes of the repository path ``path`` at the base commit; None when the tree lacks it."""
        ...

    def definitions(self, path: str, data: bytes) -> tuple[Entity, ...]:
        """The entities of ``data``, a version of the file ``path`` (its base version or a patched one),
        as the index's extractor finds them."""
        ...


class IndexTree:
    """A ``BaseTree`` over the index of a checked-out base commit."""

    def __init__(self, index: RepoIndex) -> None:
        self.index = index
        self.where = str(index.root)

    def read(self, path: str) -> bytes | None:
        try:
            return (self.index.root / os_path(path)).read_bytes()
        except OSError:
            return None

    def definitions(self, path: str, data: bytes) -> tuple[Entity, ...]:
        indexed = self.index.files.get(path)
        if indexed is not None and indexed.digest == hashlib.sha1(data).hexdigest():
            return indexed.parse.entities
        # another version of the file, or one the index left out (over its size limit, say): parse it
        # here, with the same extractor
        module = module_for(path)
        return parse_source(module, path, data).entities if module else ()


def _tree(base: RepoIndex | BaseTree) -> BaseTree:
    return IndexTree(base) if isinstance(base, RepoIndex) else base


def derive_gold(
    instance: Instance, index: RepoIndex | BaseTree, *, include_non_source: bool = False
) -> list[str]:
    """The gold labels of ``instance``'s patch; ``index`` is the index of its base commit's tree (or any
    ``BaseTree`` of that commit)."""
    return labels_of(explain_gold(instance, index, include_non_source=include_non_source))


def explain_gold(
    instance: Instance, index: RepoIndex | BaseTree, *, include_non_source: bool = False
) -> list[Attribution]:
    """Every changed line of the patch with the label it maps to, file by file in patch order."""
    try:
        patch = parse_diff(instance.patch)
    except DiffError as error:
        raise GoldError(f"{instance.instance_id}: the patch cannot be parsed: {error}") from None
    return explain_patch(instance.instance_id, patch, _tree(index), include_non_source=include_non_source)


def explain_patch(
    instance_id: str,
    patch: Iterable[unidiff.PatchedFile],
    tree: BaseTree,
    *,
    include_non_source: bool = False,
) -> list[Attribution]:
    """``explain_gold`` of a diff already read (``instance_id`` names it in errors)."""
    found: list[Attribution] = []
    for patched in patch:
        found.extend(_file_attributions(instance_id, patched, tree, include_non_source))
    return found


def labels_of(attributions: list[Attribution]) -> list[str]:
    """The gold labels ``attributions`` give, in the order ``derive_gold`` lists them."""
    labels: list[str] = []
    for group in _by_file(attributions):
        entities = [item for item in group if item.label != item.path]
        labels.extend(item.label for item in sorted(entities, key=lambda item: (item.start, item.label)))
        if len(entities) < len(group):
            labels.append(group[0].path)
    return list(dict.fromkeys(labels))


def _by_file(attributions: list[Attribution]) -> list[list[Attribution]]:
    groups: dict[str, list[Attribution]] = {}
    for item in attributions:
        groups.setdefault(item.path, []).append(item)
    return list(groups.values())


def _file_attributions(
    instance_id: str, patched: unidiff.PatchedFile, tree: BaseTree, include_non_source: bool
) -> list[Attribution]:
    old_path, new_path = diff_paths(patched)  # repository paths, as the index and predictions name files

    def whole(note: str) -> list[Attribution]:
        return [Attribution(old_path, "file", 0, "", old_path, 0, note)]

    if patched.is_added_file:
        return []
    if module_for(old_path) is None or patched.is_binary_file:
        return whole("a file the index does not parse") if include_non_source else []
    if patched.is_removed_file:
        return whole("deleted file")
    if not len(patched):  # a rename or a mode change without content changes
        return whole("renamed file") if patched.is_rename else []
    old_data = _read_base(instance_id, tree, old_path)
    old_lines = split_lines(old_data.decode("utf-8", "surrogateescape"))
    applied = apply_file_patch(instance_id, old_path, old_lines, patched)
    old_entities = tree.definitions(old_path, old_data)
    new_data = "".join(line + "\n" for line in applied.new_lines).encode("utf-8", "surrogateescape")
    # a file renamed to a name no grammar parses is read in its base language
    new_entities = tree.definitions(new_path if module_for(new_path) else old_path, new_data)
    starts: dict[str, int] = {}
    for entity in old_entities:
        starts.setdefault(entity.qualname, entity.start)

    found = []
    for line, text in applied.removed:
        owner = _owner(old_entities, old_lines, line)
        if owner is None:
            note = "outside every definition"
            found.append(Attribution(old_path, "removed", line, text, old_path, 0, note))
        else:
            label = entity_id(old_path, owner.qualname)
            found.append(Attribution(old_path, "removed", line, text, label, starts[owner.qualname], ""))
    for line, text in applied.added:
        owner = _owner(new_entities, applied.new_lines, line)
        name = _existing_ancestor(owner.qualname, starts) if owner else ""
        if owner is None:
            note = "outside every definition"
        elif name != owner.qualname:
            where = f"its enclosing {name}" if name else "the file"
            note = f"in {owner.qualname}, which the base lacks: {where}"
        else:
            note = ""
        label = entity_id(old_path, name) if name else old_path
        found.append(Attribution(old_path, "added", line, text, label, starts.get(name, 0), note))
    return found


def _read_base(instance_id: str, tree: BaseTree, path: str) -> bytes:
    data = tree.read(path)
    if data is None:
        raise GoldError(
            f"{instance_id}: the patch edits {path}, which the base tree {tree.where} lacks: wrong commit?"
        )
    return data


def split_lines(text: str) -> list[str]:
    """Lines as git and the index count them: only "\\n" ends a line (str.splitlines would also split
    at form feeds and other separators that Python sources do contain)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _owner(entities: Sequence[Entity], lines: list[str], line: int) -> Entity | None:
    """The definition a changed line belongs to: the innermost one holding it, except that a comment
    directly above a definition (nothing but comment lines between them) belongs to that definition."""
    owner = innermost(entities, line)
    if not lines[line - 1].lstrip().startswith("#"):
        return owner
    following = line + 1
    while following <= len(lines) and lines[following - 1].lstrip().startswith("#"):
        following += 1
    parent = owner.qualname if owner else ""
    for entity in entities:
        if entity.start == following and entity.parent == parent:
            return entity
    return owner


def _existing_ancestor(qualname: str, existing: Container[str]) -> str:
    """``qualname`` if it exists at the base, else its nearest enclosing definition that does, else ""."""
    while qualname and qualname not in existing:
        qualname = qualname.rpartition(".")[0]
    return qualname


class AppliedPatch:
    """The patched file's lines, and where the non-blank changed lines are (1-based): removed lines in
    the base file, added lines in the patched file."""

    def __init__(self) -> None:
        self.new_lines: list[str] = []
        self.removed: list[tuple[int, str]] = []  # (line at the base, text)
        self.added: list[tuple[int, str]] = []  # (line in the patched file, text)


def apply_file_patch(
    instance_id: str, path: str, old_lines: list[str], patched: unidiff.PatchedFile
) -> AppliedPatch:
    """Apply the file's hunks to the base lines as ``git apply`` does: each hunk's context and removed
    lines must match exactly, at the stated line or, failing that, at the nearest line where they do
    (gold patches are sometimes offset by a few lines from their base commit)."""
    applied = AppliedPatch()
    cursor = 0  # 0-based index of the next base line not yet copied
    offset = 0  # how far the previous hunk had to move
    for hunk in patched:
        lines = [line for line in hunk if line.is_context or line.is_removed or line.is_added]
        before = [line.value.rstrip("\r\n") for line in lines if not line.is_added]
        stated = (hunk.source_start - 1 if hunk.source_length else hunk.source_start) + offset
        start = _find(old_lines, before, max(stated, 0), cursor)
        if start is None:
            raise GoldError(
                f"{instance_id}: the patch does not apply to {path} at the base commit: the lines of the "
                f"hunk at line {hunk.source_start} are not found there (wrong commit?)"
            )
        offset += start - max(stated, 0)
        applied.new_lines.extend(old_lines[cursor:start])
        cursor = start
        for line in lines:
            if line.is_added:
                applied.new_lines.append(line.value.rstrip("\r\n"))
                if line.value.strip():
                    applied.added.append((len(applied.new_lines), applied.new_lines[-1]))
                continue
            if line.is_context:
                applied.new_lines.append(old_lines[cursor])
            elif line.value.strip():
                applied.removed.append((cursor + 1, old_lines[cursor]))
            cursor += 1
    applied.new_lines.extend(old_lines[cursor:])
    return applied


def _find(old_lines: list[str], before: list[str], stated: int, lowest: int) -> int | None:
    """The start nearest ``stated`` (not below ``lowest``) where ``before`` matches the base lines."""

    def matches(start: int) -> bool:
        if start < lowest or start + len(before) > len(old_lines):
            return False
        return all(old_lines[start + i].rstrip("\r") == text for i, text in enumerate(before))

    for distance in range(len(old_lines) + 1):
        for start in (stated - distance, stated + distance) if distance else (stated,):
            if matches(start):
                return start
    return None


# --- whole datasets ------------------------------------------------------------------------------------


def iter_gold(
    instances: Iterable[Instance],
    workspace: Workspace,
    *,
    cache: ParseCache | None = None,
    include_non_source: bool = False,
) -> Iterator[GoldResult]:
    """Gold for each instance, in order; a failure is reported in its result and the rest go on.

    Each base commit is checked out (a cached snapshot) and indexed with the shared parse cache, which is
    keyed by file content: a later commit of the same repository parses only the files that changed.
    """
    cache = cache or ParseCache()
    for instance in instances:
        try:
            # files whose blobs a mirror lacks do not matter unless the patch edits them (then reading
            # the base file fails with its own message)
            with workspace.hold(instance.repo, instance.base_commit, allow_missing=True) as tree:
                index = build_index(tree, cache=cache)
                labels = derive_gold(instance, index, include_non_source=include_non_source)
        except (WorkspaceError, GoldError) as error:
            yield GoldResult(instance.instance_id, None, str(error))
            continue
        yield GoldResult(instance.instance_id, labels)


def derive_gold_for_dataset(
    instances: Sequence[Instance],
    repos_dir: str | os.PathLike[str] | None,
    progress: Progress | None = None,
    *,
    aliases: Mapping[str, str | Sequence[str]] | None = None,
    workspace: Workspace | None = None,
) -> dict[str, list[str]]:
    """``{instance_id: labels}`` for every instance, repositories taken from ``repos_dir`` (see
    ``Workspace``). Raises ``GoldError`` naming every instance that failed, after trying them all."""
    workspace = workspace or Workspace(repos_dir, aliases=aliases)
    gold: dict[str, list[str]] = {}
    failures: dict[str, list[str]] = {}  # one line per distinct error (a missing repository fails them all)
    total = len(instances)
    if progress:
        progress(0, total)
    for done, result in enumerate(iter_gold(instances, workspace), start=1):
        if result.labels is None:
            failures.setdefault(result.error, []).append(result.instance_id)
        else:
            gold[result.instance_id] = result.labels
        if progress:
            progress(done, total)
    if failures:
        lines = [f"{error} [{_some(ids)}]" for error, ids in list(failures.items())[:10]]
        more = f"\n  ... and {len(failures) - 10} more errors" if len(failures) > 10 else ""
        count = f"{sum(map(len, failures.values()))} of {total} instances"
        raise GoldError(f"gold could not be derived for {count}:\n  " + "\n  ".join(lines) + more)
    return gold


def _some(ids: Sequence[str], shown: int = 3) -> str:
    rest = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + rest


def gold_from_patches(
    instances: Sequence[Instance],
    repos_dir: str | os.PathLike[str] | None,
    progress: Progress | None = None,
) -> dict[str, list[str]]:
    """Gold derived from each instance's patch, in the entity-id form ``gold_source.read_gold_file``
    gives a gold file's items, so either source feeds the same checks and scores."""
    derived = derive_gold_for_dataset(instances, repos_dir, progress=progress)
    return {instance_id: unique(map(normalize_location, items)) for instance_id, items in derived.items()}
