"""The first stage of the default ranking: from what an issue says to candidate definitions and a row of
named features for each (:func:`collect_signals`).

Each feature family is one function from the issue's mentions to what it found (:class:`Found`): its
feature values per definition, the files it names and how strongly, and its part of the evidence.
:func:`collect_signals` merges them (a definition keeps the strongest value each feature gives it), adds
the graph features that follow from the merged mentions, and lays the candidates out as :class:`Signals`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reposearcher_plugin.index import CLASS
from reposearcher_plugin.rank.maps import RepoMaps
from reposearcher_plugin.rank.mentions import MESSAGE_MIN_CHARS, MESSAGE_MIN_WORDS, extract_mentions
from reposearcher_plugin.rank.scoring import FEATURES, Signals
from reposearcher_plugin.tools.search_index import EntitySearch
from reposearcher_plugin.tools.tokens import query_tokens

# Frames above the deepest in-repository frame weigh FRAME_DECAY ** distance.
FRAME_DECAY = 0.6
# Candidates from BM25 alone; mentions and frames add theirs. Enough that the weighted sum can
# reorder well beyond the top 50 returned.
BM25_CANDIDATES = 400

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


def collect_signals(search: EntitySearch, maps: RepoMaps, issue: str) -> Signals:
    """The candidates for ``issue`` and their features: the best BM25 matches of the issue and of its
    title, everything a mention, a frame or a graph edge reaches, and the owners of all of them."""
    documents = maps.documents
    mentions = extract_mentions(issue)
    tokens = query_tokens(issue)
    bm25 = _normalized(search.scores(tokens))
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
    imported = imported_files(maps, mentioned_files)

    for table in features.values():
        candidates.update(table)
    for path in mentioned_files:
        candidates.update(maps.docs_in_file(path))
    # owners of candidates, so a method's class can be ranked (and give its BM25 to the method)
    candidates.update(owner for doc in list(candidates) if (owner := maps.owner(doc)) is not None)
    _merge_into(features, candidate_context(maps, candidates, bm25, mentioned_files))

    ordered = sorted(candidates)
    columns = {
        "bm25": bm25[ordered] if ordered else np.zeros(0),
        "bm25_title": bm25_title[ordered] if ordered else np.zeros(0),
    }
    for name in FEATURES:
        if name not in columns:
            table = features[name]
            columns[name] = np.array([table.get(doc, 0.0) for doc in ordered], dtype=float)
    file_features = {path: {"mention": value} for path, value in mentioned_files.items()}
    for path, value in imported.items():
        file_features.setdefault(path, {})["import"] = value
    evidence: dict[str, Any] = {"query_tokens": len(search.known(tokens))}
    for family in families:
        evidence.update(family.evidence)
    evidence["mentioned_files"] = {path: round(value, 3) for path, value in mentioned_files.items()}
    return Signals(
        ids=[maps.ids[doc] for doc in ordered],
        files=[documents[doc][0] for doc in ordered],
        kinds=[documents[doc][1].kind for doc in ordered],
        roles=[maps.role(documents[doc][0]) for doc in ordered],
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
