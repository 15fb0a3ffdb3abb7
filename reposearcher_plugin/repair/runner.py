"""The patchers, one instance and a whole batch: localizations in, SWE-bench prediction rows out.

- ``repair`` (Agentless-style): per instance, the code of the localized entities (top N functions, or the
  top files when no entity resolves) with line numbers and context goes into one prompt with the issue;
  the model answers with SEARCH/REPLACE edit blocks (``edits.py``); the blocks are applied to a writable
  copy of the touched files and the patch is what ``git diff`` says (``diff.py``), so it is exactly what
  the harness's ``git apply`` expects. A reply whose blocks do not parse or apply is retried with the
  errors fed back. With ``samples > 1`` the most frequent normalized patch wins (``voting.py``).
- ``gold``: the instance's own patch, to check the harness and the dataset before spending a model on it.

Rows are ``{instance_id, model_name_or_path, model_patch}`` plus bookkeeping fields (``patcher``,
``attempts``, ``edits_applied``, ``edits_failed``, ``usage``, ``error``). swebench 5.0.2 tolerates the
extra keys: ``harness/utils.py get_predictions_from_file`` only checks that ``instance_id`` is there and
``run_evaluation.py`` reads ``model_patch`` and ``model_name_or_path`` by key. Model replies and per-attempt
details go to ``OUT_STEM.trajectories/<id>.patch.json`` so the predictions file stays small.

Batches run through the runner of ``reposearcher run`` (``evaluation/batch.py: run_batch``), so they resume
the same way: ids already in the output are skipped, each row is appended and flushed as it finishes, a
failing instance is recorded with ``model_patch: ""`` and an ``error``.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.agent.policy import LiteLLMPolicy, Policy, PolicyError
from reposearcher_plugin.evaluation.batch import BatchSummary, no_patch, run_batch, trajectory_dir
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.evaluation.locations import Prediction
from reposearcher_plugin.files import safe_name, write_json
from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.repair.edits import apply_edits, parse_edit_blocks
from reposearcher_plugin.repair.options import PatchOptions
from reposearcher_plugin.repair.prompt import PROMPT, RETRY_PROMPT, SYSTEM_PROMPT, localized_code
from reposearcher_plugin.repair.voting import majority_patch
from reposearcher_plugin.workspace import Workspace

PATCHERS = ("repair", "gold")
PatchSummary = BatchSummary  # the same counts as a localization batch


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
                    edits = apply_edits(snapshot, blocks)
                    attempt.applied, attempt.failed, attempt.patch = edits.applied, edits.failed, edits.patch
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
    record = {"instance_id": instance_id, "prompt": prompt, "shown": shown, "chosen_sample": chosen}
    record["attempts"] = [asdict(attempt) for attempt in attempts]
    write_json(logs / f"{safe_name(instance_id)}.patch.json", record)


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
        empty=no_patch,
        workers=workers,
        retry_errors=retry_errors,
        on_result=on_result,
    )
