"""`reposearcher mine`: instances from synthetic git histories built here, one commit per rule."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reposearcher_plugin.cli import mine_cmd
from reposearcher_plugin.cli.main import main
from reposearcher_plugin.evaluation import mining_gold, mining_leakage, mining_rules
from reposearcher_plugin.evaluation.diffs import parse_diff
from reposearcher_plugin.evaluation.gold import derive_gold
from reposearcher_plugin.evaluation.instances import Instance, load_instances
from reposearcher_plugin.evaluation.mining_rules import problem_statement
from reposearcher_plugin.evaluation.mining_state import commits_log_path, summary_path
from reposearcher_plugin.workspace import WorkspaceError
from reposearcher_plugin.workspace.history import (
    BlobReader,
    check_commit_id,
    commit_patches,
    existing_commits,
    read_history,
)
from tests.conftest import git

CART = textwrap.dedent(
    """\
    class Cart:
        def __init__(self):
            self.items = []

        def total(self):
            amount = sum(price for _, price in self.items)
            discount = 0
            if amount > 100:
                discount = 5
            amount -= discount
            taxes = amount * 0.2
            return amount + taxes

        def add(self, name, price):
            self.items.append((name, price))
    """
)
UTIL = textwrap.dedent(
    """\
    import re


    def slugify(text):
        return re.sub("[^a-z]+", "-", text.lower())


    def other(value):
        return value


    def third(value):
        return value
    """
)


def commit(root: Path, message: str, files: dict[str, str | None] | None = None) -> str:
    """Write (or, for None, delete) ``files`` and commit everything with ``message``."""
    for relative, content in (files or {}).items():
        target = root / relative
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "--allow-empty-message", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def new_repo(repos: Path, name: str = "acme+shop") -> Path:
    root = repos / name
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    return root


def run_mine(repos: Path, out: Path, *extra: str) -> int:
    return main(["mine", "--repos-dir", str(repos), "--out", str(out), *extra])


def verdicts(out: Path) -> dict[str, str]:
    """commit -> verdict, from the commit log a run writes beside its output."""
    lines = commits_log_path(out).read_text(encoding="utf-8").splitlines()[1:]
    return {entry["commit"]: entry["verdict"] for entry in map(json.loads, lines)}


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPOSEARCHER_CACHE", str(tmp_path / "cache"))  # never the user's cache


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A repository with one commit for each filter; returns (repositories dir, {name: commit}). Built
    once: mining only reads it."""
    repos = tmp_path_factory.mktemp("history") / "repos"
    root = new_repo(repos)
    made = {}
    made["root"] = commit(
        root,
        "Initial import of the shop package",
        {
            "shop/cart.py": CART,
            "shop/util.py": UTIL,
            "shop/a.py": "A = 1\n",
            "shop/b.py": "B = 1\n",
            "shop/c.py": "C = 1\n",
            "tests/test_cart.py": "def test_total():\n    assert True\n",
            "docs/index.rst": "Shop\n====\n",
            "setup.cfg": "[metadata]\nname = shop\n",
        },
    )
    made["kept"] = commit(
        root,
        "Fix the discount of Cart.total\n\nLarge carts got no discount at all.\n\nSigned-off-by: A <a@b.c>",
        {"shop/cart.py": CART.replace("discount = 5", "discount = 10"), "tests/test_cart.py": "# more\n"},
    )
    made["test_only"] = commit(root, "Add a test for the empty cart", {"tests/test_cart.py": "# empty\n"})
    made["docs_only"] = commit(root, "Document the cart API in detail", {"docs/index.rst": "Shop!\n"})
    made["trivial_message"] = commit(
        root, "wip", {"shop/cart.py": CART.replace("discount = 5", "discount = 10").replace("0.2", "0.25")}
    )
    made["revert"] = commit(
        root,
        f'Revert "Fix the discount of Cart.total"\n\nThis reverts commit {made["kept"]}.',
        {"shop/cart.py": CART},
    )
    made["release"] = commit(root, "Release 1.2.0 of the shop", {"shop/a.py": "A = 2\n"})
    made["mass_rename"] = commit(
        root,
        "Move the small modules into a package",
        {"shop/a.py": None, "shop/b.py": None, "shop/c.py": None}
        | {"shop/small/a.py": "A = 2\n", "shop/small/b.py": "B = 1\n", "shop/small/c.py": "C = 1\n"},
    )
    made["no_source_file"] = commit(root, "Configure the package metadata", {"setup.cfg": "[metadata]\n"})
    three = {
        "shop/small/a.py": "def a():\n    return 1\n",
        "shop/small/b.py": "def b():\n    return 1\n",
        "shop/small/c.py": "def c():\n    return 1\n",
    }
    commit(root, "Give the small modules functions", three)  # kept: 3 files, each only module-level
    made["too_many_files"] = commit(
        root, "Make the small modules return two", {k: v.replace("1", "2") for k, v in three.items()}
    )
    made["no_definition_change"] = commit(
        root, "Import os at the top of the util module", {"shop/util.py": "import os\n" + UTIL}
    )
    made["too_many_definitions"] = commit(
        root,
        "Make every helper accept None values",
        {"shop/util.py": "import os\n" + UTIL.replace("    return ", "    return None or ")},
    )
    git(root, "checkout", "-q", "-b", "feature")
    made["branch"] = commit(
        root,
        "Let Cart.add take a quantity",
        {"shop/cart.py": CART.replace("(name, price))", "(name, price * 1))")},
    )
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    made["merge"] = git(root, "rev-parse", "HEAD").strip()
    return repos, made


def test_each_filter_drops_its_commit_and_a_fix_is_kept(history, tmp_path):
    repos, made = history
    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out, "--max-files", "2", "--max-definitions", "2") == 0
    found = verdicts(out)
    for name, sha in made.items():
        expected = {"branch": "kept"}.get(name, name)
        assert found[sha] == expected, name
    mined = {row["commit"]: row for row in rows(out)}
    assert set(mined) == {sha for sha, verdict in found.items() if verdict == "kept"}
    row = mined[made["kept"]]
    assert row["instance_id"] == f"acme__shop-{made['kept'][:12]}"
    assert row["repo"] == "acme/shop"
    assert row["base_commit"] == made["root"]
    assert row["problem_statement"] == "Fix the discount of Cart.total\n\nLarge carts got no discount at all."
    assert row["gold"] == ["shop/cart.py::Cart.total"]
    assert "shop/cart.py" in row["patch"] and "tests/" not in row["patch"]
    assert "tests/test_cart.py" in row["test_patch"] and "shop/" not in row["test_patch"]
    assert mined[made["branch"]]["gold"] == ["shop/cart.py::Cart.add"]

    summary = json.loads(summary_path(out).read_text())
    (repo,) = summary["repositories"]
    assert repo["repo"] == "acme/shop" and repo["commits"] == len(found)
    assert repo["kept"] == len(mined)
    assert sum(repo["filtered"].values()) + repo["kept"] == repo["commits"]
    assert summary["total"]["filtered"]["merge"] == 1
    assert set(summary["filters"]) == {name for name, _ in mining_rules.FILTERS}


def test_the_defaults_keep_commits_the_tight_limits_drop(history, tmp_path):
    repos, made = history
    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out) == 0
    found = verdicts(out)
    assert found[made["too_many_files"]] == "kept"  # three functions in three files
    assert found[made["too_many_definitions"]] == "kept"
    assert (mine_cmd.DEFAULT_MAX_DEFINITIONS, mine_cmd.DEFAULT_MAX_FILES) == (
        mining_rules.DEFAULT_MAX_DEFINITIONS,
        mining_rules.DEFAULT_MAX_FILES,
    )


def test_a_mined_row_loads_as_an_instance_and_eval_gold_derives_its_gold(history, tmp_path):
    repos, _ = history
    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out) == 0
    instances = load_instances(str(out))
    assert len(instances) == len(rows(out)) >= 3
    gold_file = tmp_path / "gold.json"
    command = ["eval", "gold", "--dataset", str(out), "--repos-dir", str(repos), "--out", str(gold_file)]
    assert main([*command, "--offline", "--cache-dir", str(tmp_path / "snapshots")]) == 0
    derived = json.loads(gold_file.read_text())
    assert derived == {instance.instance_id: instance.extra["gold"] for instance in instances}


def leaky_history(repos: Path) -> tuple[dict[str, str], Path]:
    """Commits that each break one leakage rule for an excluded instance acme__shop-7 (base = the root,
    gold patch = a change to Cart.total's discount line); returns the commits and the excluded data."""
    root = new_repo(repos)
    made = {
        "root": commit(
            root, "Initial import of the shop package", {"shop/cart.py": CART, "shop/util.py": UTIL}
        )
    }
    fixed = CART.replace("discount = 5", "discount = amount * 0.07")
    (root / "shop/cart.py").write_text(fixed)
    gold_patch = git(root, "diff", "--src-prefix=a/", "--dst-prefix=b/")
    git(root, "checkout", "-q", "--", ".")
    add = CART.replace("(name, price))", "(name, price * 1))")
    made["leak_base_parent"] = commit(root, "Let Cart.add take a quantity argument", {"shop/cart.py": add})
    made["leak_fix_content"] = commit(
        root,
        "Give large carts a bigger discount",
        {"shop/cart.py": add.replace("discount = 5", "discount = amount * 0.07")},
    )
    rounded = add.replace("discount = 5", "discount = round(amount * 0.07)")
    made["leak_line_overlap"] = commit(root, "Round the discount of large carts", {"shop/cart.py": rounded})
    logged = rounded.replace("return amount + taxes", "return round(amount + taxes, 2)")
    made["leak_entity_overlap"] = commit(root, "Round the cart total to cents", {"shop/cart.py": logged})
    made["leak_fix_reference"] = commit(
        root, "Speed up checkout for large carts (#7)", {"shop/cart.py": logged.replace("* 1))", "* 2))")}
    )
    made["slugify"] = commit(
        root, "Let slugify keep digits in names", {"shop/util.py": UTIL.replace("[^a-z]+", "[^a-z0-9]+")}
    )
    made["kept"] = commit(
        root,
        "Let other() turn None into zero",
        {
            "shop/util.py": UTIL.replace("[^a-z]+", "[^a-z0-9]+").replace(
                "return value\n\n\n", "return value or 0\n\n\n", 1
            )
        },
    )
    dataset = repos.parent / "excluded.jsonl"
    row = {
        "instance_id": "acme__shop-7",
        "repo": "acme/shop",
        "base_commit": made["root"],
        "problem_statement": "Large carts get too small a discount",
        "patch": gold_patch,
    }
    dataset.write_text(json.dumps(row) + "\n")
    return made, dataset


def test_leakage_rules_drop_what_touches_an_excluded_instance(tmp_path):
    repos = tmp_path / "repos"
    made, dataset = leaky_history(repos)
    gold_file = tmp_path / "gold_functions.json"  # Loc-Bench's single-colon form, an id without a row
    gold_file.write_text(json.dumps({"acme__shop-9": ["shop/util.py:slugify"]}))

    plain = tmp_path / "plain.jsonl"
    assert run_mine(repos, plain) == 0
    assert set(verdicts(plain).values()) == {"root", "kept"}  # every drop below is the leakage rules'

    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out, "--exclude", str(dataset), str(gold_file)) == 0
    found = verdicts(out)
    expected = {name: name for name in made} | {"slugify": "leak_entity_overlap"}
    assert {name: found[sha] for name, sha in made.items()} == expected
    (summary,) = json.loads(summary_path(out).read_text())["repositories"]
    assert summary["excluded_instances"] == 2 and summary["excluded_gold_errors"] == []


def test_short_or_import_lines_shared_with_an_excluded_patch_do_not_make_a_fix():
    diff = (
        "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n-else:\n+import os.path.join\n+raise KeyError(a_name)\n-x\n"
    )
    assert mining_leakage.changed_lines(parse_diff(diff)) == {"+raise KeyError(a_name)"}
    theirs = ["+raise ValueError(name)", "-return self.cache[key]"]
    exclusions = mining_leakage.RepoExclusions(
        line_counts={"x-1": 2}, by_line={line: ["x-1"] for line in theirs}
    )
    assert exclusions.content_of(frozenset(theirs[:1])) is None  # one telling line of two is not the fix
    assert exclusions.content_of(frozenset(theirs)) == "x-1"


def test_an_excluded_instance_of_a_mirror_under_another_name_still_counts(tmp_path):
    repos = tmp_path / "repos"
    made, dataset = leaky_history(repos)
    (repos / "acme+shop").rename(repos / "fork+shop")  # the same commits, mined as fork/shop
    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out, "--exclude", str(dataset)) == 0
    found = verdicts(out)
    assert found[made["leak_base_parent"]] == "leak_base_parent"
    assert found[made["leak_entity_overlap"]] == "leak_entity_overlap"


def test_a_rerun_resumes_after_a_partial_output_and_ends_as_one_run(history, tmp_path):
    repos, _ = history
    whole = tmp_path / "whole.jsonl"
    assert run_mine(repos, whole) == 0
    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out) == 0
    full_rows, full_log = out.read_text(), commits_log_path(out).read_text().splitlines(keepends=True)
    # killed while writing: the second row cut in half, the log holding the header and three verdicts
    first, second = full_rows.splitlines(keepends=True)[:2]
    out.write_text(first + second[: len(second) // 2])
    commits_log_path(out).write_text("".join(full_log[:4]) + full_log[4][:10])
    assert run_mine(repos, out) == 0
    assert sorted(rows(out), key=lambda row: row["commit"]) == sorted(
        rows(whole), key=lambda row: row["commit"]
    )
    assert verdicts(out) == verdicts(whole)
    summary = json.loads(summary_path(out).read_text())["repositories"][0]
    assert summary["resumed"] == 3 + 1  # three logged verdicts, and the first row (its verdict was lost)
    expected = json.loads(summary_path(whole).read_text())["repositories"][0]
    assert (summary["kept"], summary["filtered"]) == (expected["kept"], expected["filtered"])
    # a rerun with other options would mix two rule sets in one output
    assert run_mine(repos, out, "--max-definitions", "3") == 2
    assert run_mine(repos, out, "--max-definitions", "3", "--overwrite") == 0


def test_the_repository_is_named_by_its_directory_or_the_option(history, tmp_path, capsys):
    repos, _ = history
    out = tmp_path / "pairs.jsonl"
    assert main(["mine", "--repo", str(repos / "acme+shop"), "--out", str(out)]) == 0
    assert {row["repo"] for row in rows(out)} == {"acme/shop"}
    assert (
        main(
            [
                "mine",
                "--repo",
                str(repos / "acme+shop"),
                "--repo-name",
                "other/name",
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    assert {row["instance_id"].rsplit("-", 1)[0] for row in rows(out)} == {"other__name"}
    plain = tmp_path / "plain"
    plain.mkdir()
    git(plain, "init", "-q")
    assert main(["mine", "--repo", str(plain), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "pass --repo-name owner/name" in capsys.readouterr().err
    assert main(["mine", "--repos-dir", str(repos), "--repo-name", "no/such", "--out", str(out)]) == 2
    assert "holds no no/such" in capsys.readouterr().err
    assert main(["mine", "--repo", str(tmp_path), "--out", str(out)]) == 2
    assert "not a git repository" in capsys.readouterr().err


def test_limit_and_since_take_the_newest_commits(history, tmp_path):
    repos, made = history
    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out, "--limit", "3") == 0
    assert len(verdicts(out)) == 3 and made["merge"] in verdicts(out)
    assert run_mine(repos, out, "--until", "2000-01-01", "--overwrite") == 0
    assert verdicts(out) == {}
    assert run_mine(repos, out, "--since", "2000-01-01", "--overwrite") == 0
    assert set(made.values()) <= verdicts(out).keys()


def test_problem_statement_is_the_message_without_trailers():
    message = "Fix it\r\n\r\nBody line.\r\n\r\n\r\n\r\nSigned-off-by: A <a@b>\nCo-authored-by: B <b@c>\n"
    assert problem_statement(message) == "Fix it\n\nBody line."


@pytest.mark.parametrize(
    "message, verdict",
    [
        ("Fix the cache key of sessions", None),
        ("Fix typo", "trivial_message"),
        ("fixup! Fix the cache key of sessions", "trivial_message"),
        ("Cleanup\n\nSimplify how sessions merge their settings.", None),
        ("Bump version to 2.3.1", "release"),
        ("[4.2.x] Bumped version for 4.2.1 release.", "release"),
        ("v2.3.0", "trivial_message"),  # both; the first rule in FILTERS counts
        ("Version 2.3.0 of the shop", "release"),
        ("Prepare the 1.0 release notes", "release"),
        ("Bump urllib3 from 1.26 to 2.0 in the deps", "release"),
        ("Fixed #123 -- Made QuerySet use version 1.2 of the protocol", None),
        ('Revert "Add the cache"', "revert"),
    ],
)
def test_message_rules(message, verdict):
    assert mining_rules.message_verdict(problem_statement(message)) == verdict


def test_gold_read_from_blobs_is_the_gold_of_the_checked_out_tree(history, make_index):
    """The miner's BaseTree (git blobs, no checkout) and the index of a checkout give the same gold."""
    repos, made = history
    root = repos / "acme+shop"
    index = make_index({"shop/cart.py": CART, "shop/util.py": UTIL})
    patch = git(root, "diff", "--src-prefix=a/", "--dst-prefix=b/", made["root"], made["kept"], "--", "shop")
    instance = Instance("x", "acme/shop", made["root"], "x", patch=patch)
    with BlobReader(root / ".git") as blobs:
        tree = mining_gold.CommitTree(blobs, made["root"], mining_gold.ParseMemo(None))
        assert derive_gold(instance, tree) == derive_gold(instance, index) == ["shop/cart.py::Cart.total"]


def test_the_parse_cache_is_shared_with_the_index(history, tmp_path):
    repos, _ = history
    out = tmp_path / "pairs.jsonl"
    assert run_mine(repos, out, "--cache-dir", str(tmp_path / "parses")) == 0
    first = json.loads(summary_path(out).read_text())["repositories"][0]
    assert first["parsed"] > 0
    assert run_mine(repos, out, "--cache-dir", str(tmp_path / "parses"), "--overwrite") == 0
    again = json.loads(summary_path(out).read_text())["repositories"][0]
    assert again["parsed"] == 0 and again["parses_reused"] >= first["parsed"]


def test_git_never_reads_a_commit_id_from_data_as_an_option(tmp_path):
    root = new_repo(tmp_path)
    sha = commit(root, "one commit here", {"a.py": "A = 1\n"})
    for hostile in ("--upload-pack=touch marker", "HEAD", sha[:8]):
        with pytest.raises(WorkspaceError, match="not a full commit id"):
            check_commit_id(hostile)
        with pytest.raises(WorkspaceError):
            list(commit_patches(root / ".git", [hostile]))
    assert existing_commits(root / ".git", [sha, "--all", "f" * 40]) == {sha}
    with BlobReader(root / ".git") as blobs:
        assert blobs.read(sha, "a.py") == b"A = 1\n"
        assert blobs.read(sha, "missing.py") is None
        assert blobs.read(sha, "a\nb.py") is None
    assert not (tmp_path / "marker").exists()


def test_history_keeps_odd_messages_and_names_apart(tmp_path):
    """A message may hold lines that look like raw entries or commit marks; names may be non-ASCII."""
    root = new_repo(tmp_path)
    first = commit(root, "one", {"pkg/café.py": "def f():\n    return 1\n", "pkg/x y.py": "X = 1\n"})
    odd = "Odd message\n\n:100644 100644 abc def M\n\x01" + "0" * 40 + "\nend"
    second = commit(root, odd, {"pkg/café.py": "def f():\n    return 2\n"})
    moved = commit(root, "move it", {"pkg/x y.py": None, "pkg/z.py": "X = 1\n"})
    records = list(read_history(root / ".git"))
    assert [record.sha for record in records] == [first, second, moved]
    assert records[1].message.rstrip("\n") == odd
    assert [(c.status, c.old_path) for c in records[1].changes] == [("M", "pkg/café.py")]
    assert [(c.status, c.old_path, c.new_path) for c in records[2].changes] == [
        ("R", "pkg/x y.py", "pkg/z.py")
    ]
    patches = dict(commit_patches(root / ".git", [second, moved]))
    assert "+    return 2" in patches[second] and "rename from" in patches[moved]


@pytest.mark.parametrize("chunk", [1, 2, 3, 41, 42, 43, 1 << 20])
def test_patches_are_cut_at_commit_marks_whatever_the_read_size(monkeypatch, chunk):
    import io

    from reposearcher_plugin.workspace import history

    first, empty, last = "a" * 40, "b" * 40, "c" * 40
    stream = f"\x01{first}\n\ndiff --git a/x b/x\n-1\n+2\n\x01{empty}\n\x01{last}\n\ndiff y\n+\x01 z\n"
    monkeypatch.setattr(history, "_CHUNK", chunk)
    assert list(history._split_patches(io.BytesIO(stream.encode()))) == [
        (first, "diff --git a/x b/x\n-1\n+2\n"),
        (empty, ""),
        (last, "diff y\n+\x01 z\n"),
    ]
