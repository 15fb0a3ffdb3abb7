"""The patch step of the %Resolved pipeline: localizations in, SWE-bench predictions out.

Patchers:

- ``repair`` (Agentless-style): per instance, the code of the localized entities (top N functions, or the
  top files when no entity resolves) with line numbers and context goes into one prompt with the issue;
  the model answers with SEARCH/REPLACE edit blocks; the blocks are applied to a writable copy of the
  touched files and the patch is what ``git diff`` says, so it is exactly what the harness's
  ``git apply`` expects. A reply whose blocks do not parse or apply is retried with the errors fed back.
  With ``samples > 1`` the most frequent normalized patch wins (Agentless's majority vote).
- ``gold``: the instance's own patch, to check the harness and the dataset before spending a model on it.

Rows are ``{instance_id, model_name_or_path, model_patch}`` plus bookkeeping fields (``patcher``,
``attempts``, ``edits_applied``, ``edits_failed``, ``usage``, ``error``). swebench 5.0.2 tolerates the
extra keys: ``harness/utils.py get_predictions_from_file`` only checks that ``instance_id`` is there and
``run_evaluation.py`` reads ``model_patch`` and ``model_name_or_path`` by key. Model replies and per-attempt
details go to ``OUT_STEM.trajectories/<id>.patch.json`` so the predictions file stays small.

Resumable like ``reposearcher run``: ids already in the output are skipped, each row is appended and
flushed as it finishes, a failing instance is recorded with ``model_patch: ""`` and an ``error``.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.policy import LiteLLMPolicy, Policy, PolicyError
from reposearcher_plugin.evaluation.batch import BatchSummary, run_batch, trajectory_dir
from reposearcher_plugin.evaluation.diffs import DiffError, diff_paths, parse_diff
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.evaluation.locations import Prediction
from reposearcher_plugin.index import ParseCache, RepoIndex, build_index
from reposearcher_plugin.index.lines import split_lines
from reposearcher_plugin.workspace import Workspace
from reposearcher_plugin.workspace.git import git

PATCHERS = ("repair", "gold")
ENCODING = ("utf-8", "surrogateescape")  # files that are not UTF-8 must round-trip byte for byte

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


@dataclass
class PatchOptions:
    model: str | None = None  # litellm model; required by the repair patcher
    api_base: str | None = None
    api_key: str | None = None
    model_name: str | None = None  # model_name_or_path of the rows (default: the model, or "gold")
    temperature: float = 0.0  # raised to 0.8 when samples > 1 and left at 0 (identical samples vote nothing)
    samples: int = 1
    top_functions: int = 5
    top_files: int = 3  # used when no localized entity resolves in the index
    context_lines: int = 10
    max_snippet_lines: int = 300  # per entity or file: a class or a module can be huge
    retries_on_fail: int = 2
    max_output_tokens: int = 4096
    request_retries: int = 3  # transient API errors, inside one attempt (LiteLLMPolicy backoff)
    index_cache_dir: str | None = None


PatchSummary = BatchSummary  # the same counts as a localization batch


# --- edit blocks ----------------------------------------------------------------------------------------


@dataclass
class EditBlock:
    path: str
    search: str
    replace: str


# "### path/to/file.py"; a path has a dot or a slash, so a "### Fix" heading is not taken for one
_FILE_LINE = re.compile(r"^\s*#{2,4}\s*(?:file:\s*)?`?([^\s`]*[./][^\s`]*)`?\s*$")
_SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\s*$")
_NUMBERED = re.compile(r"^\s*\d+ \| ?")


def parse_edit_blocks(text: str) -> tuple[list[EditBlock], list[str]]:
    """Edit blocks of a reply and a message per malformed one. Tolerant: the ``### path`` line may sit
    inside or outside the code fence, fences may be missing, and one path serves the blocks after it."""
    blocks: list[EditBlock] = []
    malformed: list[str] = []
    lines = text.splitlines()
    path: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _FILE_LINE.match(line)
        if match:
            path = match.group(1).removeprefix("./")
            index += 1
            continue
        if not _SEARCH.match(line):
            index += 1
            continue
        start = index
        search: list[str] = []
        replace: list[str] = []
        index += 1
        while index < len(lines) and not _DIVIDER.match(lines[index]) and not _SEARCH.match(lines[index]):
            search.append(lines[index])
            index += 1
        if index >= len(lines) or not _DIVIDER.match(lines[index]):
            malformed.append(f"block at reply line {start + 1}: no ======= line after <<<<<<< SEARCH")
            continue
        index += 1
        while index < len(lines) and not _REPLACE.match(lines[index]) and not _SEARCH.match(lines[index]):
            replace.append(lines[index])
            index += 1
        if index >= len(lines) or not _REPLACE.match(lines[index]):
            malformed.append(f"block at reply line {start + 1}: no >>>>>>> REPLACE line")
            continue
        index += 1
        if path is None:
            malformed.append(f"block at reply line {start + 1}: no '### path/to/file.py' line before it")
            continue
        blocks.append(EditBlock(path, _join(_unnumber(search)), _join(_unnumber(replace))))
    return blocks, malformed


def _unnumber(lines: list[str]) -> list[str]:
    # Models often copy the prompt's "  12 | code" prefixes; strip them only when every line has one,
    # so a real line that happens to start with digits and a bar survives.
    content = [line for line in lines if line.strip()]
    if content and all(_NUMBERED.match(line) for line in content):
        return [_NUMBERED.sub("", line, count=1) for line in lines]
    return lines


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def apply_edit(content: str, block: EditBlock) -> tuple[str | None, str]:
    """``(new content, how)``; ``None`` with a reason when the SEARCH text is not in the file."""
    if not block.search.strip():
        return None, "empty SEARCH block"
    if block.search in content:
        return content.replace(block.search, block.replace, 1), "exact"
    if block.search.rstrip("\n") and block.search.rstrip("\n") in content and not content.endswith("\n"):
        return content.replace(block.search.rstrip("\n"), block.replace.rstrip("\n"), 1), "exact"
    fuzzy = _apply_whitespace_tolerant(content, block)
    if fuzzy is not None:
        return fuzzy, "whitespace-tolerant"
    return None, "SEARCH text not found in the file"


def _apply_whitespace_tolerant(content: str, block: EditBlock) -> str | None:
    # Line by line, ignoring each line's surrounding whitespace and blank lines at the block's ends; the
    # replacement is re-indented by the difference between the model's and the file's indentation.
    file_lines = content.splitlines(keepends=True)
    search = block.search.splitlines()
    while search and not search[0].strip():
        search.pop(0)
    while search and not search[-1].strip():
        search.pop()
    if not search:
        return None
    wanted = [line.strip() for line in search]
    stripped = [line.strip() for line in file_lines]
    for start in range(len(file_lines) - len(wanted) + 1):
        if stripped[start : start + len(wanted)] != wanted:
            continue
        file_indent = _indent(file_lines[start])
        model_indent = _indent(search[0])
        replace = []
        for line in block.replace.splitlines():
            if not line.strip():
                replace.append("\n")
            elif line.startswith(model_indent):
                replace.append(file_indent + line[len(model_indent) :] + "\n")
            else:
                replace.append(line + "\n")
        newline_end = file_lines[start + len(wanted) - 1].endswith("\n")
        if replace and not newline_end:
            replace[-1] = replace[-1].rstrip("\n")
        return "".join(file_lines[:start] + replace + file_lines[start + len(wanted) :])
    return None


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


# --- applying edits and diffing -------------------------------------------------------------------------


@dataclass
class Attempt:
    sample: int
    number: int
    blocks: int = 0
    malformed: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # "path (exact|whitespace-tolerant)"
    failed: list[str] = field(default_factory=list)  # "path: why"
    patch: str = ""
    error: str | None = None
    reply: str = ""


def apply_edits(snapshot: Path, blocks: Sequence[EditBlock], attempt: Attempt) -> str:
    """Apply ``blocks`` to a writable copy of the files they touch and return ``git diff``.

    Only the touched files are copied (the diff of a whole-snapshot copy is the same, and copying Django
    per attempt is not free); the copy is a one-commit git repository so the diff has real blob ids and
    is exactly what ``git apply`` takes."""
    contents: dict[str, str | None] = {}  # path -> current text (None: the file does not exist)
    originals: dict[str, bytes | None] = {}
    for block in blocks:
        if not _safe_path(block.path):
            attempt.failed.append(f"{block.path}: not a path inside the repository")
            continue
        if block.path not in contents:
            source = snapshot / block.path
            raw = source.read_bytes() if source.is_file() else None
            originals[block.path] = raw
            contents[block.path] = None if raw is None else raw.decode(*ENCODING)
        current = contents[block.path]
        if current is None:
            if block.search.strip():
                attempt.failed.append(f"{block.path}: no such file")
                continue
            contents[block.path] = block.replace  # an empty SEARCH on a new file creates it
            attempt.applied.append(f"{block.path} (new file)")
            continue
        crlf = "\r\n" in current
        text = current.replace("\r\n", "\n") if crlf else current
        updated, how = apply_edit(text, block)
        if updated is None:
            attempt.failed.append(f"{block.path}: {how}")
            continue
        contents[block.path] = updated.replace("\n", "\r\n") if crlf else updated
        attempt.applied.append(f"{block.path} ({how})")
    changed = {path: text for path, text in contents.items() if text is not None}
    if not attempt.applied:
        return ""
    return _git_diff(originals, changed)


def _safe_path(path: str) -> bool:
    parts = Path(path).parts
    return bool(parts) and not Path(path).is_absolute() and ".." not in parts and parts[0] != ".git"


def _git_diff(originals: Mapping[str, bytes | None], changed: Mapping[str, str]) -> str:
    with tempfile.TemporaryDirectory(prefix="reposearcher-patch-") as directory:
        root = Path(directory)
        for path, raw in originals.items():
            if raw is not None:
                target = root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(raw)
        config = [
            "-c", "user.name=reposearcher", "-c", "user.email=reposearcher@localhost",
            "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null",
        ]  # fmt: skip
        git(None, "init", "-q", cwd=root)
        git(None, *config, "add", "-A", "-f", cwd=root)
        git(None, *config, "commit", "-q", "--no-verify", "--allow-empty", "-m", "base", cwd=root)
        for path, text in changed.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode(*ENCODING))
        git(None, *config, "add", "-A", "-f", cwd=root)
        # plain settings whatever the user's git config says: the harness applies it with `git apply`
        diff = git(
            None, *config, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-renames",
            "--src-prefix=a/", "--dst-prefix=b/", cwd=root,
        )  # fmt: skip
        return diff.stdout.decode(*ENCODING)


# --- majority vote --------------------------------------------------------------------------------------


def normalize_patch(patch: str) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    """What a patch changes, without line numbers, blob ids, context or whitespace-only changes: two
    samples that make the same edit in slightly different ways vote together."""
    try:
        parsed = parse_diff(patch, recount=True)
    except DiffError:  # not a diff at all: it votes as its own text, whitespace aside
        return (("", (), ("".join(patch.split()),)),)
    files: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    for patched in parsed:
        old_path, new_path = diff_paths(patched)
        lines = [line for hunk in patched for line in hunk if line.is_removed or line.is_added]
        squeezed = [(line.is_removed, "".join(line.value.split())) for line in lines]
        minus = Counter(text for removed, text in squeezed if removed and text)
        plus = Counter(text for removed, text in squeezed if not removed and text)
        common = minus & plus  # a line removed and added again changed only its whitespace
        kept_minus, kept_plus = tuple((minus - common).elements()), tuple((plus - common).elements())
        if kept_minus or kept_plus:
            files.append((old_path if patched.is_removed_file else new_path, kept_minus, kept_plus))
    return tuple(sorted(files))


def majority_patch(patches: Sequence[str]) -> int | None:
    """Index of the chosen patch: the most frequent non-empty normalized patch, the first on a tie."""
    keys = [normalize_patch(patch) if patch.strip() else () for patch in patches]
    counts = Counter(key for key in keys if key)
    if not counts:
        return None
    best = max(counts.values())
    for number, key in enumerate(keys):
        if key and counts[key] == best:
            return number
    return None


# --- the prompt -----------------------------------------------------------------------------------------


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
            path, _, qualname = location.partition("::")
            indexed = index.files.get(path)
            if not qualname or indexed is None:
                continue
            spans = [(e.start, e.end) for e in indexed.parse.entities if e.qualname == qualname]
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
            if (snapshot / path).is_file() and _safe_path(path):
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


# --- one instance ---------------------------------------------------------------------------------------


PolicyFactory = Callable[[float], Policy]


@dataclass
class _Run:
    patcher: str
    options: PatchOptions
    workspace: Workspace | None
    localizations: Mapping[str, Prediction]
    policy_factory: PolicyFactory | None
    logs: Path
    index_workers: int | None


def _policy(run: _Run, temperature: float) -> Policy:
    if run.policy_factory is not None:
        return run.policy_factory(temperature)
    if not run.options.model:
        raise ValueError("the repair patcher needs a model (--model)")
    return LiteLLMPolicy(
        run.options.model,
        api_base=run.options.api_base,
        api_key=run.options.api_key,
        temperature=temperature,
        max_output_tokens=run.options.max_output_tokens,
        retries=run.options.request_retries,
    )


def _model_name(run: _Run) -> str:
    if run.options.model_name:
        return run.options.model_name
    return "gold" if run.patcher == "gold" else (run.options.model or "repair")


def repair_instance(run: _Run, instance: Instance) -> dict[str, Any]:
    options = run.options
    if run.workspace is None:
        raise ValueError("the repair patcher needs a workspace")
    prediction = run.localizations.get(instance.instance_id)
    samples = max(1, options.samples)
    temperature = options.temperature if samples == 1 or options.temperature > 0 else 0.8
    usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    attempts: list[Attempt] = []
    patches: list[str] = []
    with run.workspace.hold(instance.repo, instance.base_commit) as snapshot:
        cache = ParseCache(options.index_cache_dir) if options.index_cache_dir else None
        index = build_index(snapshot, cache=cache, workers=run.index_workers)
        code, shown = localized_code(index, snapshot, prediction, options)
        if not code:
            raise ValueError("no localized code to show (no prediction, or none of its files exist)")
        prompt = PROMPT.format(issue=instance.problem_statement.strip(), code=code)
        policy = _policy(run, temperature)
        for sample in range(samples):
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
            patch = ""
            for number in range(1 + max(0, options.retries_on_fail)):
                attempt = Attempt(sample=sample, number=number)
                attempts.append(attempt)
                try:
                    reply = policy.complete(messages, None)
                except PolicyError as error:
                    attempt.error = str(error)
                    if error.context_window:
                        break  # the same prompt cannot fit next time either
                    continue
                usage["calls"] += 1
                usage["prompt_tokens"] += reply.prompt_tokens
                usage["completion_tokens"] += reply.completion_tokens
                attempt.reply = reply.content
                blocks, attempt.malformed = parse_edit_blocks(reply.content)
                attempt.blocks = len(blocks)
                if blocks:
                    attempt.patch = apply_edits(snapshot, blocks, attempt)
                if attempt.patch.strip():
                    patch = attempt.patch
                    break
                problems = attempt.malformed + [f"{item}" for item in attempt.failed]
                if not blocks and not attempt.malformed:
                    problems.append("no *SEARCH/REPLACE* edit blocks found")
                elif attempt.applied and not attempt.failed:
                    problems.append("the edits change nothing")
                feedback = RETRY_PROMPT.format(errors="\n".join(f"- {problem}" for problem in problems))
                messages = [
                    *messages,
                    {"role": "assistant", "content": reply.content},
                    {"role": "user", "content": feedback},
                ]
            patches.append(patch)
    chosen = majority_patch(patches)
    final = [a for a in attempts if chosen is not None and a.patch == patches[chosen]]
    winner = final[0] if final else (attempts[-1] if attempts else None)
    _write_log(run.logs, instance.instance_id, prompt, shown, attempts, chosen)
    row: dict[str, Any] = {
        "model_patch": patches[chosen] if chosen is not None else "",
        "attempts": len(attempts),
        "samples": samples,
        "chosen_sample": chosen,
        "shown": shown,
        "edits_applied": len(winner.applied) if winner else 0,
        "edits_failed": len(winner.failed) + len(winner.malformed) if winner else 0,
        "usage": usage,
    }
    if chosen is None:
        last_errors = [a.error for a in attempts if a.error]
        model_failed = last_errors and not usage["calls"]
        row["outcome"] = f"model error: {last_errors[-1]}" if model_failed else "no edit applied"
    else:
        row["outcome"] = "patched"
    return row


def _write_log(
    logs: Path, instance_id: str, prompt: str, shown: list[str], attempts: list[Attempt], chosen: int | None
) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    safe = "".join(char if char.isalnum() or char in "._-" else "_" for char in instance_id)
    record = {"instance_id": instance_id, "prompt": prompt, "shown": shown, "chosen_sample": chosen}
    record["attempts"] = [asdict(attempt) for attempt in attempts]
    (logs / f"{safe}.patch.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def patch_instance(run: _Run, instance: Instance) -> dict[str, Any]:
    """One prediction row; never raises (a failure is a row with an ``error``)."""
    started = time.perf_counter()
    row: dict[str, Any] = {"instance_id": instance.instance_id, "model_name_or_path": _model_name(run)}
    try:
        if run.patcher == "gold":
            row |= {"model_patch": instance.patch or ""}
        else:
            row |= repair_instance(run, instance)
    except Exception as error:  # recorded, and the batch goes on
        row |= {"model_patch": "", "error": f"{type(error).__name__}: {error}"}
        row["traceback"] = traceback.format_exc(limit=5)
    if run.patcher != "gold":
        row["patcher"] = run.patcher
        row["seconds"] = round(time.perf_counter() - started, 2)
    return row


# --- the batch ------------------------------------------------------------------------------------------


def run_patches(
    instances: Sequence[Instance],
    localizations: Mapping[str, Prediction],
    out: str | Path,
    patcher: str = "repair",
    *,
    workspace: Workspace | None = None,
    options: PatchOptions | None = None,
    policy_factory: PolicyFactory | None = None,
    workers: int = 1,
    retry_errors: bool = False,
    on_result: Callable[[dict[str, Any], PatchSummary], None] | None = None,
) -> PatchSummary:
    """Patch every instance not yet in ``out`` (JSONL), appending one SWE-bench row per instance: the
    batch runner of ``reposearcher run`` (evaluation/batch.py), in threads, as the work waits on the model.

    ``policy_factory`` (temperature -> policy) replaces the litellm policy built from ``options``."""
    if patcher not in PATCHERS:
        raise ValueError(f"unknown patcher {patcher!r} (known: {', '.join(PATCHERS)})")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    run = _Run(
        patcher=patcher,
        options=options or PatchOptions(),
        workspace=workspace,
        localizations=localizations,
        policy_factory=policy_factory,
        logs=trajectory_dir(Path(out)),
        # a process pool per index build, from several threads at once, would oversubscribe the machine
        index_workers=1 if workers > 1 else None,
    )
    return run_batch(
        instances,
        out,
        work=functools.partial(patch_instance, run),
        empty=_no_patch,
        workers=workers,
        retry_errors=retry_errors,
        on_result=on_result,
    )


def _no_patch(row: dict[str, Any]) -> bool:
    return not row["model_patch"].strip()
