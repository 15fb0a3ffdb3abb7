"""SWE-bench-style instances: from the Hugging Face hub by name when online, from local files offline."""

from __future__ import annotations

import csv
import json
import os
import socket
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.extras import install_hint
from reposearcher_plugin.files import JsonlError, read_jsonl

HUB_DATASETS = {
    "swe-bench-verified": "princeton-nlp/SWE-bench_Verified",
    "swe-bench-lite": "princeton-nlp/SWE-bench_Lite",
    "loc-bench": "czlll/Loc-Bench_V1",
}
_TEST_FIELDS = ("FAIL_TO_PASS", "PASS_TO_PASS")


class DatasetError(ValueError):
    """A dataset that cannot be loaded or whose rows lack required fields."""


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo: str  # owner/name
    base_commit: str
    problem_statement: str
    patch: str = ""
    test_patch: str = ""
    hints_text: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    fail_to_pass: tuple[str, ...] = ()
    pass_to_pass: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Instance:
        missing = [
            key for key in ("instance_id", "repo", "base_commit", "problem_statement") if not row.get(key)
        ]
        if missing:
            raise DatasetError(f"row {row.get('instance_id', '?')!r} lacks {', '.join(missing)}")
        known = {
            "instance_id",
            "repo",
            "base_commit",
            "problem_statement",
            "patch",
            "test_patch",
            "hints_text",
            "version",
            "environment_setup_commit",
            *_TEST_FIELDS,
        }
        return cls(
            instance_id=str(row["instance_id"]),
            repo=str(row["repo"]),
            base_commit=str(row["base_commit"]),
            problem_statement=str(row["problem_statement"]),
            patch=str(row.get("patch") or ""),
            test_patch=str(row.get("test_patch") or ""),
            hints_text=str(row.get("hints_text") or ""),
            version=str(row.get("version") or ""),
            environment_setup_commit=str(row.get("environment_setup_commit") or ""),
            fail_to_pass=_test_list(row.get("FAIL_TO_PASS")),
            pass_to_pass=_test_list(row.get("PASS_TO_PASS")),
            extra={key: value for key, value in row.items() if key not in known},
        )


def _test_list(value: Any) -> tuple[str, ...]:
    """SWE-bench stores test lists as JSON-encoded strings; some copies store real lists."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return (value,)
    return tuple(str(item) for item in value)


def load_instances(dataset: str, split: str | None = None) -> list[Instance]:
    """Load ``dataset``: a local .json / .jsonl / .parquet / .csv file, or a hub name
    (``princeton-nlp/SWE-bench_Lite`` or a short alias such as ``swe-bench-lite``) with ``split``
    (default ``test``). Duplicate instance ids are an error."""
    path = Path(dataset).expanduser()
    if path.exists():
        rows = _read_file(path)
    elif _looks_like_a_file(dataset):
        raise DatasetError(f"{dataset}: no such file")
    else:
        rows = _read_hub(HUB_DATASETS.get(dataset.lower(), dataset), split or "test")
    instances = [Instance.from_row(row) for row in rows]
    counts = Counter(instance.instance_id for instance in instances)
    duplicates = sorted(instance_id for instance_id, count in counts.items() if count > 1)
    if duplicates:
        raise DatasetError(f"{dataset}: duplicate instance ids: {', '.join(duplicates[:5])}")
    return instances


def _read_file(path: Path) -> list[dict[str, Any]]:
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix in (".jsonl", ".jsonl.gz"):
            return _read_jsonl(path)
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # {instance_id: row}
                data = [dict(row, instance_id=row.get("instance_id", key)) for key, row in data.items()]
            return list(data)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle))
    except (OSError, json.JSONDecodeError, ValueError) as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    raise DatasetError(f"{path}: unknown dataset format {suffix!r} (use .json, .jsonl, .parquet or .csv)")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return read_jsonl(path)
    except JsonlError as error:
        raise DatasetError(f"{path}:{error.number}: not JSON: {error.cause}") from None


DATA_SUFFIXES = (".json", ".jsonl", ".gz", ".parquet", ".csv")


def _looks_like_a_file(dataset: str) -> bool:
    """A typo in a local path must not turn into half a minute of Hugging Face hub retries."""
    return dataset.lower().endswith(DATA_SUFFIXES) or dataset.startswith(("/", "./", "../", "~"))


def _hub_unreachable() -> str | None:
    """Why the hub cannot answer, found in at most a few seconds, or None when it may."""
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(variable, "").lower() in ("1", "true", "yes"):
            return f"{variable} is set"
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = (
        endpoint.hostname or "huggingface.co",
        endpoint.port or (80 if endpoint.scheme == "http" else 443),
    )
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        return f"{host} is unreachable ({error})"
    return None


def _read_hub(name: str, split: str) -> list[dict[str, Any]]:
    unreachable = _hub_unreachable()
    if unreachable is not None:
        raise DatasetError(
            f"{name!r} is not a local file, and the Hugging Face hub cannot be asked: {unreachable}; "
            "pass a local .jsonl/.json/.parquet/.csv file"
        )
    try:
        import datasets
    except ImportError:
        raise DatasetError(
            f"{name!r} is not a local file, and loading from the Hugging Face hub needs the 'eval' extra "
            f"({install_hint('eval')})"
        ) from None
    try:
        return list(datasets.load_dataset(name, split=split))
    except Exception as error:  # offline, unknown name, unknown split: one clear message
        raise DatasetError(
            f"cannot load {name!r} split {split!r} from the Hugging Face hub ({type(error).__name__}: "
            f"{str(error)[:200]}); offline, pass a local .jsonl/.json/.parquet/.csv file instead"
        ) from None
