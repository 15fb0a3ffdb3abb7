"""The repair prompt (Agentless's wording) and its code section: the localized entities, or failing
those the localized files, with line numbers and context, read from the snapshot."""

from __future__ import annotations

from pathlib import Path

from reposearcher_plugin.evaluation.locations import Prediction
from reposearcher_plugin.index import RepoIndex
from reposearcher_plugin.index.lines import split_lines
from reposearcher_plugin.repair.files import ENCODING, inside_repository
from reposearcher_plugin.repair.options import PatchOptions

SYSTEM_PROMPT = "You are an expert software engineer who fixes bugs in Python repositories."
PROMPT = """We are currently solving the following issue within our repository. Here is the issue text:
--- BEGIN ISSUE ---
{issue}
--- END ISSUE ---

Below are some code segments, each from a relevant file. One or more of these files may contain bugs.
Each line is shown as `LINE_NUMBER | code`; the line numbers are for reference only.

--- BEGIN FILE ---
{code}
--- END FILE ---

Please first localize the bug based on the issue statement, and then generate *SEARCH/REPLACE* edits to fix
the issue.

Every *SEARCH/REPLACE* edit must use this format:
1. The file path
2. The start of search block: <<<<<<< SEARCH
3. A contiguous chunk of lines to search for in the existing source code
4. The dividing line: =======
5. The lines to replace into the source code
6. The end of the replace block: >>>>>>> REPLACE

Here is an example:

```python
### mathweb/flask/app.py
<<<<<<< SEARCH
from flask import Flask
=======
import math
from flask import Flask
>>>>>>> REPLACE
```

Please note that the *SEARCH/REPLACE* edit REQUIRES PROPER INDENTATION. If you would like to add the line
'        print(x)', you must fully write that out, with all those spaces before the code!
Do not include the line numbers in the SEARCH or REPLACE text. The SEARCH text must match the file exactly.
Wrap each *SEARCH/REPLACE* edit in a code block as shown in the example above. If you have multiple
*SEARCH/REPLACE* edits, use a separate code block for each one."""
RETRY_PROMPT = """Your edits could not be used:
{errors}

Answer again with *SEARCH/REPLACE* edits in the required format. Copy the SEARCH lines exactly from the
code shown above (without the line numbers)."""


def localized_code(
    index: RepoIndex, snapshot: Path, prediction: Prediction | None, options: PatchOptions
) -> tuple[str, list[str]]:
    """The prompt's code section and the entity ids / files it shows."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    shown: list[str] = []
    if prediction is not None:
        for location in prediction.functions:
            if len(shown) >= options.top_functions:
                break
            path = location.partition("::")[0]
            spans = [(entity.start, entity.end) for entity in index.find_all(location)]
            if not spans:
                continue
            for start, end in spans:
                end = min(end, start + options.max_snippet_lines - 1)
                ranges.setdefault(path, []).append(
                    (max(1, start - options.context_lines), end + options.context_lines)
                )
            shown.append(location)
    if not ranges:  # no entity resolved: show the top files from their start
        files = list(prediction.files) if prediction is not None else []
        files += [f.partition("::")[0] for f in (prediction.functions if prediction else [])]
        for path in dict.fromkeys(files):
            if len(ranges) >= options.top_files:
                break
            if (snapshot / path).is_file() and inside_repository(path):
                ranges[path] = [(1, options.max_snippet_lines)]
                shown.append(path)
    sections = []
    for path, spans in ranges.items():
        lines = split_lines((snapshot / path).read_bytes().decode(*ENCODING))  # the index's lines
        parts = []
        for start, end in _merge(spans):
            end = min(end, len(lines))
            parts.append("\n".join(f"{number:>5} | {lines[number - 1]}" for number in range(start, end + 1)))
        sections.append(f"### {path}\n" + "\n...\n".join(parts))
    return "\n\n".join(sections), shown


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
