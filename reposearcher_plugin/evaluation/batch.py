"""Batch localization over a dataset: resumable, parallel, one JSON line per finished instance.

Each instance runs in a worker process: check out the repository at its base commit (workspace), index
it (the parse cache makes later commits of a repository cheap), localize, write the trajectory beside the
output. The parent appends each result line as soon as it arrives and flushes it, so a killed run loses
only the instances in flight; a rerun skips every instance already in the output (and first drops a
last line cut off mid-write). A failing instance is recorded — an ``error`` field and an empty
prediction — and the batch goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from reposearcher_plugin.agent.localizers import LocalizerOptions, build_localizer
from reposearcher_plugin.agent.result import LocalizationResult, Trajectory
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.files import append_row, jsonl_lines, safe_name, write_atomic
from reposearcher_plugin.rank.history import ChangeHistory
from reposearcher_plugin.workspace import Workspace
from reposearcher_plugin.workspace.errors import WorkspaceError

T = TypeVar("T")
JobT = TypeVar("JobT")


@dataclass
class BatchSummary:
    total: int  # instances asked for
    skipped: int = 0  # already in the output
    done: int = 0  # finished in this run
    errors: int = 0
    empty: int = 0  # finished without any location
    seconds: float = 0.0
    interrupted: bool = False
    error_examples: list[str] = field(default_factory=list)

    def count(self, row: dict[str, Any], empty: bool, started: float) -> None:
        """Count one finished row: an error, an empty answer, or a result."""
        self.done += 1
        if row.get("error"):
            self.errors += 1
            if len(self.error_examples) < 5:
                self.error_examples.append(f"{row['instance_id']}: {row['error']}")
        elif empty:
            self.empty += 1
        self.seconds = time.perf_counter() - started

    @property
    def per_minute(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "skipped": self.skipped,
            "done": self.done,
            "errors": self.errors,
            "empty": self.empty,
            "seconds": round(self.seconds, 1),
            "instances_per_minute": round(self.per_minute, 2),
            "interrupted": self.interrupted,
        }


class RowStore(Protocol):
    """Where a batch's rows go, and are found again by a rerun; by default, the JSONL file ``out``."""

    def finished(self, retry_errors: bool = False) -> set[str]:
        """The instance ids already recorded (with ``retry_errors``, those that failed are dropped)."""
        ...

    def add(self, row: dict[str, Any]) -> None: ...


def run_in_threads(
    items: Sequence[T],
    work: Callable[[T], dict[str, Any]],
    record: Callable[[dict[str, Any]], None],
    workers: int,
) -> bool:
    """Run ``work`` over ``items`` in threads (for work that waits on a model), recording each row as it
    finishes. On Ctrl-C the queued items are cancelled and the running ones recorded; returns whether the
    run was interrupted."""
    executor = ThreadPoolExecutor(max_workers=workers)
    pending: set[Future[dict[str, Any]]] = set()
    try:
        pending = {executor.submit(work, item) for item in items}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                record(future.result())
    except KeyboardInterrupt:
        for future in pending:
            future.cancel()
        for future in [future for future in pending if not future.cancelled()]:
            record(future.result())
        return True
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return False


def trajectory_dir(out: Path) -> Path:
    return out.with_name(out.stem + ".trajectories")


def finished_ids(out: Path, retry_errors: bool = False) -> set[str]:
    """Instance ids already in ``out``. A final line cut off mid-write is dropped from the file (it
    holds nothing usable and would corrupt the next append); with ``retry_errors`` rows that recorded
    an error are dropped too, so they run again."""
    if not out.exists():
        return set()
    kept: list[str] = []
    done: set[str] = set()
    changed = False
    with out.open(encoding="utf-8", errors="replace") as handle:
        lines = jsonl_lines(handle.read())
    for line in lines:
        if line.error is not None:
            if line.last:  # the line a killed run was writing
                changed = True
                continue
            raise ValueError(f"{out}: line {line.number} is not JSON; fix or remove it before resuming")
        row = line.value
        instance_id = row.get("instance_id") if isinstance(row, dict) else None
        if not isinstance(instance_id, str):
            raise ValueError(
                f"{out}: line {line.number} has no instance_id; fix or remove it before resuming"
            )
        if retry_errors and row.get("error"):
            changed = True
            continue
        done.add(instance_id)
        kept.append(line.text if line.text.endswith("\n") else line.text + "\n")
    if changed:
        write_atomic(out, "".join(kept))
    return done


@dataclass(frozen=True)
class _Job:
    instance: Instance
    options: LocalizerOptions
    workspace: Workspace
    trajectories: Path
    index_cache_dir: str | None
    allow_missing: bool = False
    history: bool = True


def _localize_instance(job: _Job) -> dict[str, Any]:
    """Runs in a worker: one instance, start to end. Never raises: a failure becomes an error row."""
    from reposearcher_plugin.index import ParseCache, build_index

    instance = job.instance
    started = time.perf_counter()
    try:
        with job.workspace.hold(instance.repo, instance.base_commit, allow_missing=job.allow_missing) as root:
            missing = len(job.workspace.missing(root)) if job.allow_missing else 0
            cache = ParseCache(job.index_cache_dir) if job.index_cache_dir else None
            index = build_index(root, cache=cache, workers=1)
            index_s = time.perf_counter() - started
            history = past_changes(job.workspace, instance) if job.history else None
            localizer = build_localizer(job.options)
            result = localizer.localize(
                index,
                instance.problem_statement,
                instance_id=instance.instance_id,
                repo=instance.repo,
                history=history,
            )
        result.usage["index_s"] = round(index_s, 3)
        if missing:
            result.usage["missing_files"] = missing  # left out of the snapshot: blobs the source lacks
    except Exception as error:  # one bad instance must not end the batch
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        result = LocalizationResult(instance.instance_id, job.options.model, error=detail)
        result.usage["wall_s"] = round(time.perf_counter() - started, 3)
    if isinstance(result.trajectory, Trajectory):
        name = safe_name(instance.instance_id) + ".json"
        result.trajectory.write(job.trajectories / name)
        result.trajectory = f"{job.trajectories.name}/{name}"  # relative to the output file
    return result.to_dict()


def past_changes(workspace: Workspace, instance: Instance) -> ChangeHistory | None:
    """The instance's repository history at its base commit, or None when git cannot read it (a shallow
    or damaged clone): the ranking then goes without its history evidence rather than failing."""
    try:
        return workspace.history(instance.repo, instance.base_commit)
    except WorkspaceError:
        return None


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PARENT_POLL_S = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """Pool worker initializer: the worker ends when the batch parent does. Otherwise a parent killed with
    SIGKILL leaves its workers localizing on, writing trajectories for rows that never reach the output.

    Linux: the kernel sends SIGKILL when the thread that forked us exits (with the fork context every
    worker is forked by the thread calling ``submit``, which holds the pool until it is shut down).
    Everywhere, also a thread that watches for the parent to change (orphans are re-parented)."""
    _arm_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="watch-batch-parent", daemon=True).start()


def _arm_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc: the watcher alone
        pass


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)  # at once, from this thread: nothing the worker was doing may still be written


def run_batch(
    instances: Sequence[Instance],
    out: str | Path,
    options: LocalizerOptions | None = None,
    workspace: Workspace | None = None,
    *,
    workers: int = 1,
    retry_errors: bool = False,
    index_cache_dir: str | None = None,
    allow_missing: bool = False,
    history: bool = True,
    on_result: Callable[[dict[str, Any], BatchSummary], None] | None = None,
    work: Callable[[Instance], dict[str, Any]] | None = None,
    empty: Callable[[dict[str, Any]], bool] | None = None,
    store: RowStore | None = None,
) -> BatchSummary:
    """Localize every instance not yet in ``out``, appending one line per instance as it finishes.

    Other per-instance jobs (the repair patcher, mini-swe-agent) pass ``work``, which turns an instance
    into its row and never raises, instead of ``options`` and ``workspace``; it runs in threads, as such
    work waits on a model, and ``empty`` says which of its rows count as empty. ``store`` replaces the
    JSONL file as the place rows go (mini-swe-agent's ``preds.json``, a dict rewritten per row).
    Resuming, recording and counting are the same for all. ``history``: give the ranking each instance's
    repository history at its base commit (rank/history.py)."""
    if work is None and (options is None or workspace is None):
        raise ValueError("run_batch needs the localizer options and a workspace, or work to run")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done_before = (
        store.finished(retry_errors) if store is not None else finished_ids(out, retry_errors=retry_errors)
    )
    todo = [instance for instance in instances if instance.instance_id not in done_before]
    summary = BatchSummary(total=len(instances), skipped=len(instances) - len(todo))
    is_empty = empty or _no_location
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        add = (
            store.add
            if store is not None
            else functools.partial(append_row, stack.enter_context(out.open("a", encoding="utf-8")))
        )

        def record(row: dict[str, Any]) -> None:
            add(row)
            summary.count(row, is_empty(row), started)
            if on_result:
                on_result(row, summary)

        if work is not None:
            summary.interrupted = run_in_threads(todo, work, record, max(1, workers))
        else:
            assert options is not None and workspace is not None  # checked on entry
            trajectories = trajectory_dir(out)
            trajectories.mkdir(parents=True, exist_ok=True)
            jobs = [
                _Job(instance, options, workspace, trajectories, index_cache_dir, allow_missing, history)
                for instance in todo
            ]
            summary.interrupted = in_processes(jobs, _localize_instance, record, workers)
    summary.seconds = time.perf_counter() - started
    return summary


def _no_location(row: dict[str, Any]) -> bool:
    return not row.get("locations") and not row.get("found_files")


def no_patch(row: dict[str, Any]) -> bool:
    """A SWE-bench prediction row (the patchers') that is empty: no patch."""
    return not row["model_patch"].strip()


def in_processes(
    jobs: Sequence[JobT],
    work: Callable[[JobT], dict[str, Any]],
    record: Callable[[dict[str, Any]], None],
    workers: int,
) -> bool:
    """Run ``work`` on each of ``jobs`` in forked worker processes, recording each row in the parent as it
    arrives (so one process writes the output); returns whether the run was interrupted (Ctrl-C cancels
    what is queued). ``work`` must not raise: a failed job is a row that says so."""
    # fork: workers start at once and inherit the loaded package; nothing threaded runs in the parent yet
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max(1, workers), mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending: set[Future[dict[str, Any]]] = set()
        queue = iter(jobs)
        try:
            for job in queue:  # keep at most two jobs per worker queued, so a kill leaves little in flight
                pending.add(pool.submit(work, job))
                if len(pending) >= 2 * max(1, workers):
                    break
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    record(future.result())
                    next_job = next(queue, None)
                    if next_job is not None:
                        pending.add(pool.submit(work, next_job))
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            return True
    return False
