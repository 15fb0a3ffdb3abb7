"""Localization next to %Resolved, per system, in one table (the ToolTrain paper's Table 3), with paired
bootstrap intervals, %Resolved split by whether localization found the gold functions, and a scatter plot.

%Resolved divides by the dataset's size: an instance the harness never saw, errored on or got an empty
patch for is not resolved. Localization scores come from :func:`metrics.evaluate`, as in ``eval loc``.

The intervals cannot reuse :func:`report.bootstrap` as is: it resamples each level on its own, over the
instances scored at that level, whereas here one resample of the *dataset's* instances must drive every
column of every system, so that "function Recall@5 and %Resolved move together" is a paired statement.
A localization column that skips some instances (``strict`` does not score an instance whose gold names
no function) is the resample's mean over its scored instances (a ratio estimator), which equals the
usual score on the full sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reposearcher_plugin.evaluation.metrics import SystemScores
from reposearcher_plugin.evaluation.readers import ReadDiagnostics
from reposearcher_plugin.evaluation.report import CONFIDENCE, DEFAULT_RESAMPLES, Interval, _markdown_table
from reposearcher_plugin.evaluation.resolve import ResolveReport

RESOLVED = "resolved"
# (column, level, metric): the paper's Table 3 puts function Recall@5 next to %Resolved.
LOCALIZATION_COLUMNS = (
    ("file recall@5", "file", "recall@5"),
    ("function recall@5", "function", "recall@5"),
    ("function map", "function", "map"),
)
COLUMNS = (*(column for column, _, _ in LOCALIZATION_COLUMNS), RESOLVED)
FOUND_METRIC = ("function", "recall@5")
GROUPS = ("all found", "some found", "none found", "no gold function")
GROUP_NOTES = {
    "all found": "every gold function in the top 5",
    "some found": "some but not all gold functions in the top 5",
    "none found": "no gold function in the top 5",
    "no gold function": "the gold names no function (not scored at function level)",
}
MISSING = "-"


@dataclass(frozen=True)
class JointSystem:
    """One row: localization scores, a harness report, or both."""

    name: str
    scores: SystemScores | None = None
    diagnostics: ReadDiagnostics | None = None
    resolve: ResolveReport | None = None


@dataclass(frozen=True)
class GroupRow:
    group: str
    instances: int
    resolved: int

    @property
    def percent(self) -> float | None:
        return self.resolved / self.instances * 100 if self.instances else None


@dataclass(frozen=True)
class JointReport:
    protocol: str
    instance_ids: tuple[str, ...]
    systems: list[JointSystem]
    resamples: int
    seed: int
    values: list[dict[str, float | None]]  # per system: column -> percent (None: not available)
    intervals: list[dict[str, Interval]]  # per system: column -> (low, high); empty without bootstrap
    breakdown: list[list[GroupRow]]  # per system; empty unless it has both localization and %Resolved
    by_repo: list[dict[str, dict[str, float | int | None]]] = field(default_factory=list)
    outside_dataset: list[int] = field(default_factory=list)  # resolve-report ids the dataset lacks


def _columns(system: JointSystem, instance_ids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per column, the per-instance values and which instances count, aligned with ``instance_ids``."""
    n = len(instance_ids)
    columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if system.scores is not None:
        for column, level, metric in LOCALIZATION_COLUMNS:
            scores = system.scores.levels.get(level)
            if scores is None or metric not in scores.per_instance:
                continue
            position = {instance_id: i for i, instance_id in enumerate(scores.instance_ids)}
            values, mask = np.zeros(n), np.zeros(n)
            for i, instance_id in enumerate(instance_ids):
                if instance_id in position:
                    values[i] = scores.per_instance[metric][position[instance_id]]
                    mask[i] = 1.0
            columns[column] = (values, mask)
    if system.resolve is not None:
        resolved = np.array([1.0 if i in system.resolve.resolved else 0.0 for i in instance_ids])
        columns[RESOLVED] = (resolved, np.ones(n))
    return columns


def build_joint_report(
    protocol: str,
    instance_ids: Sequence[str],
    systems: Sequence[JointSystem],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    repos: dict[str, str] | None = None,
) -> JointReport:
    """``instance_ids``: the dataset, in its order (the denominator of %Resolved); ``repos``: instance
    id -> repository, for the per-repository breakdown."""
    ids = tuple(instance_ids)
    n = len(ids)
    resamples = max(resamples, 0)
    counts = None
    if resamples and n:
        # One set of resamples for every system and column: the intervals are paired.
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n, size=(resamples, n))
        counts = np.zeros((resamples, n))
        np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    tail = (1 - CONFIDENCE) / 2 * 100
    values, intervals, breakdown, by_repo, outside = [], [], [], [], []
    known = set(ids)
    for system in systems:
        columns = _columns(system, ids)
        values.append(
            {
                column: (float(v @ m / m.sum() * 100) if m.sum() else None)
                for column, (v, m) in columns.items()
            }
        )
        system_intervals: dict[str, Interval] = {}
        if counts is not None:
            for column, (v, m) in columns.items():
                if not m.sum():
                    continue
                with np.errstate(invalid="ignore", divide="ignore"):
                    means = counts @ (v * m) / (counts @ m) * 100
                low, high = np.nanpercentile(means, [tail, 100 - tail])
                system_intervals[column] = (float(low), float(high))
        intervals.append(system_intervals)
        breakdown.append(_breakdown(system, ids))
        by_repo.append(_by_repo(columns, ids, repos) if repos else {})
        outside.append(len(system.resolve.submitted - known) if system.resolve else 0)
    return JointReport(
        protocol, ids, list(systems), resamples, seed, values, intervals, breakdown, by_repo, outside
    )


def _breakdown(system: JointSystem, ids: tuple[str, ...]) -> list[GroupRow]:
    if system.scores is None or system.resolve is None:
        return []
    level, metric = FOUND_METRIC
    scores = system.scores.levels[level]
    recall = dict(zip(scores.instance_ids, scores.per_instance[metric], strict=True))
    tallies = {group: [0, 0] for group in GROUPS}
    for instance_id in ids:
        found = recall.get(instance_id)
        if found is None:
            group = "no gold function"
        elif found >= 1.0:
            group = "all found"
        elif found > 0.0:
            group = "some found"
        else:
            group = "none found"
        tallies[group][0] += 1
        tallies[group][1] += instance_id in system.resolve.resolved
    return [GroupRow(group, total, resolved) for group, (total, resolved) in tallies.items() if total]


def _by_repo(
    columns: dict[str, tuple[np.ndarray, np.ndarray]], ids: tuple[str, ...], repos: dict[str, str]
) -> dict[str, dict[str, float | int | None]]:
    names = np.array([repos.get(instance_id, "") for instance_id in ids])
    result: dict[str, dict[str, float | int | None]] = {}
    for repo in sorted(set(names.tolist())):
        rows = names == repo
        entry: dict[str, float | int | None] = {"instances": int(rows.sum())}
        for column, (v, m) in columns.items():
            counted = m[rows].sum()
            entry[column] = float(v[rows] @ m[rows] / counted * 100) if counted else None
        result[repo] = entry
    return result


# ---------------------------------------------------------------------------------------------------
# Output


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def joint_json(report: JointReport) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for number, system in enumerate(report.systems):
        values = report.values[number]
        systems[system.name] = {
            "scores": {column: _round(values.get(column)) for column in COLUMNS},
            "intervals": {
                column: [round(low, 2), round(high, 2)]
                for column, (low, high) in report.intervals[number].items()
            },
            "resolved_by_localization": [
                {
                    "group": row.group,
                    "instances": row.instances,
                    "resolved": row.resolved,
                    "percent": _round(row.percent),
                }
                for row in report.breakdown[number]
            ],
            "localization_input": system.diagnostics.to_dict() if system.diagnostics else None,
            "resolve_report": system.resolve.to_dict() if system.resolve else None,
            "resolve_ids_outside_dataset": report.outside_dataset[number],
        }
        if report.by_repo and report.by_repo[number]:
            systems[system.name]["by_repo"] = {
                repo: {
                    key: _round(value) if isinstance(value, float) else value for key, value in entry.items()
                }
                for repo, entry in report.by_repo[number].items()
            }
    return {
        "protocol": report.protocol,
        "instances": len(report.instance_ids),
        "resamples": report.resamples,
        "seed": report.seed,
        "confidence": CONFIDENCE,
        "systems": systems,
    }


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _cell(value: float | None, interval: Interval | None) -> str:
    if value is None:
        return MISSING
    if interval is None:
        return f"{value:.1f}"
    return f"{value:.1f} ({interval[0]:.1f}, {interval[1]:.1f})"


def joint_markdown(report: JointReport, heading: str = "Localization and %Resolved", about: str = "") -> str:
    n = len(report.instance_ids)
    lines = [f"# {heading} — protocol `{report.protocol}`", ""]
    if about:
        lines += [about, ""]
    intro = (
        f"{n} instances; percent. %Resolved divides by all {n}: instances the harness did not resolve, "
        f"errored on, got an empty patch for or never received count as unresolved"
    )
    if report.resamples:
        intro += (
            f". Each score has its {CONFIDENCE:.0%} interval (low, high) from {report.resamples} bootstrap "
            f"resamples of the instances, the same resamples for every column and system (seed {report.seed})"
        )
    lines += [intro + f". `{MISSING}`: no localization output or no harness report for that system.", ""]
    rows = [
        [system.name]
        + [_cell(report.values[i].get(column), report.intervals[i].get(column)) for column in COLUMNS]
        for i, system in enumerate(report.systems)
    ]
    lines += _markdown_table(["system", *COLUMNS[:-1], "%resolved"], rows)
    breakdown = [
        [system.name, row.group, str(row.instances), str(row.resolved), _cell(row.percent, None)]
        for i, system in enumerate(report.systems)
        for row in report.breakdown[i]
    ]
    if breakdown:
        lines += ["", "## %Resolved by localization outcome (function level, top 5)", ""]
        lines += [
            "; ".join(f"`{group}`: {note}" for group, note in GROUP_NOTES.items()) + ".",
            "",
        ]
        lines += _markdown_table(["system", "group", "instances", "resolved", "%resolved"], breakdown)
    if any(report.by_repo):
        lines += ["", "## By repository", ""]
        repo_rows = []
        for i, system in enumerate(report.systems):
            for repo, entry in report.by_repo[i].items():
                repo_rows.append(
                    [system.name, repo, str(entry["instances"])]
                    + [_cell(_float(entry.get(column)), None) for column in ("function recall@5", RESOLVED)]
                )
        header = ["system", "repository", "instances", "function recall@5", "%resolved"]
        lines += _markdown_table(header, repo_rows)
    lines += ["", "## Input", ""]
    input_rows = []
    for i, system in enumerate(report.systems):
        diagnostics = system.diagnostics.to_dict() if system.diagnostics else {}
        resolve = system.resolve.to_dict() if system.resolve else {}
        input_rows.append(
            [
                system.name,
                str(diagnostics.get("predictions", MISSING)),
                str(diagnostics.get("missing_ids", MISSING)),
                Path(resolve["source"]).name if resolve else MISSING,
                str(resolve.get("submitted", MISSING)),
                str(resolve.get("errors", MISSING)),
                str(resolve.get("empty_patches", MISSING)),
                str(report.outside_dataset[i]) if resolve else MISSING,
            ]
        )
    lines += _markdown_table(
        [
            "system",
            "predictions",
            "missing_ids",
            "harness report",
            "submitted",
            "errors",
            "empty_patches",
            "outside_dataset",
        ],
        input_rows,
    )
    problems = [
        f"- `{system.name}`: " + "; ".join(system.diagnostics.problems())
        for system in report.systems
        if system.diagnostics is not None and not system.diagnostics.clean
    ]
    if problems:
        lines += ["", *problems]
    return "\n".join(lines).rstrip() + "\n"


def plot_joint(report: JointReport, path: str | Path, title: str = "") -> Path:
    """Function Recall@5 against %Resolved, one point per system with both (95% interval bars); with
    a per-repository breakdown, faint points per (system, repository)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_column = "function recall@5"
    figure, axes = plt.subplots(figsize=(6.5, 5))
    plotted = 0
    for i, system in enumerate(report.systems):
        x, y = report.values[i].get(x_column), report.values[i].get(RESOLVED)
        if x is None or y is None:
            continue
        color = f"C{plotted % 10}"
        plotted += 1
        x_interval, y_interval = report.intervals[i].get(x_column), report.intervals[i].get(RESOLVED)
        axes.errorbar(
            x,
            y,
            xerr=[[x - x_interval[0]], [x_interval[1] - x]] if x_interval else None,
            yerr=[[y - y_interval[0]], [y_interval[1] - y]] if y_interval else None,
            fmt="o",
            color=color,
            capsize=3,
            label=system.name,
        )
        for entry in (report.by_repo[i] if report.by_repo else {}).values():
            rx, ry = entry.get(x_column), entry.get(RESOLVED)
            if rx is not None and ry is not None:
                axes.scatter([rx], [ry], color=color, alpha=0.3, s=12 + 2 * float(entry["instances"] or 0))
    axes.set_xlabel("function Recall@5 (%)")
    axes.set_ylabel("%Resolved")
    axes.set_xlim(-2, 102)
    axes.set_ylim(-2, 102)
    axes.grid(alpha=0.3)
    if plotted:
        axes.legend(fontsize="small")
    else:
        axes.text(50, 50, "no system has both localization and %Resolved", ha="center")
    default_title = f"Localization vs %Resolved ({len(report.instance_ids)} instances)"
    axes.set_title(title or default_title, fontsize="medium")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
