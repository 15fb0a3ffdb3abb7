"""The table of eval/results/mining.md from the summaries `reposearcher mine` writes.
Usage: python eval/mining_table.py OUT.summary.json [...] [--label NAME ...]

One column per summary (its repositories added up, labelled by ``--label`` or the repository names): the
commits examined, the instances kept, each filter's count in the order the miner tries them, and the
wall and CPU seconds (CPU: the miner and its git processes, comparable on a shared machine).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+", type=Path)
    parser.add_argument("--label", action="append", default=[], help="column names, in order")
    args = parser.parse_args()
    columns = []
    for number, path in enumerate(args.summaries):
        summary = json.loads(path.read_text(encoding="utf-8"))
        repositories = summary["repositories"]
        label = args.label[number] if number < len(args.label) else ", ".join(r["repo"] for r in repositories)
        columns.append((label, summary["total"], summary["filters"]))
    filters = list(columns[0][2])
    lines = ["| | " + " | ".join(label for label, _, _ in columns) + " |"]
    lines.append("| --- |" + " ---: |" * len(columns))

    def row(name: str, values: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(values) + " |")

    row("commits examined", [f"{total['commits']:,}" for _, total, _ in columns])
    row("**kept (instances)**", [f"**{total['kept']:,}**" for _, total, _ in columns])
    for name in filters:
        row(f"`{name}`", [f"{total['filtered'].get(name, 0):,}" for _, total, _ in columns])
    row("wall seconds", [f"{total['seconds']:.0f}" for _, total, _ in columns])
    row("CPU seconds", [f"{total.get('cpu_seconds', 0):.0f}" for _, total, _ in columns])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
