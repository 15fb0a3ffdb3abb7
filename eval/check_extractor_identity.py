"""Dump what the index extracts from real non-Python source, to check a rewrite of the extractors changes
nothing (issue 14, move 9).

`dump` parses every file under the given roots that a non-Python language module of the index takes
(``languages.module_for``; ``--with-python`` adds Python) and writes, per file, every field of its
``FileParse``: language, line count, entities (qualname, kind, start, end, doc, decorators), imports,
variables, syntax-error count and lossy decoding, or the exception a parse raised. Only
``languages.module_for`` and ``languages.parse_source`` are used, so the script runs unchanged against
older code: point PYTHONPATH at the code to measure.

``--damaged K`` adds K broken copies of every file (cut short at a point, or with a run of lines left out,
chosen by a seeded random generator, so every run makes the same ones): real code rarely has syntax
errors, and the error-recovery paths of the extractors (ERROR nodes, nameless definitions) need them.

`compare` prints every file whose record differs between two dumps (and files only one of them has) and
exits 1 when there is any difference.

    git archive c3091c7 | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old nice -n 19 python eval/check_extractor_identity.py dump old.json ROOT... --damaged 4
    PYTHONPATH=.        nice -n 19 python eval/check_extractor_identity.py dump new.json ROOT... --damaged 4
    python eval/check_extractor_identity.py compare old.json new.json

Real code to run it on: JavaScript in the git mirrors (``git --git-dir=/work/.mirror/<owner+name>/repo
archive HEAD | tar -x -C DIR``), Java/Go/Rust/TypeScript from release sources
(``pip download --no-deps --no-binary :all: PKG==VERSION``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from reposearcher_plugin.index import languages


def _record(module: str, path: str, source: bytes) -> dict[str, Any]:
    try:
        parse = languages.parse_source(module, path, source)
    except Exception as error:  # the failure itself is part of what must stay the same (or be fixed)
        return {"module": module, "error": type(error).__name__}
    return {
        "module": module,
        "language": parse.language,
        "lines": parse.lines,
        "entities": [list(entity) for entity in parse.entities],
        "imports": [list(imported) for imported in parse.imports],
        "variables": [list(variable) for variable in parse.variables],
        "syntax_errors": parse.syntax_errors,
        "decoded_lossy": parse.decoded_lossy,
    }


def _source_files(root: Path, with_python: bool) -> list[tuple[str, str]]:
    """(path relative to root, module) of every file a language module parses, sorted by path."""
    found: list[tuple[str, str]] = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories.sort()
        for name in names:
            module = languages.module_for(name)
            if module is None or (module == "lang_python" and not with_python):
                continue
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((os.path.relpath(path, root), module))
    return sorted(found)


def _damaged(name: str, source: bytes, count: int) -> list[tuple[str, bytes]]:
    """``count`` broken copies of ``source``: cut short, or a run of its lines left out, in turn."""
    chooser = random.Random(name)  # the same copies on every run, whatever code is measured
    lines = source.split(b"\n")
    copies: list[tuple[str, bytes]] = []
    for number in range(count):
        if number % 2 == 0 or len(lines) < 3:
            cut = chooser.randrange(len(source) + 1)
            copies.append((f"#cut{cut}", source[:cut]))
        else:
            first = chooser.randrange(len(lines))
            last = min(len(lines), first + chooser.randint(1, 5))
            copies.append((f"#drop{first}-{last}", b"\n".join(lines[:first] + lines[last:])))
    return copies


def dump(output: Path, roots: list[Path], with_python: bool, damaged: int) -> None:
    records: dict[str, dict[str, Any]] = {}
    per_language: Counter[str] = Counter()
    entity_count = 0
    for root in roots:
        for relative, module in _source_files(root, with_python):
            name = f"{root.name}/{relative}"
            source = (root / relative).read_bytes()
            for suffix, text in [("", source), *_damaged(name, source, damaged)]:
                record = _record(module, relative, text)
                records[name + suffix] = record
                per_language[record.get("language", f"{module} (error)")] += 1
                entity_count += len(record.get("entities", ()))
    output.write_text(json.dumps(records, indent=0, sort_keys=True, ensure_ascii=False) + "\n")
    summary = ", ".join(f"{language} {count}" for language, count in sorted(per_language.items()))
    print(f"{len(records)} files ({summary}), {entity_count} entities -> {output}")


def compare(old_path: Path, new_path: Path) -> int:
    old = json.loads(old_path.read_text())
    new = json.loads(new_path.read_text())
    differing = 0
    for path in sorted(old.keys() | new.keys()):
        if old.get(path) == new.get(path):
            continue
        differing += 1
        before, after = old.get(path, {}), new.get(path, {})
        print(f"--- {path}")
        for field in sorted(before.keys() | after.keys()):
            if before.get(field) != after.get(field):
                print(f"  {field}:\n    old: {before.get(field)!r}\n    new: {after.get(field)!r}")
    print(f"{len(old)} / {len(new)} files, {differing} differ")
    return 1 if differing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dump_parser = commands.add_parser("dump", help="parse every supported non-Python file under ROOTs")
    dump_parser.add_argument("output", type=Path)
    dump_parser.add_argument("roots", type=Path, nargs="+")
    dump_parser.add_argument("--with-python", action="store_true", help="include Python files too")
    dump_parser.add_argument(
        "--damaged", type=int, default=0, metavar="K", help="also parse K broken copies of every file"
    )
    compare_parser = commands.add_parser("compare", help="list the files whose records differ")
    compare_parser.add_argument("old", type=Path)
    compare_parser.add_argument("new", type=Path)
    arguments = parser.parse_args(argv)
    if arguments.command == "dump":
        dump(arguments.output, arguments.roots, arguments.with_python, arguments.damaged)
        return 0
    return compare(arguments.old, arguments.new)


if __name__ == "__main__":
    sys.exit(main())
