"""Resuming a mining run: the output rows and the per-commit verdict log, opened for appending, what an
earlier run of the same command decided, and the cut-off last line a killed run may leave.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from reposearcher_plugin.evaluation.mining_rules import KEPT, MineOptions
from reposearcher_plugin.files import append_row, json_line, parse_jsonl, without_cut_line


def commits_log_path(out: Path) -> Path:
    return out.with_name(out.name + ".commits.jsonl")


def summary_path(out: Path) -> Path:
    return out.with_name(out.name + ".summary.json")


class MiningError(ValueError):
    """An output that cannot be resumed, or a repository that cannot be mined."""


class MiningState:
    """The output rows and the commit log of a run, opened for appending: what earlier runs of the same
    command decided (``verdicts``) and the files new rows and verdicts go to."""

    def __init__(self, out: Path, options: MineOptions, *, overwrite: bool = False) -> None:
        self.out = out
        self.log = commits_log_path(out)
        self.verdicts: dict[tuple[str, str], str] = {}  # (repo, commit) -> verdict
        fingerprint = options.fingerprint()
        if overwrite or not (out.exists() or self.log.exists()):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("", encoding="utf-8")
            self.log.write_text(json_line({"options": fingerprint}), encoding="utf-8")
        else:
            self._resume(fingerprint)
        self.rows: TextIO = out.open("a", encoding="utf-8")
        self.commits: TextIO = self.log.open("a", encoding="utf-8")

    def _resume(self, fingerprint: dict[str, Any]) -> None:
        if not self.log.exists() or not self.out.exists():
            missing = self.log if not self.log.exists() else self.out
            raise MiningError(f"{missing} is missing, so {self.out} cannot be resumed: pass --overwrite")
        logged = parse_jsonl(without_cut_line(self.log), str(self.log))
        if not logged or logged[0].get("options") != fingerprint:
            raise MiningError(
                f"{self.out} was mined with other options or rules; pass --overwrite or another --out"
            )
        for entry in logged[1:]:
            self.verdicts[(entry["repo"], entry["commit"])] = entry["verdict"]
        rows = {
            (row["repo"], row["commit"]) for row in parse_jsonl(without_cut_line(self.out), str(self.out))
        }
        for key, verdict in list(self.verdicts.items()):
            if verdict == KEPT and key not in rows:  # the row was lost with a cut line: mine it again
                del self.verdicts[key]
        unlogged = [key for key in rows if key not in self.verdicts]  # killed between row and verdict
        with self.log.open("a", encoding="utf-8") as log:
            for repo, commit in unlogged:
                log.write(json_line({"repo": repo, "commit": commit, "verdict": KEPT}))
                self.verdicts[(repo, commit)] = KEPT

    def record(self, repo: str, commit: str, verdict: str, row: dict[str, Any] | None = None) -> None:
        """The row first, then the verdict: a kill between the two leaves a row the next run keeps."""
        if row is not None:
            append_row(self.rows, row)
        self.commits.write(json_line({"repo": repo, "commit": commit, "verdict": verdict}))
        self.verdicts[(repo, commit)] = verdict

    def close(self) -> None:
        self.commits.flush()
        self.rows.close()
        self.commits.close()
