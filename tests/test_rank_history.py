"""The history evidence: past changes with messages like the issue point at the files they edited
(rank/history.py), read from git at the base commit only (workspace/change_history.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reposearcher_plugin.cli.main import main
from reposearcher_plugin.index import build_index
from reposearcher_plugin.rank import RetrievalLocalizer
from reposearcher_plugin.rank.history import MAX_FILES_PER_CHANGE, ChangeHistory, PastChange
from reposearcher_plugin.rank.learned import feature_matrix, file_feature_matrix
from reposearcher_plugin.rank.scoring import Weights, rank_signals
from reposearcher_plugin.tools.tokens import query_tokens
from reposearcher_plugin.workspace import Workspace, WorkspaceError
from reposearcher_plugin.workspace.change_history import HistoryCache, checkout_history, read_change_history
from tests.conftest import git, write_tree


def change(message: str, *files: str) -> PastChange:
    return PastChange(tuple(query_tokens(message)), files)


HISTORY = ChangeHistory(
    [
        change("Fix timezone handling in the date parser", "pkg/dates.py"),
        change("Speed up the cache eviction", "pkg/cache.py"),
        change("Timezone offsets were lost when parsing dates", "pkg/dates.py", "pkg/util.py"),
        change("Reformat everything", *(f"pkg/m{i}.py" for i in range(10))),
    ]
)


def test_similar_past_changes_point_at_their_files_best_first() -> None:
    scores = HISTORY.file_scores(query_tokens("Parsing a date drops its timezone"))
    assert max(scores, key=scores.get) == "pkg/dates.py"
    assert scores["pkg/dates.py"] == 1.0
    assert 0 < scores["pkg/util.py"] < scores["pkg/dates.py"]
    assert "pkg/cache.py" not in scores  # shares no word with the issue


def test_a_change_to_many_files_points_at_each_less_than_a_one_file_fix() -> None:
    history = ChangeHistory(
        [change("fix widget", "a.py"), change("fix widget", *(f"b{i}.py" for i in range(4)))]
    )
    scores = history.file_scores(["widget"])
    assert scores["a.py"] == 1.0
    assert scores["b0.py"] == pytest.approx(0.25)


def test_only_known_files_are_scored_and_nothing_matches_nothing() -> None:
    scores = HISTORY.file_scores(query_tokens("timezone"), known={"pkg/util.py"})
    assert scores == {"pkg/util.py": 1.0}
    assert HISTORY.file_scores(["nowhere"]) == {}
    assert ChangeHistory([]).file_scores(["timezone"]) == {}


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.text(max_size=300), max_size=20),
    query=st.text(max_size=2000),
)
def test_any_messages_and_issue_give_scores_in_the_unit_interval(messages: list[str], query: str) -> None:
    history = ChangeHistory([change(message, f"f{i % 3}.py") for i, message in enumerate(messages)])
    scores = history.file_scores(query_tokens(query))
    assert all(0.0 < value <= 1.0 and math.isfinite(value) for value in scores.values())
    assert not scores or max(scores.values()) == 1.0


# --- read from git --------------------------------------------------------------------------------------


def commit(root: Path, message: str, files: dict[str, str]) -> str:
    write_tree(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "repos" / "acme+shop"
    root.mkdir(parents=True)
    git(root, "init", "-q")
    commits = [
        commit(
            root, "Add the cart", {"shop/cart.py": "def total():\n    return 0\n", "shop/tax.py": "R = 1\n"}
        ),
        commit(root, "Fix rounding of the cart total", {"shop/cart.py": "def total():\n    return 1\n"}),
        commit(root, "Sweep", {f"shop/s{i}.py": "X = 1\n" for i in range(MAX_FILES_PER_CHANGE + 1)}),
        commit(root, "Tax rates per country", {"shop/tax.py": "R = 2\n"}),
    ]
    return root, commits


def test_history_is_the_commits_ancestors_newest_first_without_sweeps(repo) -> None:
    root, commits = repo
    history = read_change_history(root, commits[2])
    assert [c.files for c in history.changes] == [("shop/cart.py",), ("shop/cart.py", "shop/tax.py")]
    assert history.changes[0].tokens == tuple(query_tokens("Fix rounding of the cart total"))
    # the later commit (the "fix" of a mined instance, or anything after the base) is never read
    assert all("country" not in c.tokens for c in history.changes)


def test_a_clone_missing_the_blobs_of_a_rename_still_has_its_history(tmp_path) -> None:
    root = tmp_path / "partial"
    root.mkdir()
    git(root, "init", "-q")
    body = "".join(f"def f{i}():\n    return {i}\n" for i in range(20))
    commit(root, "Add the parser", {"pkg/parse.py": body})
    (root / "pkg" / "parse.py").unlink()
    renamed = commit(
        root, "Move the parser and fix f3", {"pkg/reader.py": body.replace("return 3", "return 33")}
    )
    assert read_change_history(root, renamed).changes[0].files == ("pkg/reader.py",)
    # a mirror left without some blobs: git cannot compare the contents to detect the rename
    blob = git(root, "rev-parse", f"{renamed}~1:pkg/parse.py").strip()
    (root / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    history = read_change_history(root, renamed)
    assert [c.files for c in history.changes] == [("pkg/parse.py", "pkg/reader.py"), ("pkg/parse.py",)]
    assert history.changes[0].tokens == tuple(query_tokens("Move the parser and fix f3"))


def test_the_cache_serves_a_commit_without_git_and_a_damaged_file_is_read_again(repo, tmp_path) -> None:
    root, commits = repo
    cache = HistoryCache(tmp_path / "history")
    first = cache.history(root, commits[3])
    cache.path(commits[3]).write_text("{not json", encoding="utf-8")
    again = cache.history(root, commits[3])
    assert again.changes == first.changes
    assert json.loads(cache.path(commits[3]).read_text(encoding="utf-8"))["format"] == 1
    with pytest.raises(WorkspaceError, match="not a full commit id"):
        cache.history(root, "HEAD")


def test_workspace_history_is_cached_beside_the_snapshots(repo, tmp_path) -> None:
    root, commits = repo
    workspace = Workspace(root.parent, tmp_path / "snapshots", online=False)
    first = workspace.history("acme/shop", commits[1][:10])  # an abbreviated id resolves
    assert first.changes == read_change_history(root, commits[1]).changes
    shutil.rmtree(root)
    assert workspace.history("acme/shop", commits[1]).changes == first.changes  # no git needed now


def test_outside_git_there_is_no_history(tmp_path) -> None:
    write_tree(tmp_path / "plain", {"a.py": "X = 1\n"})
    assert checkout_history(tmp_path / "plain", HistoryCache(tmp_path / "h")) is None


# --- in the ranking -------------------------------------------------------------------------------------


def test_the_history_reaches_the_signals_the_rules_and_the_learned_features(repo) -> None:
    root, commits = repo
    index = build_index(root)
    history = read_change_history(root, commits[3])
    issue = "The cart total is rounded wrongly"
    signals = RetrievalLocalizer(index, history=history).signals(issue)
    assert signals.file_features["shop/cart.py"]["history"] == 1.0
    assert signals.evidence["history"]["changes"] == len(history)
    assert "history" not in RetrievalLocalizer(index).signals(issue).evidence
    # a weight on it lifts the file; at 0 the ranking is the one without history
    plain = rank_signals(signals, Weights(file_history=0.0))
    assert plain.files == rank_signals(RetrievalLocalizer(index).signals(issue)).files
    lifted = rank_signals(signals, Weights(file_history=5.0))
    assert lifted.files[0] == "shop/cart.py"
    matrix = feature_matrix(signals, ["file_history"])
    cart_rows = [i for i, path in enumerate(signals.files) if path == "shop/cart.py"]
    assert all(matrix[i, 0] == 1.0 for i in cart_rows)
    paths, files = file_feature_matrix(signals, ["history"])
    assert files[paths.index("shop/cart.py"), 0] == 1.0


def test_localize_reads_the_checkouts_history_unless_told_not_to(repo, tmp_path, capsys, monkeypatch) -> None:
    root, _ = repo
    monkeypatch.setenv("REPOSEARCHER_CACHE", str(tmp_path / "cache"))
    issue = tmp_path / "issue.md"
    issue.write_text("Cart total rounding is wrong\n", encoding="utf-8")
    trajectory = tmp_path / "t.json"
    assert (
        main(
            [
                "localize",
                "--repo",
                str(root),
                "--issue",
                str(issue),
                "--json",
                "--trajectory",
                str(trajectory),
            ]
        )
        == 0
    )
    evidence = json.loads(trajectory.read_text(encoding="utf-8"))["evidence"]
    assert evidence["history"]["files"]["shop/cart.py"] == 1.0
    argv = ["localize", "--repo", str(root), "--issue", str(issue), "--json", "--no-history"]
    assert main([*argv, "--trajectory", str(trajectory)]) == 0
    assert "history" not in json.loads(trajectory.read_text(encoding="utf-8"))["evidence"]
    capsys.readouterr()


def test_run_reads_each_instances_history_at_its_base_commit(repo, tmp_path, capsys) -> None:
    root, commits = repo
    dataset = tmp_path / "data.jsonl"
    row = {"instance_id": "acme__shop-1", "repo": "acme/shop", "base_commit": commits[2]}
    dataset.write_text(
        json.dumps({**row, "problem_statement": "Cart total rounding"}) + "\n", encoding="utf-8"
    )
    common = ["--dataset", str(dataset), "--repos-dir", str(root.parent), "--offline"]
    common += ["--cache-dir", str(tmp_path / "snapshots"), "--index-cache-dir", str(tmp_path / "parses")]
    for name, extra in (("with", []), ("without", ["--no-history"])):
        assert main(["run", *common, "--out", str(tmp_path / f"{name}.jsonl"), *extra]) == 0
    capsys.readouterr()

    def evidence(name: str) -> dict:
        result = json.loads((tmp_path / f"{name}.jsonl").read_text(encoding="utf-8"))
        return json.loads((tmp_path / result["trajectory"]).read_text(encoding="utf-8"))["evidence"]

    # the base commit's ancestors only: the later "Tax rates" commit is not part of it
    assert evidence("with")["history"]["changes"] == 2
    assert "history" not in evidence("without")
    assert (tmp_path / "snapshots" / ".history" / f"{commits[2]}.json").is_file()
