"""`reposearcher localize` and `reposearcher run`: the main job and resumable batches, end to end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reposearcher_plugin.cli.main import main
from reposearcher_plugin.evaluation.batch import finished_ids, run_batch, trajectory_dir
from reposearcher_plugin.evaluation.instances import Instance
from reposearcher_plugin.evaluation.readers import read_predictions
from tests.conftest import commit_all, write_tree
from tests.openai_stub import ScriptedReply, StubServer

SHOP_V1 = {
    "shop/cart.py": """
        from shop.pricing import total


        class Cart:
            def __init__(self):
                self.items = []

            def checkout(self):
                return total(self.items)
        """,
    "shop/pricing.py": """
        def total(items):
            return sum(price * quantity for price, quantity in items)
        """,
}
SHOP_V2 = {
    "shop/shipping.py": """
        def shipping_cost(weight):
            return 5 + weight
        """,
}
ISSUES = {
    "shop-1": "Cart.checkout returns a wrong total: total() ignores quantity.",
    "shop-2": "shipping_cost is wrong for heavy parcels",
    "shop-3": "total() should round prices",
    "shop-4": "Cart.__init__ should accept items",
}


@pytest.fixture
def dataset(tmp_path: Path) -> dict[str, Path]:
    """A repository with two commits under repos/acme+shop, and a dataset of four issues."""
    repo = write_tree(tmp_path / "repos" / "acme+shop", SHOP_V1)
    first = commit_all(repo, "v1")
    write_tree(repo, SHOP_V2)
    second = commit_all(repo, "v2")
    commits = {"shop-1": first, "shop-2": second, "shop-3": first, "shop-4": second}
    rows = [
        {"instance_id": key, "repo": "acme/shop", "base_commit": commits[key], "problem_statement": text}
        for key, text in ISSUES.items()
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"data": data, "repos": tmp_path / "repos", "root": tmp_path, "repo": repo}


def run_args(paths: dict[str, Path], out: Path, *extra: str) -> list[str]:
    root = paths["root"]
    return [
        "run",
        "--dataset",
        str(paths["data"]),
        "--repos-dir",
        str(paths["repos"]),
        "--out",
        str(out),
        "--offline",
        "--cache-dir",
        str(root / "snapshots"),
        "--index-cache-dir",
        str(root / "index-cache"),
        *extra,
    ]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_with_the_default_then_resume(dataset, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    assert main(run_args(dataset, out, "--limit", "3", "--workers", "2")) == 0
    first = rows(out)
    assert sorted(row["instance_id"] for row in first) == ["shop-1", "shop-2", "shop-3"]
    by_id = {row["instance_id"]: row for row in first}
    assert by_id["shop-1"]["locations"][0] in {"shop/cart.py::Cart.checkout", "shop/pricing.py::total"}
    assert by_id["shop-2"]["locations"][0] == "shop/shipping.py::shipping_cost"  # only at the second commit
    trajectory = out.parent / by_id["shop-1"]["trajectory"]
    assert json.loads(trajectory.read_text())["format"] == "reposearcher-trajectory/1"
    assert "3 localized" in capsys.readouterr().err
    # a killed writer leaves a cut-off line: resuming drops it, keeps the rest, runs only what is missing
    with out.open("a") as handle:
        handle.write('{"instance_id": "shop-4", "found_fi')
    assert main(run_args(dataset, out)) == 0
    second = rows(out)
    assert [row["instance_id"] for row in second[:3]] == [row["instance_id"] for row in first]
    assert sorted(row["instance_id"] for row in second) == ["shop-1", "shop-2", "shop-3", "shop-4"]
    assert "1 localized" in capsys.readouterr().err
    predictions, diagnostics = read_predictions(out, known_ids=ISSUES)
    assert len(predictions) == 4 and not diagnostics.malformed_lines and not diagnostics.missing_ids


def test_failing_instance_is_recorded_and_retried_on_request(dataset, tmp_path, capsys):
    data = dataset["data"]
    lines = data.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["base_commit"] = "0" * 40
    data.write_text("\n".join([lines[0], json.dumps(broken)]) + "\n")
    out = tmp_path / "preds.jsonl"
    assert main(run_args(dataset, out)) == 0  # one failure is not fatal
    by_id = {row["instance_id"]: row for row in rows(out)}
    assert "not found" in by_id["shop-2"]["error"] and by_id["shop-2"]["locations"] == []
    assert "1 errors" in capsys.readouterr().err
    assert finished_ids(out) == {"shop-1", "shop-2"}
    assert finished_ids(out, retry_errors=True) == {"shop-1"}  # and the error row is gone from the file
    assert [row["instance_id"] for row in rows(out)] == ["shop-1"]


def test_resume_refuses_a_corrupt_middle_line(dataset, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    out.write_text(
        '{"instance_id": "shop-1", "locations": []}\nnot json\n{"instance_id": "shop-2", "locations": []}\n'
    )
    assert main(run_args(dataset, out)) == 2
    assert "line 2 is not JSON" in capsys.readouterr().err


def _slow_on(marker: str, released: threading.Event):
    """Answer every request at once except those whose issue holds ``marker``: those hang until
    ``released`` is set, however long the others take on a loaded machine."""

    def reply(body: dict) -> ScriptedReply:
        if marker in json.dumps(body["messages"]):
            released.wait(600)
        return ScriptedReply(content="```\nshop/pricing.py\nfunction: total\n```")

    return reply


def test_killed_run_resumes_where_it_stopped(dataset, tmp_path):
    out = tmp_path / "preds.jsonl"
    command = [sys.executable, "-m", "reposearcher_plugin.cli.main"]
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    released = threading.Event()
    with StubServer(_slow_on("heavy parcels", released)) as server:
        llm = ["--model", "openai/stub-model", "--api-base", server.base_url, "--retries", "0"]
        process = subprocess.Popen(
            [*command, *run_args(dataset, out, *llm, "--workers", "2")],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 400  # a busy 2-core machine (a parallel suite) has taken over 120 s
        while time.monotonic() < deadline:
            if out.exists() and len(rows(out)) >= 3:
                break
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: the parent and its workers
        process.wait()
        released.set()
    killed = rows(out)
    assert sorted(row["instance_id"] for row in killed) == ["shop-1", "shop-3", "shop-4"]
    with StubServer(_slow_on("no such text", released)) as server:
        llm = ["--model", "openai/stub-model", "--api-base", server.base_url, "--retries", "0"]
        done = subprocess.run(
            [*command, *run_args(dataset, out, *llm)], env=environment, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert len(server.requests) == 1  # only the instance that was in flight ran again
    final = rows(out)
    assert sorted(row["instance_id"] for row in final) == sorted(ISSUES)
    assert all(row["locations"] == ["shop/pricing.py::total"] for row in final)


def test_localize_default_prints_json(dataset, tmp_path, capsys):
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUES["shop-1"])
    assert main(["localize", "--repo", str(dataset["repo"]), "--issue", str(issue), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["instance_id"] == "issue" and row["model"] == "retrieval"
    assert {"shop/cart.py::Cart.checkout", "shop/pricing.py::total"} <= set(row["locations"][:3])
    assert row["trajectory"]["tool_format"] == "none"


def test_localize_with_an_llm_in_hermes_form(dataset, tmp_path, capsys):
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUES["shop-1"])
    script = [
        ScriptedReply(content="Looking.", tool_calls=[("search_function", {"function_name": "total"})]),
        ScriptedReply(content="```\nshop/pricing.py\nfunction: total\n```"),
    ]
    with StubServer(script, mode="hermes") as server:
        code = main(
            [
                "localize",
                "--repo",
                str(dataset["repo"]),
                "--issue",
                str(issue),
                "--model",
                "hosted_vllm/stub-model",
                "--api-base",
                server.base_url,
                "--tool-format",
                "hermes",
                "--trajectory",
                str(tmp_path / "t.json"),
            ]
        )
        assert "tools" not in server.requests[0]
    assert code == 0
    printed = capsys.readouterr().out
    assert "shop/pricing.py::total" in printed and "1 tool calls" in printed
    trajectory = json.loads((tmp_path / "t.json").read_text())
    assert "def total(items)" in trajectory["steps"][0]["calls"][0]["observation"]


def test_localize_native_tool_calls_through_the_stub(dataset, tmp_path, capsys):
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUES["shop-1"])
    script = [
        ScriptedReply(
            tool_calls=[
                ("search_class_method", {"class_name": "Cart", "method_name": "checkout"}),
                ("search_function", '{"function_name": '),
            ]
        ),
        ScriptedReply(tool_calls=[("submit", {"locations": ["shop/cart.py::Cart.checkout"]})]),
    ]
    with StubServer(script, mode="native") as server:
        code = main(
            [
                "localize",
                "--repo",
                str(dataset["repo"]),
                "--issue",
                str(issue),
                "--json",
                "--model",
                "openai/stub-model",
                "--api-base",
                server.base_url,
            ]
        )
        assert server.requests[0]["tools"]
    assert code == 0
    row = json.loads(capsys.readouterr().out)
    assert row["locations"] == ["shop/cart.py::Cart.checkout"]
    calls = row["trajectory"]["steps"][0]["calls"]
    assert "return total(self.items)" in calls[0]["observation"]
    assert calls[1]["observation"].startswith("Error: the arguments of search_function are not valid JSON")


def test_localize_bad_input(tmp_path, capsys):
    issue = tmp_path / "issue.md"
    issue.write_text("   ")
    assert main(["localize", "--repo", str(tmp_path), "--issue", str(issue)]) == 2
    assert "issue text is empty" in capsys.readouterr().err
    assert main(["localize", "--repo", str(tmp_path / "nope"), "--issue", str(tmp_path / "missing.md")]) == 2
    assert "error" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren
                state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
            except OSError:
                continue
            if int(ppid) == pid and state != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a killed orphan may wait for a reaper that a container does not run


# `reposearcher run` with a localizer that marks its start, then takes its time (no LLM stack to import)
_SLOW_RUN = """
import sys, time
from pathlib import Path
from reposearcher_plugin.agent.result import LocalizationResult, Trajectory
from reposearcher_plugin.evaluation import batch

class SlowLocalizer:
    def localize(self, index, issue, instance_id, repo, history=None):
        (Path(sys.argv[1]) / instance_id).touch()
        time.sleep(float(sys.argv[2]))
        trajectory = Trajectory(instance_id, "slow", "default", "none", issue)
        return LocalizationResult(instance_id, "slow", locations=["shop/pricing.py::total"], trajectory=trajectory)

batch.build_localizer = lambda options: SlowLocalizer()  # the workers are forked: they inherit it
if sys.argv[3] == "watcher":  # the portable fallback alone, as where prctl does not exist
    batch._arm_death_signal = lambda: None
from reposearcher_plugin.cli.main import main
sys.exit(main(sys.argv[4:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")
@pytest.mark.parametrize("guard", ["prctl", "watcher"])
def test_workers_die_with_a_killed_parent(dataset, tmp_path, guard):
    # kill -9 of the batch parent alone (not its process group): its workers must not run on and write
    # trajectories for instances that will never get a row
    out = tmp_path / "preds.jsonl"
    started = tmp_path / "started"
    started.mkdir()
    delay_s = 2.0
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SLOW_RUN,
            str(started),
            str(delay_s),
            guard,
            *run_args(dataset, out, "--workers", "2"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(started.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        finish_at = time.monotonic() + delay_s  # when the workers would write their trajectories
        workers = _children(process.pid)
        assert len(workers) == 2 and len(list(started.iterdir())) == 2
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 3
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived their parent"
        time.sleep(max(0.0, finish_at - time.monotonic()) + 0.5)
        assert list(trajectory_dir(out).iterdir()) == []
        assert rows(out) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group started here


def test_other_work_runs_through_the_same_runner(tmp_path):
    """``work`` rows (the repair patcher's) are resumed, counted and written like localizations, and a
    row holding a lone surrogate (a patch of a file that is not UTF-8) is written with JSON escapes."""
    instances = [Instance(f"shop-{number}", "acme/shop", "0" * 40, "") for number in (1, 2, 3)]
    out = tmp_path / "rows.jsonl"
    out.write_text('{"instance_id": "shop-1", "text": ""}\n')

    def work(instance: Instance) -> dict:
        return {
            "instance_id": instance.instance_id,
            "text": "" if instance.instance_id == "shop-3" else "caf\udce9",
        }

    summary = run_batch(instances, out, work=work, empty=lambda row: not row["text"], workers=2)
    assert (summary.skipped, summary.done, summary.empty, summary.errors) == (1, 2, 1, 0)
    assert {row["instance_id"]: row["text"] for row in rows(out)} == {
        "shop-1": "",
        "shop-2": "caf\udce9",
        "shop-3": "",
    }
    assert not trajectory_dir(out).exists()  # the work writes its own files, if any
