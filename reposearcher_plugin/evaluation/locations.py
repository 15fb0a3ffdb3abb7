"""The normalized prediction every reader produces; the location grammar itself lives in the index layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from reposearcher_plugin.index.locations import (
    SEPARATOR,
    file_of,
    module_of,
    name_of,
    normalize_location,
    normalize_path,
    split_location,
    unique,
)

__all__ = [
    "SEPARATOR",
    "Prediction",
    "file_of",
    "module_of",
    "name_of",
    "normalize_location",
    "normalize_path",
    "split_location",
    "unique",
]


@dataclass(frozen=True)
class Prediction:
    """One system's ranked answer for one instance, in entity-id form, without repeats.

    ``functions`` holds every predicted entity (classes too: outputs say ``class: C`` and gold lists
    ``path::C``), ``modules`` their classes / top-level functions.
    """

    instance_id: str
    files: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.files or self.modules or self.functions)
