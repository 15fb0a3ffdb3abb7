"""Localize first, for SWE-agent: localize a dataset (a resumable batch), then write SWE-agent's
``--instances.type=file`` rows with the result in ``extra_fields.localization`` (see ``swe_agent.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reposearcher_plugin.files import parse_jsonl, write_jsonl
from reposearcher_plugin.hosts.localization_text import render_localization

DEFAULT_IMAGE_TEMPLATE = "docker.io/swebench/sweb.eval.x86_64.{id}:latest"


def swe_bench_image(instance_id: str, template: str = DEFAULT_IMAGE_TEMPLATE) -> str:
    """The image name of an instance. ``{id}`` is the Docker-safe id (``__`` -> ``_1776_``, as SWE-bench
    names its images), ``{instance_id}`` the id as it is; lower-cased, as SWE-agent does."""
    safe = instance_id.replace("__", "_1776_")
    return template.format(id=safe, instance_id=instance_id).lower()


def instance_row(
    instance: Any,
    prediction: Mapping[str, Any] | None,
    *,
    image_template: str = DEFAULT_IMAGE_TEMPLATE,
    repo_name: str = "testbed",
    max_locations: int = 10,
    max_files: int = 5,
) -> dict[str, Any]:
    """One row of SWE-agent's instances file (``SimpleBatchInstance``: image_name, problem_statement,
    instance_id, repo_name, base_commit, extra_fields). A repo_name without a slash is a repository
    already in the image at ``/<repo_name>``, as SWE-agent's own SWE-bench loader writes it."""
    prediction = prediction or {}
    locations = list(prediction.get("locations") or [])[:max_locations]
    files = list(prediction.get("found_files") or [])[:max_files]
    # a failed localization shows nothing rather than a partial ranking; the template leaves it out
    text = (
        ""
        if prediction.get("error")
        else render_localization(locations, files, max_files=max_files, max_locations=max_locations)
    )
    return {
        "instance_id": instance.instance_id,
        "image_name": swe_bench_image(instance.instance_id, image_template),
        "problem_statement": instance.problem_statement,
        "repo_name": repo_name,
        "base_commit": instance.base_commit,
        "extra_fields": {
            "localization": text,
            "localized_locations": locations,
            "localized_files": files,
            "localization_model": prediction.get("model", ""),
        },
    }


@dataclass
class InstancesSummary:
    written: int
    missing: list[str]  # selected instances without a prediction (an interrupted batch)
    errors: int  # rows whose localization failed (their localization text is empty)
    predictions: Path
    batch: Any  # evaluation.batch.BatchSummary


def predictions_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".predictions.jsonl")


def write_instances(
    instances: Sequence[Any],
    out: str | Path,
    options: Any,
    workspace: Any,
    *,
    predictions: str | Path | None = None,
    workers: int = 1,
    image_template: str = DEFAULT_IMAGE_TEMPLATE,
    repo_name: str = "testbed",
    max_locations: int = 10,
    max_files: int = 5,
    retry_errors: bool = False,
    index_cache_dir: str | None = None,
    on_result: Callable[[dict[str, Any], Any], None] | None = None,
) -> InstancesSummary:
    """Localize ``instances`` into a predictions file (resumable: evaluation.batch), then write the
    SWE-agent instances file ``out`` from it, one row per instance that has a prediction."""
    from reposearcher_plugin.evaluation.batch import run_batch

    out = Path(out)
    predictions = Path(predictions) if predictions else predictions_path(out)
    summary = run_batch(
        instances,
        predictions,
        options,
        workspace,
        workers=workers,
        retry_errors=retry_errors,
        index_cache_dir=index_cache_dir,
        on_result=on_result,
    )
    by_id = _read_rows(predictions)
    rows, missing, errors = [], [], 0
    for instance in instances:
        prediction = by_id.get(instance.instance_id)
        if prediction is None:
            missing.append(instance.instance_id)
            continue
        errors += bool(prediction.get("error"))
        rows.append(
            instance_row(
                instance,
                prediction,
                image_template=image_template,
                repo_name=repo_name,
                max_locations=max_locations,
                max_files=max_files,
            )
        )
    write_jsonl(out, rows)
    return InstancesSummary(len(rows), missing, errors, predictions, summary)


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    # a retried instance's later line wins
    return {row["instance_id"]: row for row in parse_jsonl(path.read_text(encoding="utf-8"), str(path))}
