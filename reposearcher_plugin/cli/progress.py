"""A progress bar on a terminal, silence when piped."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """Yields an ``update(done, total)`` callback, or None when stderr is not a terminal.

    The bar is refreshed only from the caller's updates (no refresh thread), so the indexer can fork its
    worker processes safely while it is shown.
    """
    if not sys.stderr.isatty():
        yield None
        return
    # rich only here: a piped run (scripts, batches, --json) never pays for importing it
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        auto_refresh=False,
        console=Console(stderr=True),
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = bar.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        bar.refresh()

    with bar:
        yield update


def report_row(summary: Any, instance_id: str, status: str) -> None:
    """One finished instance of a batch, on stderr: ``[done/total] ID: STATUS``."""
    done = summary.skipped + summary.done
    print(f"[{done}/{summary.total}] {instance_id}: {status}", file=sys.stderr, flush=True)


def finish_batch(out: str, summary: Any, verb: str, empty: str = "empty") -> int:
    """The last lines of a batch command (localize, patch, mini-swe-agent) and its exit status:
    130 when interrupted (rerun to resume), 1 when every instance failed, else 0."""
    print(
        f"{out}: {summary.done} {verb} in {summary.seconds:.0f} s ({summary.per_minute:.1f}/min), "
        f"{summary.skipped} already there, {summary.errors} errors, {summary.empty} {empty}",
        file=sys.stderr,
    )
    for example in summary.error_examples:
        print(f"  {example}", file=sys.stderr)
    if summary.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if summary.done and summary.errors == summary.done else 0
