"""LocAgent's gold for a dataset: the functions and methods each patch edits, by LocAgent's rules.

Writes ``{instance_id: ["path.py::Class.method", ...]}`` for every instance (an empty list where the
patch edits no existing function or method: the ``locagent`` protocol does not score those), the gold
``reposearcher eval loc --protocol locagent`` takes. Only the patched files are read, from the base
commits in local git repositories (mirrors or clones: ``DIR/owner+name`` or ``DIR/owner__name``), one
``git show`` per instance: SWE-bench Lite takes a few minutes on a busy two-core machine. The rules are in
``reposearcher_plugin/evaluation/gold_locagent.py``; the command line and what it gives on Lite are in
eval/results/locagent_protocol.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reposearcher_plugin.evaluation.gold import GoldError
from reposearcher_plugin.evaluation.gold_locagent import ReadBase, locagent_gold
from reposearcher_plugin.evaluation.instances import Instance, load_instances
from reposearcher_plugin.workspace import WorkspaceError, parse_aliases
from reposearcher_plugin.workspace.git import git
from reposearcher_plugin.workspace.sources import find_local


def base_reader(git_dir: Path, commit: str) -> ReadBase:
    def read(path: str) -> str | None:
        shown = git(git_dir, "show", f"{commit}:{path}", check=False)
        return shown.stdout.decode("utf-8", "surrogateescape") if shown.returncode == 0 else None

    return read


def gold_of(
    instance: Instance, repos_dir: Path, aliases: dict[str, list[str]], merge_init: bool
) -> list[str]:
    git_dir, looked = find_local(instance.repo, [repos_dir], aliases)
    if git_dir is None:
        raise WorkspaceError(
            f"{instance.repo}: no repository found (looked in {', '.join(map(str, looked))})"
        )
    read = base_reader(git_dir, instance.base_commit)
    return locagent_gold(instance.instance_id, instance.patch, read, merge_init=merge_init)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="instances (JSONL with patch and base_commit)")
    parser.add_argument("--repos-dir", required=True, type=Path, help="directory of the repositories")
    parser.add_argument("--repo-alias", action="append", default=[], metavar="OWNER/NAME=OWNER/FORK")
    parser.add_argument("--out", required=True, type=Path, help="the gold JSON to write")
    parser.add_argument(
        "--merge-init", action="store_true", help="an __init__ edit labels its class (LocAgent's Lite gold)"
    )
    args = parser.parse_args(argv)
    aliases = parse_aliases(args.repo_alias)
    gold: dict[str, list[str]] = {}
    failures: list[str] = []
    for instance in load_instances(args.dataset):
        try:
            gold[instance.instance_id] = gold_of(instance, args.repos_dir, aliases, args.merge_init)
        except (GoldError, WorkspaceError) as error:
            failures.append(str(error))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(gold, indent=1) + "\n", encoding="utf-8")
    without = [instance_id for instance_id, items in gold.items() if not items]
    print(
        f"{len(gold)} instances, {len(gold) - len(without)} with gold, {len(without)} without:",
        file=sys.stderr,
    )
    for instance_id in without:
        print(f"  {instance_id}", file=sys.stderr)
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
