"""The OpenHands UserPromptSubmit hook: run as OpenHands runs it (a subprocess fed the event JSON on
stdin), and, where the SDK is installed (Python >= 3.12), inside a real conversation with a scripted LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.broken_tree_sitter import (
    break_runtime,
    fresh_grammars,  # noqa: F401 (a fixture, used by name)
)
from tests.conftest import write_tree

ROOT = Path(__file__).resolve().parents[1]
HOOK = [sys.executable, "-m", "reposearcher_plugin.hosts.openhands_hook"]

REPO = {
    "billing/__init__.py": "",
    "billing/invoice.py": '''
        """Invoices."""
        from decimal import Decimal


        class Invoice:
            def __init__(self, lines):
                self.lines = lines

            def total(self):
                """Sum of the lines, rounded to cents."""
                return sum(Decimal(line.amount) for line in self.lines)

            def render(self):
                return f"Invoice: {self.total()}"
        ''',
    "billing/tax.py": """
        def vat(amount, rate=0.2):
            return amount * rate
        """,
    "tests/test_invoice.py": """
        def test_total():
            pass
        """,
}
PROMPT = "Invoice.total() ignores discounts: an invoice with a discount line still sums to the full price."


def _event(message: str, working_dir: Path | str, event_type: str = "UserPromptSubmit") -> str:
    # exactly what openhands.sdk.hooks.types.HookEvent.model_dump_json() writes
    return json.dumps(
        {
            "event_type": event_type,
            "tool_name": None,
            "tool_input": None,
            "tool_response": None,
            "message": message,
            "session_id": "5f1c7c2a-6b0e-4e8e-9d55-0c6f2f0d1a11",
            "working_dir": str(working_dir),
            "metadata": {},
        }
    )


def _run_hook(stdin: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*HOOK, *args], input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("oh") / "repo", REPO)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("oh-cache"))


def _context(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    # what OpenHands' HookExecutor does with stdout
    output = json.loads(done.stdout)
    assert set(output) == {"additionalContext"}
    return output["additionalContext"]


def test_prompt_gets_ranked_locations_as_additional_context(repo, cache):
    context = _context(_run_hook(_event(PROMPT, repo), "--repo", str(repo), "--cache-dir", cache))
    lines = context.splitlines()
    assert lines[0].startswith("RepoSearcher localization (retrieval, ")
    assert lines[1] == "1. billing/invoice.py::Invoice.total (method, lines 9-11)"
    assert lines[-1].startswith("Files: billing/invoice.py")
    assert len(lines) <= 12  # compact: the header, at most --top locations, the files


def test_repository_defaults_to_the_events_working_dir(repo, cache, tmp_path):
    # OpenHands runs the hook in the workspace; the event names it too
    done = _run_hook(_event(PROMPT, repo), "--cache-dir", cache, "--top", "2", cwd=tmp_path)
    context = _context(done)
    assert "1. billing/invoice.py::Invoice.total" in context
    assert "3. " not in context


@pytest.mark.parametrize(
    ("stdin", "args", "reason"),
    [
        (_event("go on", "."), (), "no context: prompt shorter than"),
        (_event(PROMPT, ".", event_type="PreToolUse"), (), "no context: event 'PreToolUse'"),
    ],
)
def test_nothing_to_add_is_silent(stdin: str, args: tuple[str, ...], reason: str):
    done = _run_hook(stdin, *args)
    assert done.returncode == 0
    assert done.stdout == ""
    assert reason in done.stderr


@pytest.mark.parametrize(
    ("stdin", "args", "reason"),
    [
        ("not json", (), "Expecting value"),
        ("", (), "no hook event on stdin"),
        (_event(PROMPT, "/nonexistent/repo"), (), "repository <repository>: not a directory"),
        (_event(PROMPT, "."), ("--no-such-flag",), "unrecognized arguments"),
        (_event(PROMPT, "."), ("--model", "retrieval", "--max-turns", "0"), "--max-turns"),
    ],
)
def test_a_failure_never_blocks_and_tells_the_user(stdin: str, args: tuple[str, ...], reason: str):
    # OpenHands: exit 2 would block the message. Exit 1 is a failed hook (logged, its event says FAILED)
    # and the message goes on; the JSON on stdout is still read, and its additionalContext is shown with
    # the message ("Prompt Extension based on Agent Context"): the user learns it went without a ranking
    done = _run_hook(stdin, *args)
    assert done.returncode == 1
    note = json.loads(done.stdout)["additionalContext"]
    assert note.startswith("RepoSearcher localization failed; this message went on without it. Reason: ")
    assert reason in note and "/nonexistent" not in note
    assert "reposearcher hook: error (prompt passed on without localization)" in done.stderr


@pytest.mark.usefixtures("fresh_grammars")
def test_a_tree_sitter_that_cannot_parse_is_a_failure_not_an_empty_answer(repo, cache, monkeypatch, capsys):
    import io

    from reposearcher_plugin.hosts.openhands_hook import main

    break_runtime(monkeypatch, "0.21 Language(ptr, name)")
    status = main(["--repo", str(repo), "--cache-dir", cache], stdin=io.StringIO(_event(PROMPT, repo)))
    captured = capsys.readouterr()
    assert status == 1
    note = json.loads(captured.out)["additionalContext"]
    assert "RepoSearcher localization failed" in note and "RepoSearcher needs tree-sitter" in note


def _fake_python(folder: Path) -> Path:
    """A ``python`` first on PATH that lacks the package, as in many OpenHands setups."""
    folder.mkdir()
    script = folder / "python"
    script.write_text('#!/bin/sh\necho "No module named reposearcher_plugin" >&2\nexit 1\n')
    script.chmod(0o755)
    return folder


def test_generated_hook_config_runs_whatever_python_comes_first(repo, cache, tmp_path, capsys):
    from reposearcher_plugin.cli.main import main

    target = repo / ".openhands" / "hooks.json"
    try:
        assert main(["openhands", "hooks", "--out", str(target), "--top", "3"]) == 0
        config = json.loads(target.read_text())
    finally:
        target.unlink(missing_ok=True)
        target.parent.rmdir()
    assert "UserPromptSubmit runs" in capsys.readouterr().err
    (matcher,) = config["user_prompt_submit"]
    (hook,) = matcher["hooks"]
    assert hook["timeout"] == 120 and matcher["matcher"] == "*"
    command = hook["command"]
    assert command.startswith(
        os.path.abspath(sys.executable) + " -m reposearcher_plugin.hosts.openhands_hook"
    )
    # run as OpenHands' HookExecutor runs it: shell=True, cwd the workspace, the event on stdin
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{_fake_python(tmp_path / 'bin')}:/usr/bin:/bin"}
    done = subprocess.run(
        f"{command} --cache-dir {cache}",
        shell=True,
        cwd=repo,
        env=env,
        input=_event(PROMPT, repo),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "1. billing/invoice.py::Invoice.total" in _context(done)
    # what the bare `python` of the old config did there: no context, and nothing said to the user
    bare = subprocess.run(
        "python -m reposearcher_plugin.hosts.openhands_hook --top 3",
        shell=True,
        cwd=repo,
        env=env,
        input=_event(PROMPT, repo),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 1 and bare.stdout == ""


def test_generated_hook_config_keeps_other_hooks(tmp_path, capsys):
    from reposearcher_plugin.cli.main import main

    target = tmp_path / "hooks.json"
    guard = {"matcher": "terminal", "hooks": [{"type": "command", "command": "./guard.sh"}]}
    stale = {"matcher": "*", "hooks": [{"type": "command", "command": f"python -m {HOOK[2]} --top 10"}]}
    other = {"matcher": "*", "hooks": [{"type": "command", "command": "./log-prompt.sh"}]}
    target.write_text(json.dumps({"pre_tool_use": [guard], "user_prompt_submit": [stale, other]}))
    assert main(["openhands", "hooks", "--out", str(target)]) == 0
    config = json.loads(target.read_text())
    assert config["pre_tool_use"] == [guard]
    assert config["user_prompt_submit"][0] == other
    (ours,) = config["user_prompt_submit"][1:]
    assert ours["hooks"][0]["command"].startswith(os.path.abspath(sys.executable))
    # a file in another layout is not merged into blindly
    target.write_text(json.dumps({"UserPromptSubmit": [stale]}))
    assert main(["openhands", "hooks", "--out", str(target)]) == 2
    assert "add the hook by hand" in capsys.readouterr().err
    assert main(["openhands", "hooks", "--python", str(tmp_path / "nope")]) == 2


def test_in_process_main_restores_stdout(repo, cache, capsys):
    import io

    from reposearcher_plugin.hosts.openhands_hook import main

    status = main(["--repo", str(repo), "--cache-dir", cache], stdin=io.StringIO(_event(PROMPT, repo)))
    captured = capsys.readouterr()
    assert status == 0
    assert json.loads(captured.out)["additionalContext"].splitlines()[1].startswith("1. billing/invoice.py")
    assert sys.stdout is not sys.stderr


def test_openhands_conversation_sends_the_context_to_the_model(repo, cache, tmp_path):
    """A real OpenHands conversation (scripted LLM): the hook's ranking arrives with the user's message."""
    pytest.importorskip("openhands.sdk")
    from openhands.sdk import Agent, Conversation, Message, TextContent
    from openhands.sdk.hooks import HookConfig, HookDefinition, HookMatcher
    from openhands.sdk.testing import TestLLM

    seen: list[Any] = []

    class RecordingLLM(TestLLM):
        def completion(self, messages, *args, **kwargs):  # type: ignore[override]
            seen.append(list(messages))
            return super().completion(messages, *args, **kwargs)

    llm = RecordingLLM.from_messages(
        [Message(role="assistant", content=[TextContent(text="Looking at it.")])]
    )
    command = " ".join([*HOOK, "--cache-dir", cache])  # the repository: the conversation's workspace
    hooks = HookConfig(user_prompt_submit=[HookMatcher(hooks=[HookDefinition(command=command, timeout=60)])])
    conversation = Conversation(
        agent=Agent(llm=llm, tools=[]),
        workspace=str(repo),
        hook_config=hooks,
        persistence_dir=str(tmp_path / "conversations"),
        visualizer=None,
    )
    try:
        conversation.send_message(PROMPT)
        conversation.run()
    finally:
        conversation.close()
    assert seen, "the model was never called"
    user_text = "\n".join(
        content.text
        for message in seen[0]
        if message.role == "user"
        for content in message.content
        if isinstance(content, TextContent)
    )
    assert PROMPT in user_text
    assert "1. billing/invoice.py::Invoice.total" in user_text
