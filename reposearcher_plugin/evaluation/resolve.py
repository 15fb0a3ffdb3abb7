"""%Resolved through SWE-bench's official harness (``swebench`` 5.0.2), and the harness's reports read back.

The harness is run as its own process (``python -m swebench.harness.run_evaluation``) rather than
imported: its CLI is its public interface (its argparse lives under ``if __name__ == "__main__"``, so
there is no parser to import), it sets process-wide limits (``RLIMIT_NOFILE``) and writes relative to
its working directory. Facts taken from swebench 5.0.2's source:

- ``--dataset_name`` takes a hub name or a local ``.json`` / ``.jsonl`` / ``.parquet`` file
  (``harness/utils.py: load_swebench_dataset``); ``--predictions_path`` must end in ``.json`` or
  ``.jsonl`` (``get_predictions_from_file``), rows ``{instance_id, model_name_or_path, model_patch}``.
- The final report is ``<report_dir>/<model_name_or_path with "/" -> "__">.<run_id>.json``, the model
  taken from the first prediction (``harness/reporting.py: make_run_report``), with ``resolved_ids``,
  ``unresolved_ids``, ``error_ids``, ``empty_patch_ids``, ``completed_ids``, ``incomplete_ids``,
  ``submitted_ids`` (every prediction, even for instances outside the dataset), ``total_instances``,
  ``schema_version`` 2 (adds ``infra_failure_ids``, ``ambiguous_failure_ids``, ``failure_reasons``).
- Per instance: ``logs/run_evaluation/<run_id>/<model>/<instance_id>/report.json`` (relative to the
  working directory), ``{instance_id: {"resolved": bool, "patch_exists", "patch_successfully_applied",
  ...}}`` (``harness/grading.py: get_eval_report``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.files import JsonlError, parse_jsonl

HARNESS_MODULE = "swebench.harness.run_evaluation"
HARNESS_LOG_DIR = Path("logs/run_evaluation")  # swebench.harness.constants.RUN_EVALUATION_LOG_DIR
INSTANCE_REPORT = "report.json"  # swebench.harness.constants.LOG_REPORT
DATASET_SUFFIXES = (".json", ".jsonl", ".parquet")  # what load_swebench_dataset reads from disk
PREDICTION_SUFFIXES = (".json", ".jsonl")  # what get_predictions_from_file accepts
PREDICTION_FIELDS = ("instance_id", "model_name_or_path", "model_patch")
DEFAULT_MAX_WORKERS = 4
DEFAULT_TIMEOUT = 1800  # the harness's own default, seconds per instance


class ResolveError(ValueError):
    """Bad input for the harness or an unreadable harness report."""


class DockerUnavailable(RuntimeError):
    """No reachable Docker engine: the harness cannot build or run a single test container."""


# ---------------------------------------------------------------------------------------------------
# Reading reports


@dataclass(frozen=True)
class ResolveReport:
    """The outcome of one harness run. Only ``resolved`` counts as a success; every other instance of
    the dataset (unresolved, error, empty patch, never submitted) counts as not resolved."""

    model: str
    source: str
    resolved: frozenset[str]
    unresolved: frozenset[str] = frozenset()
    errors: frozenset[str] = frozenset()
    empty: frozenset[str] = frozenset()
    submitted: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()
    incomplete: frozenset[str] = frozenset()
    infra_failures: frozenset[str] = frozenset()
    total_instances: int | None = None
    schema_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "source": self.source,
            "total_instances": self.total_instances,
            "submitted": len(self.submitted),
            "completed": len(self.completed),
            "resolved": len(self.resolved),
            "unresolved": len(self.unresolved),
            "errors": len(self.errors),
            "empty_patches": len(self.empty),
            "infra_failures": len(self.infra_failures),
        }


def read_harness_report(path: str | Path, run_id: str | None = None) -> ResolveReport:
    """Read a harness result: the final report ``<model>.<run_id>.json``, or a run's log folder
    ``logs/run_evaluation/<run_id>/<model>`` of per-instance ``report.json`` files (what survives when
    the run died before writing its final report)."""
    path = Path(path)
    if path.is_dir():
        return _read_instance_reports(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResolveError(f"harness report {path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResolveError(f"harness report {path} is not readable JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("resolved_ids"), list):
        raise ResolveError(f"{path} is not a SWE-bench harness report (no resolved_ids list)")

    def ids(key: str) -> frozenset[str]:
        value = data.get(key) or []
        if not isinstance(value, list):
            raise ResolveError(f"{path}: {key} is not a list")
        return frozenset(str(item) for item in value)

    name = path.name.removesuffix(".json")
    # The model name may itself contain dots, so the run id can only be cut off when it is known.
    model = name.removesuffix(f".{run_id}") if run_id else name
    known = {
        "resolved_ids",
        "unresolved_ids",
        "error_ids",
        "empty_patch_ids",
        "submitted_ids",
        "completed_ids",
        "incomplete_ids",
        "infra_failure_ids",
        "total_instances",
        "schema_version",
    }
    return ResolveReport(
        model=model,
        source=str(path),
        resolved=ids("resolved_ids"),
        unresolved=ids("unresolved_ids"),
        errors=ids("error_ids"),
        empty=ids("empty_patch_ids"),
        submitted=ids("submitted_ids"),
        completed=ids("completed_ids"),
        incomplete=ids("incomplete_ids"),
        infra_failures=ids("infra_failure_ids"),
        total_instances=data.get("total_instances"),
        schema_version=data.get("schema_version"),
        extra={key: value for key, value in data.items() if key not in known},
    )


def _read_instance_reports(folder: Path) -> ResolveReport:
    resolved: set[str] = set()
    unresolved: set[str] = set()
    errors: set[str] = set()
    for instance_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        report_file = instance_dir / INSTANCE_REPORT
        if not report_file.is_file():
            # The harness counts a run instance without a report as an error (make_run_report).
            errors.add(instance_dir.name)
            continue
        try:
            entry = json.loads(report_file.read_text())[instance_dir.name]
        except (json.JSONDecodeError, KeyError, TypeError, OSError):
            errors.add(instance_dir.name)
            continue
        (resolved if entry.get("resolved") else unresolved).add(instance_dir.name)
    if not (resolved or unresolved or errors):
        raise ResolveError(f"{folder} holds no per-instance harness report (<instance>/{INSTANCE_REPORT})")
    completed = resolved | unresolved
    return ResolveReport(
        model=folder.name,
        source=str(folder),
        resolved=frozenset(resolved),
        unresolved=frozenset(unresolved),
        errors=frozenset(errors),
        submitted=frozenset(completed | errors),
        completed=frozenset(completed),
    )


# ---------------------------------------------------------------------------------------------------
# Running the harness


@dataclass(frozen=True)
class HarnessOptions:
    predictions: str
    dataset: str
    split: str = "test"
    max_workers: int = DEFAULT_MAX_WORKERS
    run_id: str = ""
    timeout: int = DEFAULT_TIMEOUT
    report_dir: str = "."
    python: str = sys.executable

    @property
    def effective_run_id(self) -> str:
        return self.run_id or Path(self.predictions).stem


def harness_command(options: HarnessOptions) -> list[str]:
    """The harness's command line; flag names as swebench 5.0.2's argparse spells them."""
    return [
        options.python,
        "-m",
        HARNESS_MODULE,
        "--dataset_name",
        options.dataset,
        "--split",
        options.split,
        "--predictions_path",
        options.predictions,
        "--max_workers",
        str(options.max_workers),
        "--run_id",
        options.effective_run_id,
        "--timeout",
        str(options.timeout),
        "--report_dir",
        options.report_dir,
    ]


def check_inputs(options: HarnessOptions) -> str:
    """Check what the harness would only reject after minutes of setup; return the model name the
    final report will be named after."""
    predictions = Path(options.predictions)
    if predictions.suffix not in PREDICTION_SUFFIXES:
        raise ResolveError(
            f"predictions {predictions} must be a .jsonl or .json file (all the harness reads)"
        )
    if not predictions.is_file():
        raise ResolveError(f"predictions file {predictions} does not exist")
    rows = _prediction_rows(predictions)
    if not rows:
        raise ResolveError(f"predictions file {predictions} holds no prediction")
    for number, row in enumerate(rows, start=1):
        missing = [key for key in PREDICTION_FIELDS if not isinstance(row, dict) or key not in row]
        if missing:
            raise ResolveError(f"{predictions}: prediction {number} lacks {', '.join(missing)}")
    dataset = Path(options.dataset)
    if dataset.exists() and dataset.is_file() and dataset.suffix not in DATASET_SUFFIXES:
        raise ResolveError(
            f"dataset {dataset}: the harness reads local datasets only as .json, .jsonl or .parquet "
            "(swebench.harness.utils.load_swebench_dataset); convert it, or pass a hub name"
        )
    if options.max_workers < 1 or options.timeout < 1:
        raise ResolveError("--max-workers and --timeout must be positive")
    return str(rows[0]["model_name_or_path"])


def _prediction_rows(path: Path) -> list[Any]:
    try:
        text = path.read_text()
        if path.suffix == ".jsonl":
            return parse_jsonl(text, str(path))
        data = json.loads(text)
    except (OSError, json.JSONDecodeError, JsonlError, UnicodeDecodeError) as error:
        raise ResolveError(f"predictions file {path} is not readable: {error}") from None
    # The harness also takes SWE-agent's {instance_id: prediction} form.
    return list(data.values()) if isinstance(data, dict) else data if isinstance(data, list) else []


def final_report_path(options: HarnessOptions, model: str) -> Path:
    return Path(options.report_dir) / f"{model.replace('/', '__')}.{options.effective_run_id}.json"


def docker_problem() -> str | None:
    """Why no Docker engine can be reached, or None when one answers a ping."""
    try:
        import docker
    except ImportError as error:
        return f"the docker Python SDK is not importable: {error}"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as error:  # the SDK raises DockerException, requests errors, OSError...
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return first_line[:300]
    return None


def run_harness(
    options: HarnessOptions,
    *,
    check_docker: Callable[[], str | None] = docker_problem,
    run: Callable[[Sequence[str]], int] | None = None,
) -> ResolveReport:
    """Check inputs and Docker, run the harness, read its final report. ``check_docker`` and ``run``
    are parameters so that tests can stand in for the engine and the process."""
    model = check_inputs(options)
    problem = check_docker()
    if problem is not None:
        raise DockerUnavailable(problem)
    command = harness_command(options)
    status = (run or _run_process)(command)
    if status != 0:
        raise ResolveError(f"the harness exited with status {status}: {' '.join(command)}")
    return read_harness_report(final_report_path(options, model), options.effective_run_id)


def _run_process(command: Sequence[str]) -> int:
    # Output goes straight to the terminal: the harness's progress bars are the user's only view.
    return subprocess.run(list(command), check=False).returncode
