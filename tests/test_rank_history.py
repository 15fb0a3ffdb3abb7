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
from reposearcher_plugin.workspace.change_history import (
    CACHE_FORMAT,
    HistoryCache,
    checkout_history,
    read_change_history,
)
from reposearcher_plugin.workspace.history import _definitions_in, edited_definitions
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
    assert json.loads(cache.path(commits[3]).read_text(encoding="utf-8"))["format"] == CACHE_FORMAT
    with pytest.raises(WorkspaceError, match="not a full commit id"):
        cache.history(root, "HEAD")


def test_workspace_history_is_cached_beside_the_snapshots(repo, tmp_path) -> None:
    root, commits = repo
    workspace = Workspace(root.parent, tmp_path / "snapshots", online=False)
    first = workspace.history("acme/shop", commits[1][:10])  # an abbreviated id resolves
    assert first.changes == read_change_history(root, commits[1]).changes
    shutil.rmtree(root)
    assert workspace.history("acme/shop", commits[1]).changes == first.changes  # no git needed now


def test_a_linked_work_tree_has_the_history_of_its_own_head(repo, tmp_path) -> None:
    root, commits = repo
    linked = tmp_path / "linked"
    git(root, "worktree", "add", "-q", "--detach", str(linked), commits[2])
    history = checkout_history(linked, HistoryCache(tmp_path / "h"))
    assert history is not None and history.changes == read_change_history(root, commits[2]).changes


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


# --- the definitions past changes edited -----------------------------------------------------------------


def test_definition_scores_share_each_changes_score_among_its_definitions() -> None:
    changes = [change("Fix the cart total rounding", "shop/cart.py"), change("Cart tax", "shop/cart.py")]
    changes = [
        PastChange(c.tokens, c.files, sha) for c, sha in zip(changes, ("a" * 40, "b" * 40), strict=True)
    ]
    edited = {
        "a" * 40: frozenset({("shop/cart.py", "total")}),
        "b" * 40: frozenset({("shop/cart.py", "tax"), ("shop/cart.py", "total")}),
    }
    asked: list[list[str]] = []

    def edits(commits):
        asked.append(list(commits))
        return {commit: edited[commit] for commit in commits}

    history = ChangeHistory(changes, edits=edits)
    scores = history.definition_scores(query_tokens("cart total rounding"))
    assert scores[("shop/cart.py", "total")] == 1.0
    assert 0 < scores[("shop/cart.py", "tax")] < 0.5
    assert asked == [["a" * 40, "b" * 40]]  # the best-matching change first, one question for all
    assert ChangeHistory(changes).definition_scores(query_tokens("cart total")) == {}  # no edits: none
    assert history.definition_scores(query_tokens("unrelated words")) == {}


@pytest.fixture
def edited_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "repos" / "acme+store"
    root.mkdir(parents=True)
    git(root, "init", "-q")
    cart = "class Cart:\n    def total(self):\n        return 0\n\n    def tax(self):\n        return 0\n"
    fixed = cart.replace("return 0\n\n", "return 1\n\n", 1)
    commits = [
        commit(root, "Add the cart", {"store/cart.py": cart, "README.md": "hi\n"}),
        commit(root, "Fix rounding of the cart total", {"store/cart.py": fixed, "README.md": "-- x\n"}),
        commit(root, "Add discounts", {"store/cart.py": fixed + "\n\ndef discount():\n    return 2\n"}),
    ]
    return root, commits


def test_edited_definitions_come_from_hunk_headers_and_def_lines(edited_repo) -> None:
    root, commits = edited_repo
    found = dict(edited_definitions(root, commits))
    assert found[commits[1]] == {("store/cart.py", "total")}  # the hunk sits in total(); README is no code
    # an added function names itself; the unchanged tail of the file names nothing
    assert ("store/cart.py", "discount") in found[commits[2]]
    assert ("store/cart.py", "total") not in found[commits[2]]
    assert list(edited_definitions(root, [])) == []
    with pytest.raises(WorkspaceError, match="not a full commit id"):
        list(edited_definitions(root, ["HEAD"]))


def test_a_clone_missing_a_blob_reads_the_edits_of_every_other_commit_cold_and_warm_alike(
    edited_repo, tmp_path
) -> None:
    root, commits = edited_repo
    # a mirror without the README "Fix rounding" wrote (no later commit needs it): git stops at that
    # commit, part way into its diff
    blob = git(root, "rev-parse", f"{commits[1]}:README.md").strip()
    (root / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    with pytest.raises(WorkspaceError, match="unable to read"):
        list(edited_definitions(root, commits))
    given = []
    with pytest.raises(WorkspaceError):
        for commit_id, _ in edited_definitions(root, commits):
            given.append(commit_id)
    assert given == [commits[0]]  # the cut diff of the failing commit is never given
    cache = HistoryCache(tmp_path / "h").edits(lambda: root)
    cold = cache(list(reversed(commits)))
    assert cold[commits[1]] == frozenset()  # unreadable: edits nothing known
    assert ("store/cart.py", "discount") in cold[commits[2]] and ("store/cart.py", "Cart") in cold[commits[0]]
    shutil.rmtree(root)  # warm: every answer, the unreadable one included, without git
    assert HistoryCache(tmp_path / "h").edits(lambda: root)(list(reversed(commits))) == cold


def test_a_clone_gone_keeps_what_was_read_and_caches_nothing_more(edited_repo, tmp_path) -> None:
    root, commits = edited_repo
    cache = HistoryCache(tmp_path / "h").edits(lambda: root)
    assert set(cache(commits[:1])) == {commits[0]}
    shutil.rmtree(root)
    assert set(cache(commits)) == {commits[0]}  # not "unreadable": the others are asked again later
    assert not list((tmp_path / "h" / "edits").glob(f"*/{commits[1]}.json"))


def test_definitions_in_a_diff_count_hunk_lines_so_removed_dashes_are_no_header() -> None:
    patch = (
        "diff --git a/p.py b/p.py\n--- a/p.py\n+++ b/p.py\n@@ -3,2 +3,0 @@ def first(x):\n"
        "--- not a header\n-def gone():\n@@ -9 +7 @@ class Box:\n-    def old(self):\n+    def new(self):\n"
        'diff --git "a/caf\\303\\251.py" "b/caf\\303\\251.py"\n--- "a/caf\\303\\251.py"\n+++ "b/caf\\303\\251.py"\n'
        "@@ -1 +1 @@ def cafe():\n-x\n+y\n"
    )
    assert _definitions_in(patch) == {
        ("p.py", "first"),
        ("p.py", "gone"),
        ("p.py", "Box"),
        ("p.py", "old"),
        ("p.py", "new"),
        ("café.py", "cafe"),
    }


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="@-+ \\\nabdefgiclsy:()_,0123456789./\"'\t", max_size=400))
def test_any_diff_text_gives_pairs_of_path_and_name(text: str) -> None:
    for path, name in _definitions_in(text):
        assert path.endswith((".py", ".pyi")) and name.isidentifier()


def test_the_workspace_reads_edits_once_and_ranks_what_similar_changes_edited(edited_repo, tmp_path) -> None:
    root, commits = edited_repo
    workspace = Workspace(root.parent, tmp_path / "snapshots", online=False)
    history = workspace.history("acme/store", commits[2])
    issue = "The cart total is rounded wrongly"
    scores = history.definition_scores(query_tokens(issue))
    assert scores[("store/cart.py", "total")] == 1.0
    edits_dir = tmp_path / "snapshots" / ".history" / "edits"
    assert (edits_dir / commits[1][:2] / f"{commits[1]}.json").is_file()
    # warm: the clone is gone, the cached history and edits serve the same scores
    shutil.rmtree(root)
    again = workspace.history("acme/store", commits[2])
    assert again.definition_scores(query_tokens(issue)) == scores
    # a damaged edits file without its clone: that change's definitions are left out, nothing fails
    (edits_dir / commits[1][:2] / f"{commits[1]}.json").write_text("[", encoding="utf-8")
    damaged = workspace.history("acme/store", commits[2]).definition_scores(query_tokens(issue))
    # only "Add the cart" is left to speak: the three definitions it added, alike
    assert damaged == {("store/cart.py", name): 1.0 for name in ("Cart", "total", "tax")}


def test_past_edits_reach_the_signals_and_the_evidence(edited_repo) -> None:
    root, commits = edited_repo
    index = build_index(root)
    history = read_change_history(root, commits[2], edits=HistoryCache(root / ".h").edits(lambda: root))
    issue = "The cart total is rounded wrongly"
    signals = RetrievalLocalizer(index, history=history).signals(issue)
    column = dict(zip(signals.ids, signals.features["past_edits"], strict=True))
    assert column["store/cart.py::Cart.total"] == 1.0
    # "Add the cart" matches less and shares itself among three definitions
    assert 0 < column["store/cart.py::Cart.tax"] < 0.5
    assert next(iter(signals.evidence["history"]["definitions"].items())) == (
        "store/cart.py::Cart.total",
        1.0,
    )
    plain = RetrievalLocalizer(index).signals(issue)
    assert not plain.features["past_edits"].any()
    lifted = rank_signals(signals, Weights(past_edits=5.0)).locations
    assert lifted[0] == "store/cart.py::Cart.total"
