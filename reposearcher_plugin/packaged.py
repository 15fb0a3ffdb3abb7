"""Configuration files that ship inside the package (``reposearcher_plugin/configs``; the repository's
top-level ``configs`` is a link to it), so that every command finds them after a plain ``pip install``,
from any folder. Imports nothing of ours: every layer may use it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CONFIG_FOLDERS = ("agent", "hosts")


def packaged_configs(folder: str) -> list[str]:
    """The names of the packaged configs in ``folder`` (``agent`` or ``hosts``), without suffix."""
    root = files("reposearcher_plugin") / "configs" / folder
    return sorted(entry.name.rsplit(".", 1)[0] for entry in root.iterdir() if entry.name[0] not in "._")


def config_path(name: str | Path, folder: str) -> Path:
    """``name`` as a file when it is one, else the packaged config of that name in ``folder``
    (``vllm-native``, ``vllm-native.yaml`` or ``configs/agent/vllm-native.yaml`` all name it)."""
    given = Path(name).expanduser()
    if given.is_file():
        return given
    stem = given.name.rsplit(".", 1)[0] if given.suffix in (".yaml", ".yml", ".json") else given.name
    root = files("reposearcher_plugin") / "configs" / folder
    for candidate in (given.name, f"{stem}.yaml", f"{stem}.yml", f"{stem}.json"):
        entry = root / candidate
        if entry.is_file():
            return Path(str(entry))  # a plain install unpacks the package: the resource is a file
    choices = ", ".join(packaged_configs(folder))
    raise FileNotFoundError(
        f"No such file, nor a packaged {folder} config of that name (packaged: {choices})"
    )
