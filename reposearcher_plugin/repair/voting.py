"""Agentless's majority vote over samples: patches compared by what they change (the package's one diff
reader, evaluation/diffs.py), the most frequent one wins."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from reposearcher_plugin.evaluation.diffs import DiffError, diff_paths, parse_diff


def normalize_patch(patch: str) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    """What a patch changes, without line numbers, blob ids, context or whitespace-only changes: two
    samples that make the same edit in slightly different ways vote together."""
    try:
        parsed = parse_diff(patch, recount=True)
    except DiffError:  # not a diff at all: it votes as its own text, whitespace aside
        return (("", (), ("".join(patch.split()),)),)
    files: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    for patched in parsed:
        old_path, new_path = diff_paths(patched)
        lines = [line for hunk in patched for line in hunk if line.is_removed or line.is_added]
        squeezed = [(line.is_removed, "".join(line.value.split())) for line in lines]
        minus = Counter(text for removed, text in squeezed if removed and text)
        plus = Counter(text for removed, text in squeezed if not removed and text)
        common = minus & plus  # a line removed and added again changed only its whitespace
        kept_minus, kept_plus = tuple((minus - common).elements()), tuple((plus - common).elements())
        if kept_minus or kept_plus:
            files.append((old_path if patched.is_removed_file else new_path, kept_minus, kept_plus))
    return tuple(sorted(files))


def majority_patch(patches: Sequence[str]) -> int | None:
    """Index of the chosen patch: the most frequent non-empty normalized patch, the first on a tie."""
    keys = [normalize_patch(patch) if patch.strip() else () for patch in patches]
    counts = Counter(key for key in keys if key)
    if not counts:
        return None
    best = max(counts.values())
    for number, key in enumerate(keys):
        if key and counts[key] == best:
            return number
    return None
