"""Reads are bounded: no tool or build reads a huge file, keeps every file's lines, or echoes a megabyte
argument back (issue 12, item 8); special files are never opened (issue 12, item 10)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from reposearcher_plugin.index import build, build_index
from reposearcher_plugin.tools import RepoTools, ToolBox
from tests.conftest import write_tree

MiB = 1 << 20


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "repo",
        {
            "pkg/__init__.py": "",
            "pkg/charge.py": "def charge(owner):\n    '''Charge the card.'''\n    return owner\n",
            "README.md": "# hi\n",
        },
    )


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)  # a hole: costs no disk and no time to make
    return path


def test_show_code_refuses_a_file_over_the_cap_without_reading_it(repo, cache):
    _sparse(repo / "huge.log", 64 * MiB)
    box = ToolBox(build_index(repo, cache=cache, workers=1))
    observation = box.call("show_code", {"file": "huge.log", "start_line": 1, "end_line": 10})
    assert not observation.ok
    assert observation.text.startswith("Error: huge.log is too large to show (67108864 bytes; the limit is")
    assert str(repo) not in observation.text


def test_the_show_cap_is_a_setting_and_text_over_it_is_refused_too(repo, cache):
    (repo / "notes.txt").write_text("line\n" * 1000)
    tools = RepoTools(build_index(repo, cache=cache, workers=1), max_file_bytes=1000)
    box = ToolBox(tools.index, tools=tools)
    assert (
        "too large to show (5000 bytes; the limit is 1000 bytes)"
        in box.call("show_code", {"file": "notes.txt", "start_line": 1, "end_line": 5}).text
    )
    assert box.call("show_code", {"file": "pkg/charge.py", "start_line": 1, "end_line": 5}).ok


def test_a_binary_file_is_answered_from_its_first_bytes(repo, cache):
    (repo / "blob.bin").write_bytes(b"\0" * 100 + b"x" * 100_000)
    box = ToolBox(build_index(repo, cache=cache, workers=1))
    assert (
        box.call("show_code", {"file": "blob.bin", "start_line": 1, "end_line": 5}).text
        == "Error: blob.bin is a binary file"
    )


def test_the_line_cache_stays_bounded(tmp_path, cache):
    files = {f"mod{i:03}.py": f"def f{i}():\n" + "    x = 1\n" * 100 for i in range(60)}
    index = build_index(write_tree(tmp_path / "many", files), cache=cache, workers=1)
    tools = RepoTools(index, line_cache_bytes=20_000)
    box = ToolBox(index, tools=tools)
    for path in files:
        assert box.call("show_code", {"file": path, "start_line": 1, "end_line": 3}).ok
        assert tools.line_cache.bytes <= 20_000
    assert 0 < len(tools.line_cache) < len(files)
    # what fell out is read again, correctly
    assert box.call("show_code", {"file": "mod000.py", "start_line": 1, "end_line": 1}).text.endswith(
        "1 | def f0():"
    )
    # search and references read every file through the same bounded cache
    assert "mod059.py" in box.call("find_references", {"name": "f59"}).text
    assert tools.line_cache.bytes <= 20_000


def test_the_line_cache_keeps_the_most_recently_used(tmp_path, cache):
    files = {f"m{i}.py": "x = 1\n" * 50 for i in range(4)}
    index = build_index(write_tree(tmp_path / "few", files), cache=cache, workers=1)
    sample = RepoTools(index)
    sample.lines("m0.py")
    tools = RepoTools(index, line_cache_bytes=3 * sample.line_cache.bytes)
    for path in ("m0.py", "m1.py", "m2.py", "m0.py", "m3.py"):
        tools.lines(path)
    assert sorted(tools.line_cache.paths()) == ["m0.py", "m2.py", "m3.py"]


def test_long_arguments_are_cut_in_the_echo(repo, cache):
    box = ToolBox(build_index(repo, cache=cache, workers=1))
    query = "zzzqqq " * 15_000  # 100 KB: enough to show the echo, cheap to tokenize
    calls = [
        ("search_code", {"query": query}),
        ("search_code", {"query": "charge " + query}),
        ("search_class", {"class_name": "Q" * 1_000_000}),
        ("search_function", {"function_name": "q" * 1_000_000}),
        ("search_class_method", {"class_name": "Q" * 1_000_000, "method_name": "m"}),
        ("search_class_method", {"class_name": "", "method_name": "m" * 1_000_000}),
        ("find_references", {"name": "r" * 1_000_000}),
        ("find_references", {"name": "not an identifier " * 60_000}),
        ("get_repo_structure", {"path": "p" * 4000}),
        ("submit", {"locations": ["x" * 100_000] * 100}),
    ]
    observations = [box.call(name, arguments).text for name, arguments in calls]
    for (name, _), observation in zip(calls, observations, strict=True):
        assert len(observation) < 2_000, (name, observation[:300])
    top = observations[1]
    assert top.startswith("Top matches for 'charge zzzqqq zzzqqq") and "(cut; 105007 characters)" in top
    assert "pkg/charge.py::charge" in top


def test_the_indexer_skips_a_huge_file_by_its_size(repo, cache):
    _sparse(repo / "generated.py", 3 << 30)  # 3 GiB of hole: reading it would take seconds and gigabytes
    index = build_index(repo, cache=cache, workers=1)
    assert index.skipped["generated.py"] == f"too large ({3 << 30} bytes > {MiB})"


def _scan_then(change):
    """The walk as build uses it, with ``change(root)`` run between the listing and the reading."""
    real_scan = build.scan

    def scan(root, max_file_bytes):
        listing = real_scan(root, max_file_bytes)
        change(root)
        return listing

    return scan


def test_a_file_that_grows_after_the_walk_is_read_only_up_to_the_cap(repo, cache, monkeypatch):
    def grow(root: Path) -> None:
        with open(root / "pkg" / "charge.py", "a") as handle:
            handle.write("padding = 0\n" * 20_000)  # (long runs of comments parse slowly)

    monkeypatch.setattr(build, "scan", _scan_then(grow))
    index = build_index(repo, cache=cache, workers=1, max_file_bytes=100_000)
    assert "pkg/charge.py" not in index.files
    assert index.skipped["pkg/charge.py"].startswith("too large (")


def test_a_file_replaced_by_a_fifo_after_the_walk_is_never_opened(repo, cache, monkeypatch):
    fifo = repo / "pkg" / "charge.py"

    def replace(root: Path) -> None:
        os.remove(fifo)
        os.mkfifo(fifo)

    monkeypatch.setattr(build, "scan", _scan_then(replace))
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(index=build_index(repo, cache=cache, workers=1)))
    worker.daemon = True
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # blocked in open(): a writer's open releases it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("indexing blocked opening a FIFO")
    assert outcome["index"].skipped["pkg/charge.py"] == "not a regular file (FIFO)"  # type: ignore[attr-defined]


def test_fifos_and_sockets_are_skipped_with_a_reason(repo, cache, monkeypatch):
    os.mkfifo(repo / "pkg" / "pipe.py")
    os.mkfifo(repo / "events")
    monkeypatch.chdir(repo)  # a relative socket name: AF_UNIX paths are limited to about 100 bytes
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind("server.sock")
        index = build_index(repo, cache=cache, workers=1)
    finally:
        listener.close()
    assert index.skipped["pkg/pipe.py"] == "not a regular file (FIFO)"
    assert index.skipped["events"] == "not a regular file (FIFO)"
    assert index.skipped["server.sock"] == "not a regular file (socket)"
    assert index.stats is not None and index.stats.skipped == {"not a regular file": 3}
    box = ToolBox(index)
    assert box.call("show_code", {"file": "pkg/pipe.py", "start_line": 1, "end_line": 5}).text == (
        "Error: pkg/pipe.py is not indexed: not a regular file (FIFO)"
    )
    assert box.call("show_code", {"file": "events", "start_line": 1, "end_line": 5}).text == (
        "Error: events is not indexed: not a regular file (FIFO)"
    )
