"""`reposearcher show`: read a run's trajectory in the terminal, or as one self-contained HTML page.

Input is a trajectory JSON file (``Trajectory.write``) or a predictions JSONL whose rows carry their
trajectory inline or as a path. Every text shown comes from a model, a repository or an issue, so none of
it is ever interpreted: rich markup is off (issues are full of ``[brackets]``) and HTML is escaped.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reposearcher_plugin.agent.result import Trajectory
from reposearcher_plugin.cli.errors import CommandError, reports_errors
from reposearcher_plugin.files import parse_jsonl

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

ISSUE_LINES = 15
OBSERVATION_LINES = 20
EVIDENCE_ITEMS = 10  # per list in the evidence


def add_show_command(subparsers: Any) -> None:
    """Add ``show`` to the top-level ``subparsers``."""
    show = subparsers.add_parser(
        "show",
        help="render a trajectory (or a predictions file's trajectories) in the terminal or as HTML",
        description="Render a trajectory JSON file, or the trajectories of a predictions JSONL file.",
    )
    show.add_argument("trajectory", metavar="TRAJ", help="a trajectory .json or a predictions .jsonl file")
    show.add_argument("--instance", metavar="ID", help="from a predictions file, only this instance")
    show.add_argument("--full", action="store_true", help="do not shorten the issue, observations, evidence")
    show.add_argument(
        "--html",
        metavar="OUT",
        help="write an HTML page to OUT instead (several trajectories: one page each in directory OUT)",
    )
    show.set_defaults(handler=cmd_show)


@reports_errors
def cmd_show(args: argparse.Namespace) -> int:
    try:
        trajectories = load_trajectories(args.trajectory, args.instance)
        if args.html:
            for written in write_html(trajectories, Path(args.html)):
                print(f"wrote {written}", file=sys.stderr)
            return 0
        from rich.console import Console

        console = Console()
        for number, trajectory in enumerate(trajectories):
            if number:
                console.rule(style="bold")
            show_trajectory(trajectory, console, full=args.full)
        return 0
    except (ValueError, OSError) as error:
        raise CommandError(str(error)) from None


# -- loading ---------------------------------------------------------------------------------------------


def load_trajectories(path: str, instance: str | None = None) -> list[Trajectory]:
    """The trajectories in ``path``: a trajectory file, or a predictions JSONL (all rows that have one, or
    the row of ``instance``). Raises ValueError with a message fit for the user."""
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"{path}: no such file")
    text = source.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSONL (or garbage, which _rows reports by line)
    if isinstance(whole, dict) and "format" in whole:
        trajectory = _trajectory(whole, path)
        if instance is not None and trajectory.instance_id != instance:
            raise ValueError(f"{path} is the trajectory of {trajectory.instance_id!r}, not {instance!r}")
        return [trajectory]
    if isinstance(whole, dict) and "instance_id" in whole:
        rows = [whole]  # a predictions file of one row
    elif isinstance(whole, list):
        rows = whole
    elif whole is None:
        rows = parse_jsonl(text, path)
    else:
        raise ValueError(f"{path}: neither a RepoSearcher trajectory nor a predictions file")
    return _from_rows(rows, source, instance)


def _from_rows(rows: list[Any], source: Path, instance: str | None) -> list[Trajectory]:
    rows = [row for row in rows if isinstance(row, dict) and "instance_id" in row]
    if not rows:
        raise ValueError(f"{source}: neither a RepoSearcher trajectory nor a predictions file")
    if instance is not None:
        chosen = [row for row in rows if row["instance_id"] == instance]
        if not chosen:
            ids = [str(row["instance_id"]) for row in rows]
            listed = ", ".join(ids[:5]) + (f", ... ({len(ids)} in all)" if len(ids) > 5 else "")
            raise ValueError(f"{source}: no instance {instance!r} (it has {listed})")
        if not chosen[0].get("trajectory"):
            raise ValueError(f"{source}: instance {instance!r} has no trajectory")
        rows = chosen[:1]
    trajectories = [_row_trajectory(row, source) for row in rows if row.get("trajectory")]
    if not trajectories:
        raise ValueError(f"{source}: none of its {len(rows)} rows has a trajectory")
    return trajectories


def _row_trajectory(row: dict[str, Any], source: Path) -> Trajectory:
    value = row["trajectory"]
    where = f"{source} (instance {row['instance_id']!r})"
    if isinstance(value, dict):
        return _trajectory(value, where)
    if not isinstance(value, str):
        raise ValueError(f"{where}: 'trajectory' is neither an object nor a path")
    # Paths are written relative to the predictions file, so the pair can be moved together.
    target = Path(value) if Path(value).is_absolute() else source.parent / value
    if not target.is_file():
        raise ValueError(f"{where}: trajectory file {target} not found")
    return _trajectory(json.loads(target.read_text(encoding="utf-8")), str(target))


def _trajectory(data: Any, where: str) -> Trajectory:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not a RepoSearcher trajectory")
    try:
        return Trajectory.from_dict(data)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    except TypeError as error:  # missing or unknown fields: another schema, or another version of ours
        raise ValueError(f"{where}: not a RepoSearcher trajectory ({error})") from None


# -- shared formatting -----------------------------------------------------------------------------------


def clip(text: str, limit: int, full: bool) -> tuple[str, int]:
    """The first ``limit`` lines of ``text`` (all with ``full``) and how many lines were left out."""
    lines = text.splitlines()
    if full or len(lines) <= limit:
        return text, 0
    return "\n".join(lines[:limit]), len(lines) - limit


def call_signature(name: str, arguments: dict[str, Any] | None, raw_arguments: str) -> str:
    """``name(key="value", n=3)``; arguments that were not valid JSON are shown as the model wrote them."""
    if arguments is None:
        return f"{name}({raw_arguments})"
    rendered = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    return f"{name}({rendered})"


def totals(trajectory: Trajectory) -> tuple[int, int, int]:
    """Prompt tokens, completion tokens and tool calls over all steps."""
    prompt = sum(step.prompt_tokens for step in trajectory.steps)
    completion = sum(step.completion_tokens for step in trajectory.steps)
    return prompt, completion, sum(len(step.calls) for step in trajectory.steps)


def header_fields(trajectory: Trajectory) -> list[tuple[str, str]]:
    prompt, completion, calls = totals(trajectory)
    fields = [
        ("instance", trajectory.instance_id),
        ("repo", trajectory.repo),
        ("model", trajectory.model),
        ("profile", trajectory.profile),
        ("tool format", trajectory.tool_format),
        ("wall time", f"{trajectory.wall_s:.2f} s"),
        ("tokens", f"{prompt + completion:,} ({prompt:,} prompt + {completion:,} completion)"),
        ("steps", f"{len(trajectory.steps)} ({calls} tool calls)"),
    ]
    return [(key, value) for key, value in fields if value]


def call_marks(ok: bool, repeated: bool, arguments: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(kind, label) of each thing worth flagging about a call; kind doubles as the HTML class."""
    marks = []
    if not ok:
        marks.append(("failed", "failed"))
    if repeated:
        marks.append(("repeated", "repeated call"))
    if arguments is None:
        marks.append(("invalid", "invalid JSON arguments"))
    return marks


def evidence_text(evidence: dict[str, Any], full: bool = True) -> str:
    """A retrieval run's evidence, one item a line (its shape varies by localizer: rendered generically).

    Without ``full`` each list or mapping is cut to its first items, so that every key stays in view."""
    lines: list[str] = []
    for key, value in evidence.items():
        if isinstance(value, list | dict):
            items = (
                [f"{number}. {_plain(item)}" for number, item in enumerate(value, 1)]
                if isinstance(value, list)
                else [f"{inner}: {_plain(item)}" for inner, item in value.items()]
            )
            shown = items if full else items[:EVIDENCE_ITEMS]
            lines += [f"{key}:", *(f"  {item}" for item in shown)]
            if len(shown) < len(items):
                lines.append(f"  … {len(items) - len(shown)} more")
        else:
            lines.append(f"{key}: {_plain(value)}")
    return "\n".join(lines)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- terminal --------------------------------------------------------------------------------------------


def show_trajectory(trajectory: Trajectory, console: Console, full: bool = False) -> None:
    """Print ``trajectory``: header, issue, each step with its tool calls, and the final answer."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    for key, value in header_fields(trajectory):
        header.add_row(key, Text(value))
    if trajectory.error:
        header.add_row(Text("error", style="bold red"), Text(trajectory.error, style="red"))
    console.print(Panel(header, title="RepoSearcher trajectory", title_align="left", border_style="blue"))

    issue, hidden = clip(trajectory.issue, ISSUE_LINES, full)
    console.print(Panel(_with_hidden(issue, hidden), title="issue", title_align="left"))

    for step in trajectory.steps:
        stats = f"{step.latency_s:.2f} s, {step.prompt_tokens:,} + {step.completion_tokens:,} tokens"
        console.rule(Text(f"step {step.index} · {step.stage} · {stats}"), align="left", style="cyan")
        if step.note:
            console.print(Text(f"note: {step.note}", style="yellow"))
        if step.error:
            console.print(Text(f"error: {step.error}", style="bold red"))
        if step.content.strip():
            console.print(Text(step.content.strip()))
        for call in step.calls:
            line = Text("→ ", style="cyan")
            line.append(call_signature(call.name, call.arguments, call.raw_arguments), style="bold")
            line.append(f"  {call.latency_s * 1000:.0f} ms", style="dim")
            for kind, label in call_marks(call.ok, call.repeated, call.arguments):
                line.append(f"  [{label}]", style="yellow" if kind == "repeated" else "red")
            console.print(line)
            observation, hidden = clip(call.observation, OBSERVATION_LINES, full)
            body = _with_hidden(observation, hidden)
            console.print(Panel(body, border_style="red" if not call.ok else "dim", padding=(0, 1)))

    if trajectory.answer or trajectory.evidence:
        console.rule(Text("final answer"), align="left", style="green")
        if trajectory.answer:
            console.print(Text(trajectory.answer.strip()))
        if trajectory.evidence:
            evidence = Text(evidence_text(trajectory.evidence, full))
            console.print(Panel(evidence, title="evidence", title_align="left"))
    elif not trajectory.steps:
        console.print(Text("no steps and no answer were recorded", style="dim"))


def _with_hidden(text: str, hidden: int) -> Text:
    from rich.text import Text

    shown = Text(text)
    if hidden:
        shown.append(f"\n… {hidden} more lines (--full shows them)", style="dim italic")
    return shown


# -- HTML ------------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 72rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #1d2330; background: #fff; }
h1 { font-size: 1.3rem; margin: 0 0 .5rem; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
pre { background: #f5f6f8; padding: .6rem .8rem; border-radius: 4px; overflow-x: auto; margin: .3rem 0;
      white-space: pre-wrap; word-break: break-word; font: 12.5px/1.4 ui-monospace, monospace; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
section.step { border-left: 3px solid #4a7bd0; padding-left: .8rem; margin: 1rem 0; }
.stats { color: #667; font-size: .9em; } .note { color: #8a5a00; }
.error { color: #b00020; font-weight: 600; }
.call { margin: .5rem 0; } .call code { font-weight: 600; }
.mark { font-size: .8em; padding: 0 .4em; border-radius: 3px; margin-left: .4em; }
.mark.failed, .mark.invalid { background: #fde2e4; color: #b00020; }
.mark.repeated { background: #fff3cd; color: #8a5a00; }
.call.failed pre { background: #fff4f5; }
summary { cursor: pointer; color: #445; }
"""


def trajectory_html(trajectory: Trajectory) -> str:
    """One self-contained page (inline CSS, no scripts, no external assets)."""
    esc = html.escape
    meta = "".join(f"<dt>{esc(key)}</dt><dd>{esc(value)}</dd>" for key, value in header_fields(trajectory))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(trajectory.instance_id)} · RepoSearcher trajectory</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{esc(trajectory.instance_id)}</h1><dl class=meta>{meta}</dl>",
    ]
    if trajectory.error:
        parts.append(f'<p class="error">error: {esc(trajectory.error)}</p>')
    parts.append("</header>")
    issue_lines = len(trajectory.issue.splitlines())
    parts.append("<section class=issue><h2>Issue</h2>")
    parts.append(_collapsible(trajectory.issue, ISSUE_LINES, f"issue ({issue_lines} lines)"))
    parts.append("</section>")

    for step in trajectory.steps:
        stats = f"{step.latency_s:.2f} s · {step.prompt_tokens:,} + {step.completion_tokens:,} tokens"
        parts.append(f'<section class="step" id="step-{step.index}">')
        parts.append(f"<h2>Step {step.index} · {esc(step.stage)}</h2><p class=stats>{esc(stats)}</p>")
        if step.note:
            parts.append(f'<p class="note">note: {esc(step.note)}</p>')
        if step.error:
            parts.append(f'<p class="error">error: {esc(step.error)}</p>')
        if step.content.strip():
            parts.append(f'<pre class="assistant">{esc(step.content.strip())}</pre>')
        for call in step.calls:
            marks = call_marks(call.ok, call.repeated, call.arguments)
            classes = " ".join(["call", *(kind for kind, _ in marks)])
            badges = "".join(f'<span class="mark {kind}">{esc(label)}</span>' for kind, label in marks)
            signature = esc(call_signature(call.name, call.arguments, call.raw_arguments))
            lines = len(call.observation.splitlines())
            parts.append(f'<div class="{classes}"><div><code>{signature}</code>{badges}')
            parts.append(f"<span class=stats> {call.latency_s * 1000:.0f} ms</span></div>")
            parts.append(_collapsible(call.observation, OBSERVATION_LINES, f"observation ({lines} lines)"))
            parts.append("</div>")
        parts.append("</section>")

    if trajectory.answer or trajectory.evidence:
        parts.append("<section class=answer><h2>Final answer</h2>")
        if trajectory.answer:
            parts.append(f"<pre>{esc(trajectory.answer.strip())}</pre>")
        if trajectory.evidence:
            text = evidence_text(trajectory.evidence)
            parts.append(_collapsible(text, OBSERVATION_LINES, f"evidence ({len(text.splitlines())} lines)"))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _collapsible(text: str, limit: int, summary: str) -> str:
    """Short text as is; long text folded into a <details> the reader opens."""
    block = f"<pre>{html.escape(text)}</pre>"
    if len(text.splitlines()) <= limit:
        return block
    return f"<details><summary>{html.escape(summary)}</summary>{block}</details>"


def write_html(trajectories: list[Trajectory], out: Path) -> list[Path]:
    """One trajectory: the page is ``out``. Several: ``out`` is a directory of ``<instance>.html`` pages."""
    if len(trajectories) == 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(trajectory_html(trajectories[0]), encoding="utf-8")
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for trajectory in trajectories:
        stem = re.sub(r"[^\w.-]+", "_", trajectory.instance_id) or "trajectory"
        page = out / f"{stem}.html"
        number = 1
        while page in written:  # the same instance twice (e.g. several samples): keep every page
            number += 1
            page = out / f"{stem}-{number}.html"
        page.write_text(trajectory_html(trajectory), encoding="utf-8")
        written.append(page)
    return written
