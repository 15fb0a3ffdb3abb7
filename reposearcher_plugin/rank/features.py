"""The first stage of the default ranking: from what an issue says to candidate definitions and a row of
named features for each (:func:`collect_signals`).

Each feature family is one function from the issue's mentions to what it found (:class:`Found`): its
feature values per definition, the files it names and how strongly, and its part of the evidence.
:func:`collect_signals` merges them (a definition keeps the strongest value each feature gives it), adds
the graph features that follow from the merged mentions, and lays the candidates out as :class:`Signals`.
Its length is the number of feature families (one short function each), not a second job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reposearcher_plugin.index import CLASS, Entity, entity_id
from reposearcher_plugin.rank.history import ChangeHistory
from reposearcher_plugin.rank.maps import RepoMaps
from reposearcher_plugin.rank.mentions import (
    MESSAGE_MIN_CHARS,
    MESSAGE_MIN_WORDS,
    Mentions,
    extract_mentions,
    prose_of,
)
from reposearcher_plugin.rank.scoring import FEATURES, Signals
from reposearcher_plugin.rank.stems import name_stems, stems_of
from reposearcher_plugin.tools.search_index import EntitySearch
from reposearcher_plugin.tools.tokens import query_tokens

# Frames above the deepest in-repository frame weigh FRAME_DECAY ** distance.
FRAME_DECAY = 0.6
# Candidates from BM25 alone; mentions and frames add theirs. Enough that the weighted sum can
# reorder well beyond the top 50 returned.
BM25_CANDIDATES = 400

# The evidence lists at most this many of the files whose module name the title spells, and of the files
# that similar past changes edited.
EVIDENCE_MODULE_NAMES = 10
EVIDENCE_HISTORY_FILES = 10
# Definitions that similar past changes edited become candidates, this many of the strongest: the rest
# keep their value only if another family brings them in.
PAST_EDIT_CANDIDATES = 20

Table = dict[int, float]  # document -> value of one feature, only where it is above 0


@dataclass
class Found:
    """What one feature family found in an issue."""

    features: dict[str, Table] = field(default_factory=dict)  # feature name -> its values
    files: dict[str, float] = field(default_factory=dict)  # path -> how strongly the issue names it
    evidence: dict[str, Any] = field(default_factory=dict)  # JSON-able, merged into the ranking's


def _keep_strongest(table: Table, doc: int, value: float) -> None:
    if value > table.get(doc, 0.0):
        table[doc] = value


def _keep_strongest_file(files: dict[str, float], path: str, value: float) -> None:
    files[path] = max(files.get(path, 0.0), value)


def path_mentions(maps: RepoMaps, paths: list[str]) -> Found:
    """Files named by a path; a path that several files end with names each of them a little."""
    found = Found(evidence={"paths": {}})
    for written in paths:
        targets = maps.match_path(written)
        if targets:
            found.evidence["paths"][written] = targets
            for path in targets:
                _keep_strongest_file(found.files, path, 1.0 / len(targets))
    return found


def traceback_frames(maps: RepoMaps, frames: list[tuple[str, int, str]]) -> Found:
    """Traceback frames in the repository: the deepest counts most, for its file and its definition."""
    traceback: Table = {}
    found = Found(features={"traceback": traceback})
    resolved: list[tuple[str, int, str, int | None]] = []
    for written, line, function in frames:
        targets = maps.match_path(written)
        if len(targets) != 1:
            continue
        path = targets[0]
        resolved.append((path, line, function, maps.frame_entity(path, line, function)))
    frames_out: list[dict[str, Any]] = []
    for depth, (path, line, function, doc) in enumerate(reversed(resolved)):
        weight = FRAME_DECAY**depth
        _keep_strongest_file(found.files, path, weight)
        if doc is not None:
            _keep_strongest(traceback, doc, weight)
        frames_out.append(
            {
                "file": path,
                "line": line,
                "function": function,
                "entity": maps.ids[doc] if doc is not None else None,
                "weight": round(weight, 3),
            }
        )
    frames_out.reverse()
    found.evidence["frames"] = frames_out
    return found


def qualified_names(maps: RepoMaps, dotted_names: list[str]) -> Found:
    """Dotted names: a module path names its file (and what follows it, a definition in that file);
    otherwise the longest dotted tail that some definitions' qualified names end with names them."""
    qualified_mention: Table = {}
    found = Found(features={"qualified_mention": qualified_mention})
    qualified: dict[str, list[str]] = {}
    for dotted in dotted_names:
        module_file, rest = maps.match_module(dotted)
        if module_file is not None:
            _keep_strongest_file(found.files, module_file, 1.0)
            qualified.setdefault(dotted, []).append(module_file)
            if rest:
                for doc in maps.docs_named(rest, module_file):
                    _keep_strongest(qualified_mention, doc, 1.0)
                    qualified[dotted].append(maps.ids[doc])
            continue
        parts = dotted.split(".")
        for size in range(len(parts), 1, -1):
            docs = maps.docs_named(".".join(parts[-size:]))
            if docs:
                for doc in docs:
                    _keep_strongest(qualified_mention, doc, 1.0 / math.sqrt(len(docs)))
                qualified[dotted] = [maps.ids[doc] for doc in docs[:5]]
                break
    found.evidence["qualified_names"] = qualified
    return found


def code_names(maps: RepoMaps, names: list[str]) -> Found:
    """Code-like simple names: each definition of the name, less the more definitions share it."""
    name_mention: Table = {}
    named: dict[str, int] = {}
    for name in names:
        docs = maps.docs_named(name)
        if not docs:
            continue
        named[name] = len(docs)
        strength = 1.0 / math.sqrt(len(docs))
        for doc in docs:
            _keep_strongest(name_mention, doc, strength)
    return Found(features={"name_mention": name_mention}, evidence={"names": dict(list(named.items())[:50])})


def quoted_messages(maps: RepoMaps, fragments: list[str]) -> Found:
    """Quoted error messages: the definitions whose code holds them literally."""
    message: Table = {}
    message_hits: dict[str, list[str]] = {}
    for fragment in fragments:
        # values formatted into the message's tail are not in the code: drop words until found
        words = fragment.split()
        docs: list[int] = []
        while not docs and len(words) >= MESSAGE_MIN_WORDS and len(" ".join(words)) >= MESSAGE_MIN_CHARS:
            fragment = " ".join(words)
            docs = maps.docs_containing(fragment)
            words.pop()
        if docs:
            message_hits[fragment] = [maps.ids[doc] for doc in docs[:5]]
            for doc in docs:
                _keep_strongest(message, doc, 1.0 / math.sqrt(len(docs)))
    return Found(features={"message": message}, evidence={"messages": message_hits})


def title_names(maps: RepoMaps, title: str) -> Found:
    """Names in the title, qualified or code-like simple ones: titles name the culprit more often."""
    title_mention: Table = {}
    mentions = extract_mentions(title)
    for name in [*mentions.dotted, *mentions.names]:
        docs = maps.docs_named(name)
        for doc in docs:
            _keep_strongest(title_mention, doc, 1.0 / math.sqrt(len(docs)))
    return Found(features={"title_mention": title_mention})


def class_members(maps: RepoMaps, mentioned: Iterable[tuple[int, float]]) -> Found:
    """One step along class <-> method from the mentioned definitions: a mentioned class's methods get
    ``owner_mention``, a mentioned method's class gets ``member_mention``."""
    owner_mention: Table = {}
    member_mention: Table = {}
    for doc, value in mentioned:
        if maps.documents[doc][1].kind == CLASS:
            for member in maps.members(doc):
                _keep_strongest(owner_mention, member, value)
        owner = maps.owner(doc)
        if owner is not None:
            _keep_strongest(member_mention, owner, value)
    return Found(features={"owner_mention": owner_mention, "member_mention": member_mention})


def mentioned_classes(maps: RepoMaps, mentioned: Iterable[tuple[int, float]]) -> dict[int, float]:
    """The classes among the mentioned definitions, each with its strongest mention."""
    classes: dict[int, float] = {}
    for doc, value in mentioned:
        if maps.documents[doc][1].kind == CLASS:
            _keep_strongest(classes, doc, value)
    return classes


def special_methods(maps: RepoMaps, dunders: list[str], classes: dict[int, float]) -> Found:
    """``operator_mention``: the special methods of a mentioned class that the issue's code uses through
    an operator, a builtin or a statement (``len(s)`` -> ``OrderedSet.__len__``), as strongly as the class
    is mentioned. Only a mentioned class's: every class has an ``__eq__``."""
    operator_mention: Table = {}
    wanted = set(dunders)
    for doc, value in classes.items():
        for member in maps.members(doc):
            if maps.documents[member][1].name in wanted:
                _keep_strongest(operator_mention, member, value)
    return Found(features={"operator_mention": operator_mention})


def missing_members(maps: RepoMaps, mentions: Mentions, classes: dict[int, float]) -> Found:
    """``missing_member``: a class that the issue says lacks a member, or asks to be given one: the method
    does not exist yet, so the class itself is what changes ("add ``__reversed__`` to OrderedSet").

    Three ways: Python said so ("'C' object has no attribute 'm'", "... is not reversible"); or the issue
    asks for something new (add, support, implement...) and writes ``C.m`` where C has no ``m``, or its
    code uses a special method that the mentioned class does not have. A class inheriting from outside
    the repository (``AppGroup(click.Group)``) may have the member from there: never claimed to lack it."""
    missing_member: Table = {}
    said: dict[str, set[str]] = {}
    for class_name, member in mentions.missing:
        said.setdefault(class_name, set()).add(member)
    if mentions.asks_to_add:
        for dotted in mentions.dotted:
            owner_name, _, member = dotted.rpartition(".")
            if owner_name and "." not in owner_name:
                said.setdefault(owner_name, set()).add(member)
    for class_name, members in said.items():
        docs = [doc for doc in maps.docs_named(class_name) if maps.documents[doc][1].kind == CLASS]
        for doc in docs:
            if _lacks(maps, doc, members):
                _keep_strongest(missing_member, doc, 1.0 / math.sqrt(len(docs)))
    if mentions.asks_to_add and mentions.dunders:
        for doc, value in classes.items():
            if _lacks(maps, doc, set(mentions.dunders)):
                _keep_strongest(missing_member, doc, value)
    return Found(features={"missing_member": missing_member})


def _lacks(maps: RepoMaps, doc: int, members: set[str]) -> bool:
    """The class ``doc`` has not some of ``members``, by its own definitions and what it inherits, all of
    which is in the repository."""
    if not members - maps.member_names(doc):
        return False
    ancestors = _ancestors(maps, doc)
    if not all(maps.bases_all_known(current) for current in [doc, *(base for base, _ in ancestors)]):
        return False
    return bool(members - maps.member_names(doc) - _inherited_names(maps, doc))


# How far up the bases a mentioned class's inherited methods are looked for.
INHERITANCE_DEPTH = 3


def _ancestors(maps: RepoMaps, doc: int) -> list[tuple[int, int]]:
    return maps.ancestors(doc, INHERITANCE_DEPTH)


def _inherited_names(maps: RepoMaps, doc: int) -> set[str]:
    return {name for base, _ in _ancestors(maps, doc) for name in maps.member_names(base)}


def inherited_methods(maps: RepoMaps, names: Iterable[str], classes: dict[int, float]) -> Found:
    """``inherited_mention``: the method that a mentioned class inherits under a name the issue uses
    (``MyField.clean()`` where only ``Field`` defines ``clean``): the nearest base's definition, as
    strongly as the class is mentioned."""
    inherited_mention: Table = {}
    wanted = set(names)
    for doc, value in classes.items():
        own = set(maps.member_names(doc))
        for base, _ in _ancestors(maps, doc):
            names = maps.member_names(base)
            inherited = (wanted & names) - own  # most bases define none of the names: no member looked at
            if inherited:
                for member in maps.members(base):
                    if maps.documents[member][1].name in inherited:
                        _keep_strongest(inherited_mention, member, value)
            own |= names  # a nearer base's definition hides the farther ones
    return Found(features={"inherited_mention": inherited_mention})


# Call-graph hops start from this many of the most strongly mentioned functions and methods.
CALL_HOP_SOURCES = 20


def call_neighbours(maps: RepoMaps, mentioned: dict[int, float], files_in_play: Iterable[str]) -> Found:
    """One hop along the call graph from the mentioned functions and methods, read from the index's
    identifier words (a definition that uses a name calls it, near enough): ``callee`` for the
    definitions a mentioned one uses, found in its own file or the files that file imports, and
    ``caller`` for the definitions that use a mentioned one's name, in its own file or the files already
    in play (mentioned, or holding a mentioned definition). Each as strongly as the mention, shared among
    the definitions a name resolves to. Callers are not looked for across the repository: that needs
    every file's words (seconds on Django, per snapshot)."""
    callee: Table = {}
    caller: Table = {}
    documents = maps.documents
    index = maps.index
    sources = [(doc, value) for doc, value in mentioned.items() if documents[doc][1].kind != CLASS]
    sources.sort(key=lambda item: (-item[1], item[0]))
    in_play = set(files_in_play)
    for doc, value in sources[:CALL_HOP_SOURCES]:
        path, entity = documents[doc]
        near = {path, *maps.imports(path)}
        for word in index.names_used_by(maps.ids[doc]):
            if word == entity.name or not index.files_defining(word):
                continue
            targets = [  # by path first: a far file's definitions are never decoded
                other
                for other in maps.docs_named(word)
                if other != doc and documents.path_of(other) in near and documents[other][1].kind != CLASS
            ]
            for other in targets:
                _keep_strongest(callee, other, value / math.sqrt(len(targets)))
        users = [other for other in maps.docs_using(entity.name, sorted(in_play | {path})) if other != doc]
        for other in users:
            _keep_strongest(caller, other, value / math.sqrt(len(users)))
    return Found(features={"callee": callee, "caller": caller})


def imported_files(maps: RepoMaps, mentioned_files: dict[str, float]) -> dict[str, float]:
    """Files that a mentioned file imports, each as strongly as the strongest file importing it."""
    imported: dict[str, float] = {}
    for path, value in mentioned_files.items():
        for target in maps.imports(path):
            if target != path:
                imported[target] = max(imported.get(target, 0.0), value)
    return imported


def candidate_context(
    maps: RepoMaps, candidates: Iterable[int], bm25: np.ndarray, mentioned_files: dict[str, float]
) -> Found:
    """What a candidate inherits from where it sits: its owner class's BM25 and its file's mention."""
    owner_bm25: Table = {}
    file_mention: Table = {}
    for doc in candidates:
        owner = maps.owner(doc)
        if owner is not None and bm25[owner] > 0:
            owner_bm25[doc] = float(bm25[owner])
        if maps.documents[doc][0] in mentioned_files:
            file_mention[doc] = mentioned_files[maps.documents[doc][0]]
    return Found(features={"owner_bm25": owner_bm25, "file_mention": file_mention})


def name_words(entities: Iterable[Entity], issue_stems: set[str]) -> np.ndarray:
    """``name_words`` of each of ``entities``: the share of its name words (``serialize_field`` ->
    serialize, field) whose stems are among the issue's word stems, so that ``serialization`` meets
    ``serializer`` and a definition named in words of the issue ranks above one whose body only uses
    them. One lookup of each name's stems (rank/stems.py caches them), whatever the issue's length."""
    values: list[float] = []
    for entity in entities:
        words = name_stems(entity.name)
        values.append(sum(1 for word in words if word in issue_stems) / len(words) if words else 0.0)
    return np.array(values, dtype=float)


def past_edits(maps: RepoMaps, edited: dict[tuple[str, str], float]) -> Found:
    """``past_edits``: the definitions of the snapshot that similar past changes edited (rank/history.py),
    matched by file and simple name (a hunk header names ``def save`` without its class, so every
    ``save`` of that file gets it, divided by the square root of their number), scaled so the best found
    here has 1."""
    table: Table = {}
    documents = maps.documents
    by_file: dict[str, dict[str, float]] = {}
    for (path, name), value in edited.items():
        by_file.setdefault(path, {})[name] = value
    for path, names in by_file.items():
        if path not in maps.index.files:
            continue  # deleted or renamed since
        matching: dict[str, list[int]] = {}
        for doc in maps.docs_in_file(path):
            if documents[doc][1].name in names:
                matching.setdefault(documents[doc][1].name, []).append(doc)
        for name, docs in matching.items():
            for doc in docs:
                table[doc] = names[name] / math.sqrt(len(docs))
    best = max(table.values(), default=0.0)
    return Found({"past_edits": {doc: value / best for doc, value in table.items()}} if best > 0 else {})


def module_names(maps: RepoMaps, title_stems: set[str]) -> dict[str, float]:
    """Files whose module name the title spells in words ("Move palette functions into own module" ->
    ``palettes.py``; "update while-used doc" -> ``while_used.py``), each ``1 / sqrt(files of that
    name)``. The title only: an issue's body and a commit's list of changes use every module's name."""
    return {path: 1.0 / math.sqrt(count) for path, count in maps.files_named_by(title_stems).items()}


def collect_signals(
    search: EntitySearch, maps: RepoMaps, issue: str, history: ChangeHistory | None = None
) -> Signals:
    """The candidates for ``issue`` and their features: the best BM25 matches of the issue and of its
    title, everything a mention, a frame or a graph edge reaches, and the owners of all of them.
    ``history``: the repository's past changes at this commit, whose similar ones give their files
    the file-level ``history`` evidence and the definitions they edited ``past_edits``
    (rank/history.py); without it both are 0."""
    documents = maps.documents
    mentions = extract_mentions(issue)
    tokens = query_tokens(issue)
    bm25 = _normalized(search.scores(tokens))
    prose_tokens = query_tokens(prose_of(issue))
    # the same query when nothing was pasted: no second scoring
    same_words = set(search.known(prose_tokens)) == set(search.known(tokens))
    bm25_prose = bm25 if same_words else _normalized(search.scores(prose_tokens))
    title = issue.strip().split("\n", 1)[0]
    bm25_title = _normalized(search.scores(query_tokens(title)))
    candidates: set[int] = set(_top(bm25, BM25_CANDIDATES)) | set(_top(bm25_title, BM25_CANDIDATES // 4))

    families = [
        path_mentions(maps, mentions.paths),
        traceback_frames(maps, mentions.frames),
        qualified_names(maps, mentions.dotted),
        code_names(maps, mentions.names),
        quoted_messages(maps, mentions.messages),
        title_names(maps, title),
    ]
    features: dict[str, Table] = {}
    mentioned_files: dict[str, float] = {}
    for family in families:
        _merge_into(features, family)
        for path, value in family.files.items():
            _keep_strongest_file(mentioned_files, path, value)
    mentioned = [*features["qualified_mention"].items(), *features["name_mention"].items()]
    _merge_into(features, class_members(maps, mentioned))
    strongest: Table = {}
    for doc, value in [*mentioned, *features["title_mention"].items()]:
        _keep_strongest(strongest, doc, value)
    classes = mentioned_classes(maps, strongest.items())
    implied = [*mentions.names, *mentions.dunders]
    _merge_into(features, special_methods(maps, mentions.dunders, classes))
    _merge_into(features, missing_members(maps, mentions, classes))
    _merge_into(features, inherited_methods(maps, implied, classes))
    in_play = {*mentioned_files, *(documents[doc][0] for doc in strongest)}
    _merge_into(features, call_neighbours(maps, strongest, in_play))
    imported = imported_files(maps, mentioned_files)

    for table in features.values():
        candidates.update(table)
    for path in mentioned_files:
        candidates.update(maps.docs_in_file(path))
    # only the strongest of what past changes edited are candidates for that alone (the rest are many)
    edited = past_edits(maps, history.definition_scores(tokens) if history is not None else {})
    _merge_into(features, edited)
    strongest_edits = sorted(edited.features.get("past_edits", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    candidates.update(doc for doc, _ in strongest_edits[:PAST_EDIT_CANDIDATES])
    # owners of candidates, so a method's class can be ranked (and give its BM25 to the method)
    candidates.update(owner for doc in list(candidates) if (owner := maps.owner(doc)) is not None)
    _merge_into(features, candidate_context(maps, candidates, bm25, mentioned_files))
    named_modules = module_names(maps, stems_of(query_tokens(title)))
    past = history.file_scores(tokens, known=maps.index.files) if history is not None else {}

    ordered = sorted(candidates)
    entries = [documents[doc] for doc in ordered]  # each looked up once: a lookup costs microseconds
    columns = {
        "bm25": bm25[ordered] if ordered else np.zeros(0),
        "bm25_title": bm25_title[ordered] if ordered else np.zeros(0),
        "bm25_prose": bm25_prose[ordered] if ordered else np.zeros(0),
        "name_words": name_words((entity for _, entity in entries), stems_of(tokens)),
    }
    for name in FEATURES:
        if name not in columns:
            table = features.get(name, {})
            columns[name] = np.array([table.get(doc, 0.0) for doc in ordered], dtype=float)
    file_features = {path: {"mention": value} for path, value in mentioned_files.items()}
    for path, value in imported.items():
        file_features.setdefault(path, {})["import"] = value
    for path, value in named_modules.items():
        file_features.setdefault(path, {})["module_name"] = value
    for path, value in past.items():
        file_features.setdefault(path, {})["history"] = value
    evidence: dict[str, Any] = {"query_tokens": len(search.known(tokens))}
    for family in families:
        evidence.update(family.evidence)
    evidence["mentioned_files"] = {path: round(value, 3) for path, value in mentioned_files.items()}
    if named_modules:
        evidence["module_names"] = dict(sorted(named_modules.items())[:EVIDENCE_MODULE_NAMES])
    if history is not None:
        best = sorted(past.items(), key=lambda item: (-item[1], item[0]))[:EVIDENCE_HISTORY_FILES]
        evidence["history"] = {
            "changes": len(history),
            "files": {path: round(v, 3) for path, v in best},
            "definitions": {
                entity_id(documents[doc][0], documents[doc][1].qualname): round(value, 3)
                for doc, value in strongest_edits[:EVIDENCE_HISTORY_FILES]
            },
        }
    return Signals(
        ids=[entity_id(path, entity.qualname) for path, entity in entries],
        files=[path for path, _ in entries],
        kinds=[entity.kind for _, entity in entries],
        roles=[maps.role(path) for path, _ in entries],
        features=columns,
        file_features=file_features,
        evidence=evidence,
    )


def _merge_into(features: dict[str, Table], found: Found) -> None:
    for name, table in found.features.items():
        merged = features.setdefault(name, {})
        for doc, value in table.items():
            _keep_strongest(merged, doc, value)


def _normalized(scores: np.ndarray) -> np.ndarray:
    best = float(scores.max()) if len(scores) else 0.0
    return scores / best if best > 0 else np.zeros(len(scores))


def _top(scores: np.ndarray, k: int) -> Iterable[int]:
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k)[:k]]
    return (int(doc) for doc in positive)
