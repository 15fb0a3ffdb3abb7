"""What a new user does in the first hour, checked: a fresh clone, a fresh venv per install path, the
README's commands verbatim, and the usual mistakes (issue 13's acceptance).

    python eval/first_hour.py --work /tmp/first-hour [--paths base,llm,...] [--out FILE.md]
    python eval/first_hour.py --work /tmp/first-hour --paths none --code-at 372952d  # old code

Per install path: `pip install -e ".[extra]"` in a new venv (torch from its CPU wheel first where the
extra needs it), then the imports the extra promises. In the base venv: the README's main job and every
mistake, each asserting the exit code, no traceback and the expected message. Writes a markdown table
(command, exit code, wall seconds, verdict). Network: PyPI only (pip and the demo's release source).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"
# extra -> (needs torch first, modules it promises)
PATHS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "base": (False, ("reposearcher_plugin.cli.main", "tree_sitter", "bm25s", "unidiff")),
    "llm": (False, ("litellm",)),
    "mcp": (False, ("mcp",)),
    "mini-swe-agent": (False, ("minisweagent", "litellm")),
    "hosts": (False, ("mcp", "minisweagent")),
    "eval": (False, ("datasets", "matplotlib", "swebench")),
    "docker": (False, ("docker",)),
    "rl": (True, ("verl", "pandas", "pyarrow", "litellm", "reposearcher_plugin.rl.datasets")),
    "models": (True, ("transformers", "gguf", "sentencepiece")),
    "all": (True, ("verl", "mcp", "minisweagent", "swebench", "pytest", "hypothesis")),
}


@dataclass
class Check:
    what: str
    command: list[str]
    expect_code: int
    expect_text: str = ""
    cwd: Path | None = None


@dataclass
class Outcome:
    what: str
    code: int
    seconds: float
    verdict: str


def run(command: list[str], cwd: Path | None = None, timeout: float = 1800) -> tuple[int, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, text = 124, "timed out"
    return code, text, time.perf_counter() - started


def judge(check: Check, code: int, text: str) -> str:
    problems = []
    if code != check.expect_code:
        problems.append(f"exit {code}, expected {check.expect_code}")
    if "Traceback (most recent call last)" in text:
        problems.append("traceback")
    if check.expect_text and check.expect_text not in text:
        problems.append(f"no {check.expect_text!r}")
    return "ok" if not problems else "FAIL: " + "; ".join(problems) + f" | {text.strip()[-300:]!r}"


def install(work: Path, clone: Path, name: str) -> tuple[Path, Outcome]:
    needs_torch, _ = PATHS[name]
    venv = work / f"venv-{name}"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    started = time.perf_counter()
    code = 0
    if needs_torch:
        code, text, _ = run([*pip, TORCH])
    if code == 0:
        target = "." if name == "base" else f".[{name}]"
        code, text, _ = run([*pip, "-e", target], cwd=clone)
    seconds = time.perf_counter() - started
    verdict = "ok" if code == 0 else f"FAIL: {text.strip()[-300:]!r}"
    return venv, Outcome(f"install `{'.' if name == 'base' else f'.[{name}]'}`", code, seconds, verdict)


def promised_imports(venv: Path, name: str) -> Outcome:
    modules = PATHS[name][1]
    code, text, seconds = run([str(venv / "bin" / "python"), "-c", "; ".join(f"import {m}" for m in modules)])
    verdict = "ok" if code == 0 else f"FAIL: {text.strip()[-300:]!r}"
    return Outcome(f"[{name}] imports {', '.join(modules)}", code, seconds, verdict)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mistakes(reposearcher: list[str], work: Path, shared: Path, base_install: bool) -> list[Check]:
    scratch = work / "inputs"
    shutil.rmtree(scratch, ignore_errors=True)  # a rerun must not find the last run's rows
    scratch.mkdir()
    (scratch / "empty").mkdir(exist_ok=True)
    repo = scratch / "repo"
    (repo / "shop").mkdir(parents=True, exist_ok=True)
    (repo / "shop" / "cart.py").write_text("class Cart:\n    def total(self):\n        return 0\n")
    issue = scratch / "issue.md"
    issue.write_text("Cart.total returns 0 for a full cart\n")
    wrong = scratch / "wrong.jsonl"
    wrong.write_text('{"id": "x", "answer": "a.py"}\n' * 3)
    lite = shared / "swe-bench-lite"
    dataset, gold = str(lite / "test.jsonl"), str(lite / "gold_functions.json")
    preds = str(REPO / "eval" / "results" / "lite_retrieval" / "retrieval.jsonl")
    local = ["localize", "--repo", str(repo), "--issue", str(issue)]
    eval_loc = [*reposearcher, "eval", "loc", "--dataset", dataset, "--gold", gold]
    refused = f"http://127.0.0.1:{closed_port()}/v1"
    checks = [
        Check("--version", [*reposearcher, "--version"], 0, "reposearcher "),
        Check("localize, offline default", [*reposearcher, *local], 0, "shop/cart.py::Cart.total"),
        Check(
            "--repo on an empty directory",
            [*reposearcher, *local[:1], "--repo", str(scratch / "empty"), "--issue", str(issue)],
            2,
            "no source file",
        ),
        Check(
            "--dataset typo",
            [*reposearcher, "run", "--dataset", "nope.jsonl", "--out", str(scratch / "o.jsonl")],
            2,
            "nope.jsonl: no such file",
        ),
        Check(
            "predictions of the wrong format",
            [*reposearcher, "eval", "loc", "--dataset", dataset, "--gold", gold, "--predictions", str(wrong)],
            2,
            "is a prediction",
        ),
        Check(
            "--plot x.txt",
            [
                *eval_loc,
                "--predictions",
                preds,
                "--plot",
                str(scratch / "x.txt"),
            ],
            2,
            "name it .png",
        ),
        Check(
            "--profile with the offline default",
            [*reposearcher, *local, "--profile", "tooltrain"],
            2,
            "only apply to an LLM localizer",
        ),
        Check(
            "run: repository missing from --repos-dir",
            [
                *reposearcher,
                "run",
                "--dataset",
                dataset,
                "--instances",
                "psf__requests-1963",
                "--repos-dir",
                str(scratch / "empty"),
                "--out",
                str(scratch / "run.jsonl"),
            ],
            1,
            "a clone or mirror of it there",
        ),
        Check(
            "--config by packaged name, from another folder",
            [*reposearcher, *local, "--config", "retrieval"],
            0,
            "shop/cart.py::Cart.total",
            cwd=scratch,
        ),
    ]
    if base_install:
        checks += [
            Check(
                "an LLM without the llm extra",
                [*reposearcher, *local, "--model", "openai/x", "--api-base", refused],
                2,
                "from the 'llm' extra",
            ),
            Check(
                "eval loc --plot without the eval extra",
                [
                    *reposearcher,
                    "eval",
                    "loc",
                    "--dataset",
                    dataset,
                    "--gold",
                    gold,
                    "--predictions",
                    preds,
                    "--plot",
                    str(scratch / "r.png"),
                ],
                2,
                "'eval' extra",
            ),
        ]
    else:
        checks += [
            Check(
                "an LLM endpoint that refuses connections",
                [*reposearcher, *local, "--model", "openai/x", "--api-base", refused],
                1,
                "nothing is listening",
            ),
            Check(
                "an unknown provider", [*reposearcher, *local, "--model", "nonsense"], 1, "names no provider"
            ),
        ]
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--paths", default=",".join(PATHS), help="install paths to try, or 'none'")
    parser.add_argument("--code-at", help="also run the mistakes on this commit, in this interpreter")
    parser.add_argument("--out", type=Path, help="markdown table to write")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    # a new user's cache is empty: a snapshot cached by earlier runs would answer `run` with no repository
    fresh_cache = args.work / "cache"
    shutil.rmtree(fresh_cache, ignore_errors=True)
    os.environ["REPOSEARCHER_CACHE"] = str(fresh_cache)
    shared = REPO.parent / "shared" / "data"
    clone = args.work / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    old_clone = args.work / "clone-old"  # the install paths always test the current code
    if args.code_at:
        shutil.rmtree(old_clone, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", str(REPO), str(old_clone)], check=True)
        subprocess.run(["git", "-C", str(old_clone), "checkout", "-q", args.code_at], check=True)
    outcomes: list[Outcome] = []
    names = [] if args.paths == "none" else args.paths.split(",")
    for name in names:
        venv, installed = install(args.work, clone, name)
        outcomes.append(installed)
        print(f"{installed.what}: {installed.verdict} ({installed.seconds:.0f} s)", flush=True)
        if installed.code:
            continue
        outcomes.append(promised_imports(venv, name))
        if name in ("base", "llm"):
            reposearcher = [str(venv / "bin" / "reposearcher")]
            if name == "base":
                code, text, seconds = run([*reposearcher, "demo"], cwd=args.work)
                ranked = "ranked #1" in " ".join(text.split())
                outcomes.append(
                    Outcome(
                        "README main job: `reposearcher demo`",
                        code,
                        seconds,
                        "ok" if code == 0 and ranked else f"FAIL: {text[-300:]!r}",
                    )
                )
            for check in mistakes(reposearcher, args.work, shared, base_install=name == "base"):
                code, text, seconds = run(check.command, cwd=check.cwd or args.work, timeout=120)
                outcomes.append(Outcome(f"[{name}] {check.what}", code, seconds, judge(check, code, text)))
                print(f"[{name}] {check.what}: {outcomes[-1].verdict} ({seconds:.1f} s)", flush=True)
    if args.code_at:  # the same mistakes on old code, in this (fully installed) interpreter
        reposearcher = [sys.executable, "-m", "reposearcher_plugin.cli.main"]
        for check in mistakes(reposearcher, args.work, shared, base_install=False):
            command = ["env", f"PYTHONPATH={old_clone}", *check.command]
            code, text, seconds = run(command, cwd=check.cwd or args.work, timeout=300)
            outcomes.append(
                Outcome(f"[{args.code_at}] {check.what}", code, seconds, judge(check, code, text))
            )
            print(f"[{args.code_at}] {check.what}: {outcomes[-1].verdict} ({seconds:.1f} s)", flush=True)
    lines = ["| check | exit | wall s | verdict |", "|---|---|---|---|"]
    lines += [f"| {o.what} | {o.code} | {o.seconds:.1f} | {o.verdict.replace('|', '/')} |" for o in outcomes]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(f"`{' '.join(sys.argv)}`\n\n{table}", encoding="utf-8")
    return 0 if all(o.verdict == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
