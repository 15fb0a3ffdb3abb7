"""SWE-bench batch runs of ``LocalizeFirstAgent``: per instance, a writable checkout, the agent, its patch.

``mini-extra swebench`` always builds its own ``ProgressTrackingAgent`` (minisweagent/run/benchmarks/
swebench.py, ``process_instance``) and so ignores ``agent_class``; this runner is the same loop with the
agent class taken from the config. Environments:

- ``local``: the workspace snapshot of the base commit is copied to a temporary directory that becomes a
  one-commit git repository, so the agent's ``git diff`` shows exactly its own changes. No Docker, but the
  repository's dependencies are whatever this machine has.
- ``docker`` (or any image-based mini-swe-agent environment): the SWE-bench evaluation image of the
  instance, started by mini-swe-agent's own ``get_sb_environment``; the repository is ``/testbed`` inside
  it, and the localizer reads the workspace snapshot of the same commit on this machine.

Predictions are SWE-bench rows ``{instance_id, model_name_or_path, model_patch}`` (plus ``exit_status``
and, for a failed instance, ``error``): a ``.json`` output is mini-swe-agent's ``preds.json`` (a dict keyed
by instance id), a ``.jsonl`` output one row per line; ``swebench.harness.run_evaluation`` reads both.
Batches run through the runner of ``reposearcher run`` (``evaluation/batch.py: run_batch``, in threads),
with ``Predictions`` as the place rows go: reruns skip instances already in the output, each row is
recorded as it finishes, a failing instance is a row with ``error``. Trajectories go to
``OUT_STEM.trajectories/<id>.traj.json`` in mini-swe-agent's format (``mini-extra inspector`` reads them).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reposearcher_plugin.evaluation.batch import (
    BatchSummary,
    finished_ids,
    no_patch,
    run_batch,
    trajectory_dir,
)
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.files import append_row, safe_name, write_atomic
from reposearcher_plugin.index.names import utf8_value
from reposearcher_plugin.packaged import config_path
from reposearcher_plugin.workspace import Workspace

DEFAULT_CONFIG = config_path("mini_swe_agent_localize_first", "hosts")
DEFAULT_AGENT_CLASS = "reposearcher_plugin.hosts.mini_swe_agent.LocalizeFirstAgent"
# What mini-swe-agent's benchmarks/swebench.yaml sets for the SWE-bench images: commands run in /testbed
# under a non-login bash that still activates the image's conda env through ~/.bashrc.
DOCKER_ENVIRONMENT = {"cwd": "/testbed", "interpreter": ["bash", "-c"], "env": {"BASH_ENV": "/root/.bashrc"}}
ModelFactory = Callable[[Instance], Any]


SwebenchSummary = BatchSummary  # the same counts as a localization batch


def load_config(specs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """mini-swe-agent's config semantics: files or ``key.path=value`` specs, merged left to right. Unlike
    ``mini``, specs that are all ``key=value`` overrides apply on top of our localize-first config
    instead of replacing it (forgetting the file is the mistake its own help text warns about)."""
    from minisweagent.config import get_config_from_spec
    from minisweagent.utils.serialize import recursive_merge

    specs = list(specs)
    if all(isinstance(spec, str) and "=" in spec for spec in specs):
        specs.insert(0, DEFAULT_CONFIG)
    return recursive_merge(*(get_config_from_spec(spec) for spec in specs))


# --- the output file -----------------------------------------------------------------------------------


class Predictions:
    """``preds.json`` (dict by instance id, rewritten atomically) or ``.jsonl`` (appended, flushed): the
    batch runner's ``RowStore``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix not in (".json", ".jsonl"):
            raise ValueError(f"--out {self.path}: expected a .json or .jsonl file (what SWE-bench reads)")
        self.lock = threading.Lock()

    @property
    def jsonl(self) -> bool:
        return self.path.suffix == ".jsonl"

    def finished(self, retry_errors: bool = False) -> set[str]:
        if self.jsonl:
            return finished_ids(self.path, retry_errors=retry_errors)
        rows = self._read_json()
        if retry_errors:
            kept = {key: row for key, row in rows.items() if not row.get("error")}
            if len(kept) != len(rows):
                self._write_json(kept)
            rows = kept
        return set(rows)

    def add(self, row: dict[str, Any]) -> None:
        row = utf8_value(row)  # a patch of a file that is not UTF-8 holds surrogates: UTF-8 cannot write them
        with self.lock:
            if self.jsonl:
                with self.path.open("a", encoding="utf-8") as handle:
                    append_row(handle, row)
            else:
                rows = self._read_json()
                rows[row["instance_id"]] = row
                self._write_json(rows)

    def _read_json(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists() or not self.path.read_text(encoding="utf-8").strip():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if isinstance(data, list):  # the other form SWE-bench accepts
            data = {row["instance_id"]: row for row in data}
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: not a predictions dict or list")
        return data

    def _write_json(self, rows: dict[str, dict[str, Any]]) -> None:
        write_atomic(self.path, json.dumps(rows, indent=2, ensure_ascii=False))


# --- one instance --------------------------------------------------------------------------------------


def writable_copy(snapshot: Path, target: Path) -> Path:
    """Copy a read-only snapshot to ``target`` and make it a one-commit git repository.

    The snapshot holds exactly the commit's tracked files, so ``git add -f`` (ignored paths too) records
    the base tree; ``git diff`` afterwards shows only what the agent changed."""
    shutil.copytree(snapshot, target, symlinks=True)
    for directory, dirs, files in os.walk(target):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    os.chmod(target, os.stat(target).st_mode | stat.S_IWUSR)
    identity = ["-c", "user.name=reposearcher", "-c", "user.email=reposearcher@localhost"]
    for args in (
        ["init", "-q"],
        ["-c", "core.autocrlf=false", "add", "-A", "-f"],
        [
            *identity,
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--no-verify",
            "--allow-empty",
            "-m",
            "base",
        ],
    ):
        subprocess.run(["git", *args], cwd=target, check=True, capture_output=True, text=True)
    return target


@dataclass
class _Run:
    config: dict[str, Any]
    workspace: Workspace
    environment: str
    trajectories: Path
    work_root: Path
    model_name: str | None
    model_class: str | None
    model_factory: ModelFactory | None
    keep_workdirs: bool
    index_workers: int | None


def _model(run: _Run, instance: Instance) -> Any:
    if run.model_factory is not None:
        return run.model_factory(instance)
    from minisweagent.models import get_model

    model_config = dict(run.config.get("model", {}))
    model_class = run.model_class or model_config.get("model_class")
    name = run.model_name or model_config.get("model_name")
    if name == "deterministic" and not model_class:
        model_class = "deterministic"  # mini-swe-agent's scripted test model; outputs come from the config
    if model_class:
        model_config["model_class"] = model_class
    return get_model(name, model_config)


def _agent(run: _Run, model: Any, env: Any, repo_path: Path, output: Path) -> Any:
    from minisweagent.agents import get_agent_class

    config = json.loads(json.dumps(run.config.get("agent", {}), default=str))  # deep copy
    agent_class = get_agent_class(config.pop("agent_class", None) or DEFAULT_AGENT_CLASS)
    localizer = config.setdefault("localizer", {})
    localizer.setdefault("repo_path", str(repo_path))
    if run.index_workers is not None:
        localizer.setdefault("index_workers", run.index_workers)
    config["output_path"] = output  # saved after every step, as mini-swe-agent does
    return agent_class(model, env, **config)


def _environment(run: _Run, instance: Instance, workdir: Path | None) -> Any:
    from minisweagent.utils.serialize import recursive_merge

    if workdir is not None:
        from minisweagent.environments import get_environment

        config = dict(run.config.get("environment", {}))
        # container-only keys (image, interpreter) are ignored by LocalEnvironment's pydantic config
        config |= {"environment_class": "local", "cwd": str(workdir)}
        return get_environment(config)
    from minisweagent.run.benchmarks.swebench import get_sb_environment

    config = recursive_merge(
        run.config,
        {"environment": recursive_merge(DOCKER_ENVIRONMENT, run.config.get("environment", {}))},
        {"environment": {"environment_class": run.environment}},
    )
    return get_sb_environment(config, {"instance_id": instance.instance_id, **instance.extra})


def run_instance(run: _Run, instance: Instance) -> dict[str, Any]:
    """One instance start to end. Never raises: a failure is a row with ``error`` and an empty patch."""
    started = time.perf_counter()
    name = safe_name(instance.instance_id)
    trajectory = run.trajectories / f"{name}.traj.json"
    trajectory.unlink(missing_ok=True)
    agent = env = workdir = None
    model_name = run.model_name or "unknown"
    info: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    try:
        model = _model(run, instance)
        model_name = getattr(model.config, "model_name", model_name)
        with run.workspace.hold(instance.repo, instance.base_commit) as snapshot:
            if run.environment == "local":
                run.work_root.mkdir(parents=True, exist_ok=True)
                workdir = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=run.work_root)) / "repo"
                writable_copy(snapshot, workdir)
                repo_path = workdir
            else:
                repo_path = snapshot  # read by the localizer only; the agent edits /testbed in the container
            env = _environment(run, instance, workdir)
            agent = _agent(run, model, env, repo_path, trajectory)
            # inside the hold: with docker the localizer reads the snapshot itself
            info = agent.run(instance.problem_statement)
    except Exception as error:
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        info = {"exit_status": type(error).__name__, "submission": ""}
        extra = {"error": detail, "traceback": traceback.format_exc()}
    finally:
        if agent is not None:
            agent.save(trajectory, {"info": {**info, **extra}, "instance_id": instance.instance_id})
        if env is not None and hasattr(env, "cleanup"):
            env.cleanup()
        if workdir is not None and not run.keep_workdirs:
            shutil.rmtree(workdir.parent, ignore_errors=True)
    row = {
        "instance_id": instance.instance_id,
        "model_name_or_path": model_name,
        "model_patch": info.get("submission") or "",
        "exit_status": info.get("exit_status"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if extra.get("error"):
        row["error"] = extra["error"]
    if agent is not None:
        row["trajectory"] = f"{run.trajectories.name}/{trajectory.name}"  # relative to the output file
    return row


# --- the batch -----------------------------------------------------------------------------------------


def run_swebench(
    instances: Sequence[Instance],
    out: str | Path,
    workspace: Workspace,
    *,
    config: dict[str, Any] | None = None,
    model_name: str | None = None,
    model_class: str | None = None,
    model_factory: ModelFactory | None = None,
    environment: str = "local",
    workers: int = 1,
    retry_errors: bool = False,
    work_root: str | Path | None = None,
    keep_workdirs: bool = False,
    on_result: Callable[[dict[str, Any], SwebenchSummary], None] | None = None,
) -> SwebenchSummary:
    """Run the agent on every instance not yet in ``out``; one prediction per instance as it finishes.

    ``model_factory`` (an instance -> a mini-swe-agent model object) replaces ``get_model``: scripted
    models in tests, or a model class mini-swe-agent does not know. Threads, as in mini-extra swebench:
    the work is waiting on models and subprocesses."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    predictions = Predictions(out)
    run = _Run(
        config=config if config is not None else load_config(),
        workspace=workspace,
        environment=environment,
        trajectories=trajectory_dir(predictions.path),
        work_root=Path(work_root) if work_root else Path(tempfile.gettempdir()) / "reposearcher-mini",
        model_name=model_name,
        model_class=model_class,
        model_factory=model_factory,
        keep_workdirs=keep_workdirs,
        # a process pool per index build, from several threads at once, would oversubscribe the machine
        index_workers=1 if workers > 1 else None,
    )
    run.trajectories.mkdir(parents=True, exist_ok=True)
    return run_batch(
        instances,
        predictions.path,
        work=functools.partial(run_instance, run),
        empty=no_patch,
        workers=workers,
        retry_errors=retry_errors,
        on_result=on_result,
        store=predictions,
    )
