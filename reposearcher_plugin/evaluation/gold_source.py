"""Where the gold locations of an evaluation come from: a gold file, or the dataset's own patches.

A gold file is ``{instance_id: ["path.py::Class.method", "path.py::func", "path.py", ...]}`` as the
ToolTrain and CoSIL authors publish it; LocAgent's single-colon form (``path.py:Class.method``, as in
Loc-Bench) is accepted too. Items come back in entity-id form (docs/formats.md), in the file's order.
Gold derived from the patches comes from ``gold.gold_from_patches``, which builds on this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.evaluation.locations import normalize_location, unique

MISMATCHES_NAMED = 5


class GoldError(ValueError):
    """A gold file that cannot be read, or gold that does not belong to the dataset."""


def read_gold_file(path: str | Path) -> dict[str, list[str]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise GoldError(f"cannot read gold file {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise GoldError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        found = type(data).__name__
        raise GoldError(f"{path}: expected an object {{instance_id: [locations]}}, got a {found}")
    gold: dict[str, list[str]] = {}
    for instance_id, items in data.items():
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise GoldError(f"{path}: gold of {instance_id!r} is not a list of strings")
        gold[instance_id] = unique(normalize_location(item) for item in items if item.strip())
    return gold


def check_gold_matches(instances: Sequence[Instance], gold: Mapping[str, Sequence[str]], source: str) -> None:
    """Gold must cover exactly the dataset's instances: otherwise scores would silently mean less."""
    dataset_ids = [instance.instance_id for instance in instances]
    known = set(dataset_ids)
    without_gold = [instance_id for instance_id in dataset_ids if instance_id not in gold]
    not_in_dataset = [instance_id for instance_id in gold if instance_id not in known]
    if not without_gold and not not_in_dataset:
        return
    problems = []
    if without_gold:
        problems.append(f"{len(without_gold)} dataset instances have no gold (first: {_first(without_gold)})")
    if not_in_dataset:
        problems.append(
            f"{len(not_in_dataset)} gold instances are not in the dataset (first: {_first(not_in_dataset)})"
        )
    raise GoldError(f"gold {source} does not match the dataset: " + "; ".join(problems))


def _first(ids: list[str]) -> str:
    return ", ".join(ids[:MISMATCHES_NAMED])


def ordered_like(instances: Sequence[Instance], gold: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The gold in the dataset's order, which is the order of every per-instance score."""
    return {instance.instance_id: list(gold[instance.instance_id]) for instance in instances}
