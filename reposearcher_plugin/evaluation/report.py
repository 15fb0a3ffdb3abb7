"""Evaluation reports: paired bootstrap confidence intervals, tables for people, JSON, a Recall@k plot.

Confidence intervals resample instances (the unit that varies between benchmarks), with replacement,
the same resamples for every system and metric of a level: so the interval of a *difference* between
two systems is paired, much narrower than comparing two separate intervals, and says whether the gap
survives the choice of instances. Intervals are percentile intervals of the resampled means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reposearcher_plugin.evaluation.metrics import SystemScores
from reposearcher_plugin.evaluation.readers import ReadDiagnostics

DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95
RECALL_CURVE_CUTOFFS = tuple(range(1, 11))
# Columns of the tables for people; the JSON carries every metric.
TABLE_METRICS = {
    "strict": ("acc@5", "recall@1", "recall@5", "recall@10", "map", "ndcg@5", "empty"),
    "tooltrain": ("acc@1", "acc@5", "recall@1", "recall@5", "map", "mrr", "ndcg@5", "empty"),
    "locagent": ("acc@1", "acc@3", "acc@5", "acc@10"),
}
PROTOCOL_NOTES = {
    "strict": (
        "Protocol `strict`: file-qualified ids; `acc@k` means every gold item is in the top k; an instance "
        "without a prediction scores zero; an instance whose gold names no entity is not scored at module "
        "and function level."
    ),
    "tooltrain": (
        "Protocol `tooltrain`, the ToolTrain paper's evaluation (its `FLEval.py`): the first 5 files and "
        "the first 5 names, names compared without their file, every sum divided by all gold instances; "
        "`acc@k` is the script's TOP k, at least one gold item in the top k. No module level: the script "
        "scores files and names (classes and functions together) only."
    ),
    "locagent": (
        "Protocol `locagent`, Acc@k as LocAgent and SweRank report it (LocAgent's `eval_metric.py`): gold "
        "is the edited functions and methods, files and modules derived from them; an instance whose gold "
        "names none is not scored; `acc@k` means the top k hold every gold item, or only gold items when "
        "there are more than k. LocAgent reports file acc@1/3/5 and module and function acc@5/10."
    ),
}
DIAGNOSTIC_COLUMNS = (
    "predictions",
    "missing_ids",
    "empty_predictions",
    "duplicate_ids",
    "unknown_ids",
    "malformed_lines",
    "unparsed_locations",
)

Interval = tuple[float, float]
LevelIntervals = dict[str, dict[str, Interval]]  # level -> metric -> (low, high), percent


@dataclass(frozen=True)
class SystemResult:
    name: str
    scores: SystemScores
    diagnostics: ReadDiagnostics
    recall_curve: SystemScores | None = None  # recall@1..10, for the plot


@dataclass(frozen=True)
class Report:
    protocol: str
    systems: list[SystemResult]
    resamples: int
    seed: int
    intervals: list[LevelIntervals]  # one per system; empty without bootstrap
    differences: list[LevelIntervals]  # system minus the first system; the first's is empty

    @property
    def levels(self) -> list[str]:
        return list(self.systems[0].scores.levels) if self.systems else []


def bootstrap(
    systems: Sequence[SystemScores], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> tuple[list[LevelIntervals], list[LevelIntervals]]:
    """Percentile intervals of each system's metrics and of each system's difference from the first,
    from ``resamples`` paired resamples of the instances of each level."""
    intervals: list[LevelIntervals] = [{} for _ in systems]
    differences: list[LevelIntervals] = [{} for _ in systems]
    if not systems or resamples <= 0:
        return intervals, differences
    tail = (1 - CONFIDENCE) / 2 * 100
    for level_number, level in enumerate(systems[0].levels):
        instance_ids = systems[0].levels[level].instance_ids
        if any(system.levels[level].instance_ids != instance_ids for system in systems):
            raise ValueError(f"systems scored different instances at {level} level: cannot pair them")
        n = len(instance_ids)
        if n == 0:
            continue
        # A resample is a count per instance; its mean is counts @ values / n, for all metrics at once.
        rng = np.random.default_rng([seed, level_number])
        draws = rng.integers(0, n, size=(resamples, n))
        counts = np.zeros((resamples, n))
        np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
        metrics = list(systems[0].levels[level].per_instance)
        values = [np.column_stack([s.levels[level].per_instance[m] for m in metrics]) for s in systems]
        for number, system_values in enumerate(values):
            means = counts @ system_values / n * 100
            intervals[number][level] = _percentiles(metrics, means, tail)
            if number:
                gaps = counts @ (system_values - values[0]) / n * 100
                differences[number][level] = _percentiles(metrics, gaps, tail)
    return intervals, differences


def _percentiles(metrics: list[str], samples: np.ndarray, tail: float) -> dict[str, Interval]:
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return {metric: (float(low[i]), float(high[i])) for i, metric in enumerate(metrics)}


def build_report(
    protocol: str, systems: Sequence[SystemResult], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Report:
    intervals, differences = bootstrap([system.scores for system in systems], resamples, seed)
    return Report(protocol, list(systems), max(resamples, 0), seed, intervals, differences)


# ---------------------------------------------------------------------------------------------------
# JSON


def report_json(report: Report) -> dict[str, Any]:
    """``{name: {"n", "file": {metric: %}, "module": ..., "function": ..., "diagnostics", ...}}``.

    A level the protocol does not define (module under tooltrain) is an empty object.
    """
    result: dict[str, Any] = {}
    for number, system in enumerate(report.systems):
        percentages = system.scores.percentages()
        entry: dict[str, Any] = {"n": system.scores.n, "protocol": report.protocol}
        for level in ("file", "module", "function"):
            entry[level] = {metric: _round(value) for metric, value in percentages.get(level, {}).items()}
        entry["n_scored"] = {level: scores.n for level, scores in system.scores.levels.items()}
        entry["diagnostics"] = system.diagnostics.to_dict()
        if report.resamples:
            entry["bootstrap"] = {"resamples": report.resamples, "seed": report.seed}
            entry["bootstrap"]["confidence"] = CONFIDENCE
            entry["ci95"] = _rounded_intervals(report.intervals[number])
            if number:
                entry["difference_from"] = report.systems[0].name
                entry["difference_ci95"] = _rounded_intervals(report.differences[number])
        result[system.name] = entry
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _rounded_intervals(intervals: LevelIntervals) -> dict[str, dict[str, list[float]]]:
    return {
        level: {metric: [round(low, 4), round(high, 4)] for metric, (low, high) in by_metric.items()}
        for level, by_metric in intervals.items()
    }


# ---------------------------------------------------------------------------------------------------
# Tables for people (markdown here; the CLI renders the same cells with rich)


def table_metrics(report: Report, chosen: Sequence[str] | None = None) -> list[str]:
    return list(chosen) if chosen else list(TABLE_METRICS.get(report.protocol, ()))


def score_cells(
    report: Report, level: str, metrics: Sequence[str], two_lines: bool = False
) -> list[list[str]]:
    """One row per system: its name, then ``value (low, high)`` per metric (``two_lines``: the interval
    under the value, for terminal tables)."""
    rows = []
    for number, system in enumerate(report.systems):
        values = system.scores.levels[level].percentages()
        intervals = report.intervals[number].get(level, {})
        rows.append([system.name] + [_cell(values.get(m), intervals.get(m), two_lines) for m in metrics])
    return rows


def difference_cells(report: Report, level: str, metrics: Sequence[str]) -> list[list[str]]:
    """One row per system after the first: its difference from the first, ``*`` when the interval
    excludes zero."""
    rows = []
    first = report.systems[0].scores.levels[level].percentages()
    for number, system in enumerate(report.systems[1:], start=1):
        values = system.scores.levels[level].percentages()
        gaps = report.differences[number].get(level, {})
        cells = [system.name]
        for metric in metrics:
            value, base, interval = values.get(metric), first.get(metric), gaps.get(metric)
            if value is None or base is None or interval is None:
                cells.append("–")
                continue
            mark = "*" if interval[0] > 0 or interval[1] < 0 else ""
            cells.append(f"{value - base:+.1f}{mark} ({interval[0]:+.1f}, {interval[1]:+.1f})")
        rows.append(cells)
    return rows


def _cell(value: float | None, interval: Interval | None, two_lines: bool = False) -> str:
    if value is None:
        return "–"
    if interval is None:
        return f"{value:.1f}"
    if two_lines:
        return f"{value:.1f}\n{interval[0]:.1f}–{interval[1]:.1f}"
    return f"{value:.1f} ({interval[0]:.1f}, {interval[1]:.1f})"


def diagnostic_cells(report: Report) -> list[list[str]]:
    rows = []
    for system in report.systems:
        counts = system.diagnostics.to_dict()
        rows.append([system.name] + [str(counts[column]) for column in DIAGNOSTIC_COLUMNS])
    return rows


def report_markdown(
    report: Report, metrics: Sequence[str] | None = None, heading: str = "Localization", about: str = ""
) -> str:
    """Markdown: one table per level (systems as rows), differences from the first system, input problems."""
    columns = table_metrics(report, metrics)
    n = report.systems[0].scores.n if report.systems else 0
    lines = [f"# {heading} — protocol `{report.protocol}`", ""]
    if about:
        lines += [about, ""]
    intro = f"{n} instances; scores in percent"
    if report.resamples:
        intro += (
            f", each with its {CONFIDENCE:.0%} confidence interval (low, high) from {report.resamples} "
            f"paired bootstrap resamples of the instances (seed {report.seed})"
        )
    lines += [intro + ".", ""]
    if report.protocol in PROTOCOL_NOTES:
        lines += [PROTOCOL_NOTES[report.protocol], ""]
    for level in report.levels:
        scored = report.systems[0].scores.levels[level].n
        lines += [f"## {level.capitalize()} level ({scored} instances scored)", ""]
        lines += _markdown_table(["system", *columns], score_cells(report, level, columns))
        if report.resamples and len(report.systems) > 1:
            lines += [
                "",
                f"Difference from `{report.systems[0].name}`, in points (paired interval; `*`: it "
                "excludes 0).",
                "",
            ]
            lines += _markdown_table(["system", *columns], difference_cells(report, level, columns))
        lines.append("")
    lines += ["## Input", ""]
    lines += _markdown_table(["system", *DIAGNOSTIC_COLUMNS], diagnostic_cells(report))
    problems = [(s.name, s.diagnostics.problems()) for s in report.systems if not s.diagnostics.clean]
    if problems:
        lines.append("")
        lines += [f"- `{name}`: " + "; ".join(found) for name, found in problems]
    return "\n".join(lines).rstrip() + "\n"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


# ---------------------------------------------------------------------------------------------------
# Recall@k plot


def plot_recall(report: Report, path: str | Path, title: str = "") -> Path:
    """One panel per level, Recall@k for k = 1..10, one line per system; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    curves = {s.name: s.recall_curve for s in report.systems if s.recall_curve is not None}
    if not curves:
        raise ValueError("no recall curves in the report: evaluate with recall@1..10 first")
    levels = report.levels
    figure, axes = plt.subplots(1, len(levels), figsize=(5.2 * len(levels), 5.4), sharey=True, squeeze=False)
    colors = plt.get_cmap("tab10").colors
    markers = "osD^vP*Xph"
    top = 0.0
    for axis, level in zip(axes[0], levels, strict=True):
        for number, (name, curve) in enumerate(curves.items()):
            values = _curve_values(curve, level)
            top = max(top, *values)
            axis.plot(
                RECALL_CURVE_CUTOFFS,
                values,
                label=name,
                color=colors[number % len(colors)],
                marker=markers[number % len(markers)],
                linestyle=("-", "--", ":")[(number // len(colors)) % 3],
                markersize=4,
                linewidth=1.6,
            )
        axis.set_title(f"{level} level")
        axis.set_xlabel("k")
        axis.set_xticks(RECALL_CURVE_CUTOFFS)
        axis.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("Recall@k (%)")
    axes[0][0].set_ylim(0, min(100.0, top + 5))
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=9, frameon=False)
    rows_of_legend = -(-len(labels) // 3)
    title = title or f"Recall@k, protocol {report.protocol}"
    if report.protocol == "tooltrain":  # flat lines past 5 are the protocol, not the systems
        title += "\n(the protocol keeps the first 5 files and names: Recall@k is flat beyond k = 5)"
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.045 * rows_of_legend + 0.02, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _curve_values(curve: SystemScores, level: str) -> list[float]:
    values = curve.levels[level].percentages()
    return [values[f"recall@{k}"] or 0.0 for k in RECALL_CURVE_CUTOFFS]


def recall_curve_metrics() -> list[str]:
    return [f"recall@{k}" for k in RECALL_CURVE_CUTOFFS]
