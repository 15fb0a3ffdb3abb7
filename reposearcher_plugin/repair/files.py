"""How the repair patcher reads and writes repository files: bytes that are not UTF-8 round-trip, and a
path named in a model's edit must stay inside the repository."""

from __future__ import annotations

from pathlib import Path

ENCODING = ("utf-8", "surrogateescape")  # files that are not UTF-8 must round-trip byte for byte


def inside_repository(path: str) -> bool:
    """Whether a relative path names something in the repository tree (not ``..``, not in ``.git``)."""
    parts = Path(path).parts
    return bool(parts) and not Path(path).is_absolute() and ".." not in parts and parts[0] != ".git"
