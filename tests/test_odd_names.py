"""File names that are not UTF-8 (issue 12, item 1): one representation from the index to every writer.

A Linux name is bytes; ``os.listdir`` gives the undecodable ones as lone surrogates, which no UTF-8 writer,
JSON-lines file or MCP transport accepts. The index writes them as repository paths (index/names.py:
``bad_\\xff.py``, a real backslash as ``\\\\``), and a tool argument in that form finds the file again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reposearcher_plugin.agent.parse import parse_answer
from reposearcher_plugin.agent.result import LocalizationResult, Trajectory
from reposearcher_plugin.cli.main import main
from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.index.locations import normalize_path
from reposearcher_plugin.index.names import (
    is_escaped_form,
    os_path,
    path_bytes,
    repo_path,
    repo_path_from_bytes,
    repo_path_from_git,
    utf8_text,
)
from reposearcher_plugin.tools import ToolBox, confine
from tests.conftest import commit_all, git, write_tree

ODD = r"pkg/bad_\xff.py"  # the repository path of b"pkg/bad_\xff.py"
LITERAL = r"pkg/bad_\\xff.py"  # ... and of b"pkg/bad_\\xff.py", a name that really holds a backslash
ODD_SOURCE = b'''class Odd:
    """Holds the frobnicator."""

    def frobnicate(self, level):
        return level * 2
'''
LITERAL_SOURCE = b"class Literal:\n    pass\n"
ISSUE = "Odd.frobnicate doubles the frobnicator level instead of tripling it"


def odd_repository(root: Path) -> Path:
    """A git repository with a non-UTF-8 file name, and a file whose name is that escape spelled out."""
    write_tree(
        root, {"pkg/__init__.py": "", "pkg/ok.py": "from pkg import helper\n\n\ndef helper():\n    pass\n"}
    )
    directory = os.fsencode(root / "pkg")
    with open(os.path.join(directory, b"bad_\xff.py"), "wb") as handle:
        handle.write(ODD_SOURCE)
    with open(os.path.join(directory, b"bad_\\xff.py"), "wb") as handle:
        handle.write(LITERAL_SOURCE)
    commit_all(root)
    return root


@pytest.fixture
def odd(tmp_path: Path) -> Path:
    return odd_repository(tmp_path / "odd")


@pytest.fixture
def box(odd: Path, cache: ParseCache) -> ToolBox:
    return ToolBox(build_index(odd, cache=cache, workers=1))


def _utf8(text: str) -> str:
    text.encode("utf-8")  # raises on a surrogate
    return text


# --- (a) the index ------------------------------------------------------------------------------------


def test_index_names_the_file_with_escaped_bytes(box):
    index = box.tools.index
    assert set(index.files) == {"pkg/__init__.py", "pkg/ok.py", ODD, LITERAL}
    ids = {f"{path}::{entity.qualname}" for path, entity in index.entities()}
    assert {f"{ODD}::Odd", f"{ODD}::Odd.frobnicate", f"{LITERAL}::Literal"} <= ids
    assert all(_utf8(path) for path in index.files)


def test_a_warm_load_names_it_the_same(odd, cache):
    cold = build_index(odd, cache=cache, workers=1)
    warm = build_index(odd, cache=cache, workers=1)
    assert list(warm.files) == list(cold.files) and warm.stats.unchanged == len(cold.files)


# --- (b) the tools --------------------------------------------------------------------------------------


def test_tools_show_the_escaped_name_and_find_the_file_by_it(box):
    structure = box.call("get_repo_structure", {"depth": 3})
    lines = _utf8(structure.text).splitlines()
    assert structure.ok and r"    bad_\xff.py" in lines and r"    bad_\\xff.py" in lines

    found = box.call("search_class", {"class_name": "Odd"})
    assert found.ok and _utf8(found.text).startswith(f"{ODD}::Odd (class, lines 1-5)")
    shown = box.call("show_code", {"file": ODD, "start_line": 1, "end_line": 5})
    assert shown.ok and _utf8(shown.text).startswith(f"{ODD} (lines 1-5 of 5)")
    assert "def frobnicate(self, level):" in shown.text
    # the name that spells the escape out is another file, and stays one
    literal = box.call("show_code", {"file": LITERAL, "start_line": 1, "end_line": 2})
    assert literal.ok and "class Literal:" in literal.text and "Odd" not in literal.text

    in_file = box.call("search_class_method", {"class_name": "Odd", "method_name": "frobnicate", "file": ODD})
    assert in_file.ok and in_file.text.startswith(f"{ODD}::Odd.frobnicate")
    assert box.call("get_imports_of_file", {"file": ODD}).text == f"{ODD} imports nothing."
    references = box.call("find_references", {"name": "frobnicate"})
    assert f"{ODD}:4 [Odd.frobnicate]: def frobnicate" in _utf8(references.text)
    assert (
        box.call("search_code", {"query": "frobnicator"}).text.splitlines()[1].startswith(f" 1. {ODD}::Odd")
    )


def test_other_spellings_of_the_path_find_it_and_answer_in_the_one_form(box):
    for spelling in ("pkg/bad_\udcff.py", r"pkg/bad_\xFF.py", r"./pkg/bad_\xff.py"):  # os.listdir's, upper
        shown = box.call("show_code", {"file": spelling, "start_line": 1, "end_line": 1})
        assert shown.ok and _utf8(shown.text).startswith(f"{ODD} (lines 1-1 of 5)"), spelling
    windows = box.call("show_code", {"file": r"pkg\ok.py", "start_line": 1, "end_line": 1})
    assert windows.ok and windows.text.startswith("pkg/ok.py (lines 1-1")
    refused = box.call("show_code", {"file": "pkg/\ud800.py", "start_line": 1, "end_line": 1})
    assert not refused.ok and "lone surrogate" in _utf8(refused.text)
    echoed = box.call("search_class", {"class_name": "Odd\udcff"})  # a name that is echoed back
    assert "Odd" in _utf8(echoed.text)


def test_an_escape_that_exists_wins_over_a_windows_reading(tmp_path):
    root = tmp_path / "arch"
    (root / "x86").mkdir(parents=True)
    (root / "x86" / "boot.py").write_text("")
    assert confine(root, r"x86\boot.py") == "x86/boot.py"  # \b is no escape: a Windows path
    assert confine(root, r"\x86") == r"\x86"  # nothing is there either way: the escape is the reading
    (root / "x86" / "ff").mkdir()
    assert confine(root, r"x86\ff") == "x86/ff"  # not an escape at all
    with open(os.path.join(os.fsencode(root), b"\x86"), "wb"):
        pass
    assert confine(root, r"\x86") == r"\x86" and Path(os.fsdecode(os.fsencode(root) + b"/\x86")).exists()


@pytest.mark.parametrize(
    "raw",
    [b"bad_\xff.py", b"caf\xc3\xa9.py", b"new\nline.py", b"tab\t.py", b"a\\x86", b"a\\", b"\xed\xb3\xbf.py"],
)
def test_confine_maps_every_name_back_to_its_file(tmp_path, raw):
    with open(os.path.join(os.fsencode(tmp_path), raw), "wb"):
        pass
    (name,) = os.listdir(tmp_path)
    shown = repo_path(name)
    assert confine(tmp_path, shown) == shown
    assert os.path.isfile(os.path.join(tmp_path, os_path(shown)))


# --- (c) the MCP server ---------------------------------------------------------------------------------


def _mcp_answers(repo: Path, cache: Path, calls: list[tuple[str, dict]]) -> list[dict]:
    """Like tests/test_mcp.py's session, but a server that died fails the test instead of hanging it."""
    anyio = pytest.importorskip("anyio")
    pytest.importorskip("mcp")
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from tests.test_mcp import _result

    arguments = ["-m", "reposearcher_plugin.hosts.mcp_server", "--repo", str(repo), "--cache-dir", str(cache)]
    params = StdioServerParameters(
        command=sys.executable,
        args=arguments,
        cwd=str(Path(__file__).resolve().parents[1]),
        env=dict(os.environ),
    )

    async def run() -> list[dict]:
        with anyio.fail_after(60):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                return [_result(await session.call_tool(name, args)) for name, args in calls]

    return anyio.run(run)


def test_mcp_server_survives_the_structure_and_answers_the_next_call(odd, tmp_path):
    calls = [
        ("get_repo_structure", {"depth": 3}),
        ("search_class", {"class_name": "Odd"}),
        ("show_code", {"file": ODD, "start_line": 1, "end_line": 2}),
        ("localize", {"issue": ISSUE}),
    ]
    answers = _mcp_answers(odd, tmp_path / "cache", calls)
    box = ToolBox(build_index(odd, cache=ParseCache(tmp_path / "cache"), workers=1))
    for (name, args), answer in zip(calls[:3], answers, strict=False):
        assert answer == {"texts": [box.call(name, args).text], "is_error": False}, name
    row = json.loads(answers[3]["texts"][1])
    assert row["locations"][0] == f"{ODD}::Odd.frobnicate"


# --- (d) localize --out, (e) a batch run ----------------------------------------------------------------


def test_localize_out_writes_the_row(odd, tmp_path, capsys):
    issue = tmp_path / "issue.md"
    issue.write_text(ISSUE)
    out = tmp_path / "row.json"
    trajectory = tmp_path / "t.json"
    args = [
        "localize",
        "--repo",
        str(odd),
        "--issue",
        str(issue),
        "--out",
        str(out),
        "--trajectory",
        str(trajectory),
    ]
    code = main(args)
    assert code == 0
    row = json.loads(out.read_text(encoding="utf-8"))
    assert row["locations"][0] == f"{ODD}::Odd.frobnicate"
    assert row["found_related_locs"][ODD] == ["function: Odd.frobnicate\nfunction: Odd"]
    assert json.loads(trajectory.read_text(encoding="utf-8"))["format"] == "reposearcher-trajectory/1"
    assert ODD in capsys.readouterr().out


def test_a_batch_with_a_non_utf8_repository_finishes_every_instance(tmp_path):
    repos = tmp_path / "repos"
    shop = write_tree(
        repos / "acme+shop", {"shop/cart.py": "class Cart:\n    def total(self):\n        pass\n"}
    )
    instances = [
        ("odd-1", "acme/odd", git(odd_repository(repos / "acme+odd"), "rev-parse", "HEAD").strip(), ISSUE),
        ("shop-1", "acme/shop", commit_all(shop), "Cart.total is wrong"),
    ]
    data = tmp_path / "data.jsonl"
    keys = ("instance_id", "repo", "base_commit", "problem_statement")
    data.write_text("".join(json.dumps(dict(zip(keys, row, strict=True))) + "\n" for row in instances))
    out = tmp_path / "preds.jsonl"
    args = ["run", "--dataset", str(data), "--repos-dir", str(repos), "--out", str(out), "--offline"]
    args += ["--cache-dir", str(tmp_path / "snapshots"), "--index-cache-dir", str(tmp_path / "ix")]
    assert main(args) == 0
    rows = {row["instance_id"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(rows) == {"odd-1", "shop-1"} and not any(row.get("error") for row in rows.values())
    assert rows["odd-1"]["locations"][0] == f"{ODD}::Odd.frobnicate"
    assert rows["shop-1"]["locations"][0] == "shop/cart.py::Cart.total"
    trajectory = json.loads((out.parent / rows["odd-1"]["trajectory"]).read_text(encoding="utf-8"))
    assert trajectory["evidence"]


def test_an_answer_that_names_the_escaped_path_keeps_it():
    """What a model copies from an observation (an Agentless block, a submitted entity id) reads back as
    the index's id: the escape is not taken for a Windows separator."""
    answer = parse_answer(f"```\n{ODD}\nfunction: Odd.frobnicate\n{LITERAL}::Literal\n```")
    assert answer.files == [ODD, LITERAL]
    assert answer.locations == [f"{ODD}::Odd.frobnicate", f"{LITERAL}::Literal"]
    assert LocalizationResult("i", "m", locations=answer.locations).to_dict()["found_files"] == [ODD, LITERAL]


def test_a_snapshot_missing_the_odd_blob_records_its_repository_path(tmp_path):
    from reposearcher_plugin.workspace import Workspace

    work = odd_repository(tmp_path / "src")
    commit = git(work, "rev-parse", "HEAD").strip()
    mirror = tmp_path / "repos" / "acme+odd"
    shutil.copytree(work / ".git", mirror)  # loose objects, so one can be taken away
    blob = (
        subprocess.run(
            ["git", "rev-parse", f"{commit}:".encode() + b"pkg/bad_\xff.py"],
            cwd=work,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    (mirror / "objects" / blob[:2] / blob[2:]).unlink()
    workspace = Workspace(tmp_path / "repos", cache_dir=tmp_path / "snapshots", online=False)
    tree = workspace.checkout("acme/odd", commit, allow_missing=True)
    assert workspace.missing(tree) == [ODD]


def test_gold_from_a_git_patch_names_the_files_as_the_index_does(odd, cache):
    """git quotes such names in diff headers (``"a/pkg/bad_\\377.py"``, core.quotePath): gold must
    read them as the same repository path, or a right prediction never matches."""
    from reposearcher_plugin.evaluation.gold import derive_gold
    from reposearcher_plugin.evaluation.instances import Instance

    (odd / "pkg" / "café.py").write_text("def brew():\n    return 1\n")
    commit = commit_all(odd, "café")
    source = os.path.join(os.fsencode(odd), b"pkg", b"bad_\xff.py")
    with open(source, "rb") as handle:
        original = handle.read()
    with open(source, "wb") as handle:
        handle.write(original.replace(b"level * 2", b"level * 3"))
    (odd / "pkg" / "café.py").write_text("def brew():\n    return 2\n")
    git(odd, "add", "-A")
    patch = git(odd, "diff", "--cached")
    assert '"a/pkg/bad_\\377.py"' in patch and '"b/pkg/caf\\303\\251.py"' in patch
    git(odd, "reset", "-q", "--hard")
    index = build_index(odd, cache=cache, workers=1)
    gold = derive_gold(Instance("odd-1", "acme/odd", commit, ISSUE, patch=patch), index)
    assert gold == [f"{ODD}::Odd.frobnicate", "pkg/café.py::brew"]
    assert repo_path_from_git('"pkg/caf\\303\\251 \\"x\\".py"') == 'pkg/café "x".py'
    assert repo_path_from_git('"a/new\\nline\\\\.py"') == r"a/new\x0aline\\.py"
    assert repo_path_from_git("plain/path.py") == "plain/path.py"


# --- writers: text a model wrote ---------------------------------------------------------------------


def test_rows_and_trajectories_of_model_text_with_lone_surrogates_are_written(tmp_path):
    trajectory = Trajectory("i-1", "m", "default", "native", issue="crash in \udcff", answer="\ud800")
    trajectory.write(tmp_path / "t.json")
    assert Trajectory.read(tmp_path / "t.json").answer == "\\ud800"
    result = LocalizationResult("i-1", "m", locations=["a.py::f\udcff"], trajectory=trajectory)
    line = json.dumps(result.to_dict(), ensure_ascii=False)
    assert json.loads(line.encode("utf-8"))["locations"] == ["a.py::f\\udcff"]


def test_mcp_outcomes_are_always_utf8():
    from reposearcher_plugin.hosts.mcp_service import ToolOutcome

    assert ToolOutcome(("Error: \udcff",)).texts == ("Error: \\udcff",)


def test_location_paths_keep_their_escapes():
    assert normalize_path(f"./{ODD}") == ODD
    assert normalize_path(LITERAL) == LITERAL
    assert normalize_path(r".\pkg\ok.py") == "pkg/ok.py"
    assert normalize_path(r"arch\x86\boot.py") == "arch/x86/boot.py"  # \b: every backslash a separator


# --- the representation ------------------------------------------------------------------------------

NAME_BYTES = st.binary(min_size=1, max_size=40).filter(lambda raw: b"/" not in raw and b"\0" not in raw)


@given(NAME_BYTES)
def test_every_byte_name_has_a_utf8_text_that_maps_back(raw):
    text = repo_path_from_bytes(raw)
    assert text.encode("utf-8").decode("utf-8") == text
    assert path_bytes(text) == raw
    assert is_escaped_form(text)
    assert repo_path(os.fsdecode(raw)) == text and os_path(text) == os.fsdecode(raw)
    assert utf8_text(text) == text


@given(st.lists(NAME_BYTES, min_size=1, max_size=4))
def test_paths_escape_name_by_name(names):
    raw = b"/".join(names)
    assert repo_path_from_bytes(raw) == "/".join(map(repo_path_from_bytes, names))
    assert path_bytes(repo_path_from_bytes(raw)) == raw
    assert is_escaped_form(repo_path_from_bytes(raw))


@given(st.text(max_size=30))
def test_utf8_text_always_encodes(text):
    assert utf8_text(text).encode("utf-8").decode("utf-8") == utf8_text(text)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_swe_bench_predictions_with_surrogates_in_the_patch_are_written(tmp_path, suffix):
    from reposearcher_plugin.hosts.mini_swe_agent_swebench import Predictions

    predictions = Predictions(tmp_path / f"preds{suffix}")
    patch = "--- a/bad_\udcff.py\n+++ b/bad_\udcff.py\n"  # what a diff of a non-UTF-8 file decodes to
    predictions.add({"instance_id": "i1", "model_patch": patch, "model_name_or_path": "m"})
    text = (tmp_path / f"preds{suffix}").read_text(encoding="utf-8")
    assert "bad_\\\\udcff.py" in text and predictions.finished() == {"i1"}
