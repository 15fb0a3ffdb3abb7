"""Where tables go: never cut an id or a number, on a narrow terminal or through a pipe."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table

PIPED_WIDTH = 10_000  # rich assumes 80 columns when stdout is not a terminal, and cuts tables to fit


def output_console() -> Console:
    """A console for stdout: the terminal's width, or (piped, redirected) wide enough for any table."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPED_WIDTH)


def natural_width(console: Console, renderable: RenderableType) -> int:
    """The width ``renderable`` takes when nothing limits it (rich's own measure is capped by the console)."""
    return Measurement.get(console, console.options.update_width(PIPED_WIDTH), renderable).maximum


def column_groups(count: int, fits: Callable[[list[int]], bool]) -> list[list[int]]:
    """Indices of ``count`` columns in consecutive groups for which ``fits`` holds (a table too wide for
    the terminal becomes several tables, none of them cut). A column that fits nowhere alone still gets
    a group of its own."""
    groups: list[list[int]] = []
    for index in range(count):
        if groups and fits([*groups[-1], index]):
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def ranked_table(title: str, locations: Sequence[str], highlight: str | None = None) -> Table:
    """Ranked locations; an id too long for the terminal wraps inside its cell instead of being cut."""
    table = Table(title=title, title_justify="left")
    table.add_column("rank", no_wrap=True, justify="right")
    table.add_column("location", overflow="fold")
    for rank, location in enumerate(locations, start=1):
        table.add_row(str(rank), location, style="bold green" if location == highlight else None)
    return table
