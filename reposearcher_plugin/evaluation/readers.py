"""Read published localization outputs into one normalized :class:`Prediction` per instance.

Formats, recognised per line by their fields:

- **RepoSearcher** (docs/formats.md): ``locations`` (ranked entity ids) is preferred for entities;
  ``found_files`` gives the files (or, when absent, the files of ``locations`` in order).
- **LocAgent**: ``found_files``, ``found_modules`` and ``found_entities`` (``path.py:Class.method``).
- **Agentless / CoSIL / OrcaLoca / RepoDeepSearch**: ``found_files`` and ``found_related_locs``, either
  ``{file: ["function: A.b\\nclass: C", ...]}`` or a list aligned with ``found_files`` (one list of
  strings per file). ``function:`` and ``class:`` lines name entities; ``method:``, ``variable:`` and
  ``line:`` lines are legitimate but carry no entity and are skipped. Entities are ranked in the order
  they are written (file by file, in the dict's order), which is the order ToolTrain's script reads.

Bad input never crashes and is never dropped silently: every malformed line, duplicate instance id
(the first is kept), prediction for an instance the dataset lacks, empty prediction and unreadable
location line is counted in :class:`ReadDiagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.evaluation.locations import (
    Prediction,
    file_of,
    module_of,
    name_of,
    normalize_location,
    normalize_path,
    unique,
)
from reposearcher_plugin.files import jsonl_lines
from reposearcher_plugin.index.locations import entity_name_of_line

PREDICTION_FIELDS = ("locations", "found_files", "found_related_locs", "found_modules", "found_entities")
EXAMPLES_KEPT = 5


class PredictionsError(ValueError):
    """A predictions file that cannot be read at all (missing, not a file)."""


class MalformedRow(ValueError):
    """One line that is not a usable prediction; the message says why."""


@dataclass
class ReadDiagnostics:
    """What was wrong with a predictions file. Lists hold instance ids or ``line N: why`` strings."""

    source: str
    lines: int = 0
    predictions: int = 0
    malformed_lines: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    empty_predictions: list[str] = field(default_factory=list)
    unparsed_locations: list[str] = field(default_factory=list)

    COUNTED = (
        "malformed_lines",
        "duplicate_ids",
        "unknown_ids",
        "missing_ids",
        "empty_predictions",
        "unparsed_locations",
    )

    @property
    def clean(self) -> bool:
        return not any(getattr(self, name) for name in self.COUNTED)

    def to_dict(self) -> dict[str, Any]:
        """Counts, plus the first few examples of each problem."""
        summary: dict[str, Any] = {"lines": self.lines, "predictions": self.predictions}
        summary |= {name: len(getattr(self, name)) for name in self.COUNTED}
        summary["examples"] = {
            name: getattr(self, name)[:EXAMPLES_KEPT] for name in self.COUNTED if getattr(self, name)
        }
        return summary

    def problems(self) -> list[str]:
        """One human line per kind of problem found."""
        lines = []
        for name in self.COUNTED:
            found = getattr(self, name)
            if found:
                shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
                lines.append(f"{len(found)} {name.replace('_', ' ')} ({shown})")
        return lines


def read_predictions(
    path: str | Path, known_ids: Collection[str] | None = None, clean_paths: bool = True
) -> tuple[dict[str, Prediction], ReadDiagnostics]:
    """Read a JSONL predictions file. With ``known_ids`` (the dataset's instances), predictions for other
    ids are left out and counted, and instances without a prediction are listed as missing.
    ``clean_paths=False`` keeps paths exactly as written (the tooltrain protocol compares them so)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    diagnostics = ReadDiagnostics(source=str(path))
    known = None if known_ids is None else set(known_ids)
    predictions: dict[str, Prediction] = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in jsonl_lines(handle.read()):
            diagnostics.lines += 1
            try:
                if line.error is not None:
                    raise MalformedRow(f"not JSON ({line.error.msg})")
                prediction, unparsed = parse_prediction(line.value, clean_paths)
            except MalformedRow as error:
                diagnostics.malformed_lines.append(f"line {line.number}: {error}")
                continue
            instance_id = prediction.instance_id
            if instance_id in predictions:
                diagnostics.duplicate_ids.append(instance_id)
                continue
            if known is not None and instance_id not in known:
                diagnostics.unknown_ids.append(instance_id)
                continue
            diagnostics.unparsed_locations.extend(f"{instance_id}: {text!r}" for text in unparsed)
            if prediction.is_empty:
                diagnostics.empty_predictions.append(instance_id)
            predictions[instance_id] = prediction
    diagnostics.predictions = len(predictions)
    if known_ids is not None:
        diagnostics.missing_ids = [instance_id for instance_id in known_ids if instance_id not in predictions]
    return predictions, diagnostics


def parse_prediction(row: Any, clean_paths: bool = True) -> tuple[Prediction, list[str]]:
    """One output row -> its prediction and the location lines that could not be read.

    Raises :class:`MalformedRow` for a row that is not a prediction at all.
    """
    if not isinstance(row, dict):
        raise MalformedRow(f"a JSON {type(row).__name__}, not an object")
    instance_id = row.get("instance_id")
    if not isinstance(instance_id, str) or not instance_id.strip():
        raise MalformedRow("no instance_id")
    if not any(key in row for key in PREDICTION_FIELDS):
        raise MalformedRow(f"{instance_id}: none of the fields {', '.join(PREDICTION_FIELDS)}")
    instance_id = instance_id.strip()
    clean_path = normalize_path if clean_paths else str
    files = [clean_path(path) for path in _strings(row, "found_files")]
    unparsed: list[str] = []
    if row.get("locations") is not None:
        entities = [normalize_location(text, clean_paths) for text in _strings(row, "locations")]
        if not files:
            files = [file_of(location) for location in entities]
        modules: list[str] = []
    elif row.get("found_entities") is not None or row.get("found_modules") is not None:
        entities = [normalize_location(text, clean_paths) for text in _strings(row, "found_entities")]
        modules = [normalize_location(text, clean_paths) for text in _strings(row, "found_modules")]
    else:
        related = row.get("found_related_locs")
        entities, unparsed = _related_locs_entities(instance_id, related, files, clean_path)
        modules = []
    entities = [entity for entity in entities if name_of(entity)]  # file-only locations name no entity
    # Derived modules follow the entities' ranking; LocAgent's own module list wins when it has one.
    modules = [module for module in map(module_of, modules or entities) if module]
    prediction = Prediction(
        instance_id=instance_id,
        files=unique(path for path in files if path),
        modules=unique(modules),
        functions=unique(entities),
    )
    return prediction, unparsed


def _strings(row: dict[str, Any], key: str) -> list[str]:
    value = row.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedRow(f"{row['instance_id']}: {key} is not a list of strings")
    return value


def _related_locs_entities(
    instance_id: str, related: Any, files: list[str], clean_path: Callable[[str], str]
) -> tuple[list[str], list[str]]:
    """Agentless ``found_related_locs`` -> (entity ids in written order, unreadable lines)."""
    if related is None:
        return [], []
    if isinstance(related, list):
        # The list form is aligned with found_files: element i holds the locations in file i.
        if len(related) > len(files):
            raise MalformedRow(f"{instance_id}: found_related_locs has more entries than found_files")
        pairs = list(zip(files, related, strict=False))
    elif isinstance(related, dict):
        pairs = list(related.items())
    else:
        raise MalformedRow(f"{instance_id}: found_related_locs is neither an object nor a list")
    entities: list[str] = []
    unparsed: list[str] = []
    for raw_path, blocks in pairs:
        path = clean_path(str(raw_path))
        for block in [blocks] if isinstance(blocks, str) else _blocks(instance_id, blocks):
            for line in block.splitlines():
                name = entity_name_of_line(line)
                if name is None:
                    unparsed.append(line.strip())
                elif name:
                    entities.append(f"{path}::{name}")
    return entities, unparsed


def _blocks(instance_id: str, blocks: Any) -> Iterable[str]:
    if not isinstance(blocks, list) or not all(isinstance(block, str) for block in blocks):
        raise MalformedRow(f"{instance_id}: found_related_locs values must be strings or lists of strings")
    return blocks
