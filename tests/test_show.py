"""`reposearcher show`: terminal and HTML rendering of trajectories, and finding them in predictions files."""

from __future__ import annotations

import argparse
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from reposearcher_plugin.agent.result import LocalizationResult, Step, ToolCallRecord, Trajectory
from reposearcher_plugin.cli.show import add_show_command, load_trajectories, show_trajectory, trajectory_html

ISSUE = "\n".join(
    [
        "QuerySet.union() drops ordering when <script>alert('x')</script> & friends [bold]appear[/bold]",
        *(f"issue line {number}" for number in range(2, 31)),
    ]
)
LONG_OBSERVATION = "\n".join(f"    line {number} of models/query.py" for number in range(1, 41))


def make_trajectory(instance_id: str = "django__django-11099", **overrides) -> Trajectory:
    search = ToolCallRecord(
        id="c1",
        name="search_class",
        arguments={"class_name": "QuerySet"},
        raw_arguments='{"class_name": "QuerySet"}',
        observation=LONG_OBSERVATION,
        ok=True,
        latency_s=0.012,
    )
    failed = ToolCallRecord(
        id="c2",
        name="view_source",
        arguments=None,
        raw_arguments='{"path": "a.py"',
        observation="Error: arguments are not valid JSON",
        ok=False,
    )
    repeated = ToolCallRecord(
        id="c3",
        name="search_class",
        arguments={"class_name": "QuerySet"},
        raw_arguments='{"class_name": "QuerySet"}',
        observation="(same as before) class QuerySet",
        ok=True,
        repeated=True,
    )
    steps = [
        Step(
            0,
            "search",
            "I will look for QuerySet first.",
            [search, failed],
            prompt_tokens=1200,
            completion_tokens=40,
            latency_s=1.5,
        ),
        Step(
            1,
            "search",
            "Checking again.",
            [repeated],
            prompt_tokens=1800,
            completion_tokens=60,
            latency_s=0.7,
            note="budget exhausted: max_turns",
        ),
    ]
    fields = {
        "instance_id": instance_id,
        "model": "hosted_vllm/Qwen2.5-7B",
        "profile": "default",
        "tool_format": "native",
        "issue": ISSUE,
        "repo": "django/django",
        "steps": steps,
        "answer": "django/db/models/query.py::QuerySet.union",
        "wall_s": 3.25,
    }
    return Trajectory(**(fields | overrides))


def rendered(trajectory: Trajectory, full: bool = False) -> str:
    console = Console(record=True, width=120)
    show_trajectory(trajectory, console, full=full)
    return console.export_text()


def unbalanced_tags(page: str) -> list[str]:
    """End tags that close something other than the innermost open element, and elements left open."""
    stack: list[str] = []
    problems: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag != "meta":
                stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if stack and stack[-1] == tag:
                stack.pop()
            else:
                problems.append(f"</{tag}> inside {stack}")

    Parser().feed(page)
    return problems + stack


def run_show(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="reposearcher")
    add_show_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["show", *argv])
    return args.handler(args)


def test_terminal_rendering_shows_header_steps_marks_and_answer() -> None:
    text = rendered(make_trajectory())
    for expected in [
        "django__django-11099",
        "hosted_vllm/Qwen2.5-7B",
        "native",
        "3.25 s",
        "3,100 (3,000 prompt + 100 completion)",
        "step 0 · search · 1.50 s, 1,200 + 40 tokens",
        "I will look for QuerySet first.",
        'search_class(class_name="QuerySet")',
        'view_source({"path": "a.py")',
        "[failed]",
        "[invalid JSON arguments]",
        "[repeated call]",
        "note: budget exhausted: max_turns",
        "final answer",
        "django/db/models/query.py::QuerySet.union",
    ]:
        assert expected in text, expected
    # untrusted text is printed literally, never read as rich markup
    assert "<script>alert('x')</script> & friends [bold]appear[/bold]" in text


def test_terminal_rendering_clips_issue_and_observations_unless_full() -> None:
    short = rendered(make_trajectory())
    assert "issue line 15" in short and "issue line 16" not in short
    assert "15 more lines (--full shows them)" in short
    assert "line 20 of models/query.py" in short and "line 21 of models/query.py" not in short
    assert "20 more lines" in short
    full = rendered(make_trajectory(), full=True)
    assert "issue line 30" in full and "line 40 of models/query.py" in full and "more lines" not in full


def test_terminal_rendering_of_errors_and_retrieval_runs() -> None:
    failed = make_trajectory(steps=[Step(0, "search", "", error="litellm.RateLimitError: slow down")])
    failed.error = "LLM error after 1 step"
    failed.answer = ""
    text = rendered(failed)
    assert "LLM error after 1 step" in text and "error: litellm.RateLimitError: slow down" in text

    evidence = {"query_terms": ["union", "ordering"], "files": [f"f{n}.py" for n in range(30)], "k": 5}
    retrieval = make_trajectory(model="bm25", tool_format="none", steps=[], answer="", evidence=evidence)
    text = rendered(retrieval)
    assert "none" in text and "evidence" in text
    assert "1. union" in text and "k: 5" in text and "10. f9.py" in text and "11. f10.py" not in text
    assert "… 20 more" in text and "30. f29.py" in rendered(retrieval, full=True)


def test_html_is_escaped_and_self_contained() -> None:
    page = trajectory_html(make_trajectory())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert unbalanced_tags(page) == []
    assert "<script" not in page  # the issue's script tag is text, and the page has none of its own
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; friends" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "<style>" in page
    # long observations and the long issue fold into <details>; short ones do not
    assert (
        "<summary>observation (40 lines)</summary>" in page and "<summary>issue (30 lines)</summary>" in page
    )
    assert "<details><summary>observation (1 lines)" not in page
    for expected in [
        "search_class(class_name=&quot;QuerySet&quot;)",
        "repeated call",
        "invalid JSON arguments",
    ]:
        assert expected in page
    assert 'class="call failed invalid"' in page and 'class="call repeated"' in page
    assert "note: budget exhausted: max_turns" in page and "django/db/models/query.py::QuerySet.union" in page


def test_load_a_trajectory_file(tmp_path: Path) -> None:
    path = make_trajectory().write(tmp_path / "traj.json")
    (loaded,) = load_trajectories(str(path))
    assert loaded == make_trajectory()
    assert load_trajectories(str(path), "django__django-11099") == [loaded]
    with pytest.raises(ValueError, match="is the trajectory of 'django__django-11099', not 'other'"):
        load_trajectories(str(path), "other")


def write_predictions(tmp_path: Path) -> Path:
    """Row 1 inline, row 2 a path relative to the predictions file, row 3 without a trajectory."""
    make_trajectory("b__b-2").write(tmp_path / "trajectories" / "b__b-2.json")
    results = [
        LocalizationResult("a__a-1", "m", locations=["a.py::f"], trajectory=make_trajectory("a__a-1")),
        LocalizationResult("b__b-2", "m", trajectory="trajectories/b__b-2.json"),
        LocalizationResult("c__c-3", "m", error="index failed"),
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(result.to_dict()) + "\n" for result in results), encoding="utf-8")
    return path


def test_load_from_predictions_inline_and_by_path(tmp_path: Path) -> None:
    path = write_predictions(tmp_path)
    assert [t.instance_id for t in load_trajectories(str(path))] == ["a__a-1", "b__b-2"]
    (inline,) = load_trajectories(str(path), "a__a-1")
    assert inline == make_trajectory("a__a-1")
    (by_path,) = load_trajectories(str(path), "b__b-2")
    assert by_path == make_trajectory("b__b-2")


@pytest.mark.parametrize(
    ("content", "instance", "message"),
    [
        (None, None, "no such file"),
        ('{"hello": "world"}', None, "neither a RepoSearcher trajectory nor a predictions file"),
        ('{"format": "other/1", "steps": []}', None, "not a RepoSearcher trajectory"),
        ('{"format": "reposearcher-trajectory/1", "bogus": 1}', None, "not a RepoSearcher trajectory"),
        ('{"instance_id": "x", "trajectory": null}\n{oops\n', None, r"preds\.jsonl:2: not JSON"),
    ],
)
def test_load_errors(tmp_path: Path, content: str | None, instance: str | None, message: str) -> None:
    path = tmp_path / "preds.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_trajectories(str(path), instance)


def test_load_errors_in_predictions(tmp_path: Path) -> None:
    path = write_predictions(tmp_path)
    with pytest.raises(ValueError, match=r"no instance 'zzz' \(it has a__a-1, b__b-2, c__c-3\)"):
        load_trajectories(str(path), "zzz")
    with pytest.raises(ValueError, match="instance 'c__c-3' has no trajectory"):
        load_trajectories(str(path), "c__c-3")
    (tmp_path / "trajectories" / "b__b-2.json").unlink()
    with pytest.raises(ValueError, match=r"instance 'b__b-2'.*b__b-2\.json not found"):
        load_trajectories(str(path), "b__b-2")
    only_errors = tmp_path / "errors.jsonl"
    only_errors.write_text(json.dumps({"instance_id": "c", "trajectory": None}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="none of its 1 rows has a trajectory"):
        load_trajectories(str(only_errors))


def test_command_prints_and_writes_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_predictions(tmp_path)
    assert run_show(str(path), "--instance", "a__a-1", "--full") == 0
    out = capsys.readouterr().out
    assert "a__a-1" in out and "issue line 30" in out and "b__b-2" not in out

    page = tmp_path / "out" / "one.html"
    assert run_show(str(path), "--instance", "b__b-2", "--html", str(page)) == 0
    assert "b__b-2" in page.read_text(encoding="utf-8")
    assert f"wrote {page}" in capsys.readouterr().err

    pages = tmp_path / "pages"
    assert run_show(str(path), "--html", str(pages)) == 0
    assert sorted(p.name for p in pages.iterdir()) == ["a__a-1.html", "b__b-2.html"]


def test_command_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_show(str(tmp_path / "missing.json")) == 2
    err = capsys.readouterr().err
    assert err.startswith("reposearcher: error: ") and err.count("\n") == 1 and "no such file" in err
    assert run_show(str(write_predictions(tmp_path)), "--instance", "nope") == 2
    assert "no instance 'nope'" in capsys.readouterr().err
