"""One reader of unified diffs (evaluation/diffs.py): strict for gold patches, recounting for votes."""

from __future__ import annotations

import pytest

from reposearcher_plugin.evaluation.diffs import NO_FILE, DiffError, diff_paths, parse_diff

SHORT_HUNK = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n-a = 1\n+a = 2\n"


def test_a_hunk_shorter_than_its_header_is_refused_unless_recounted() -> None:
    with pytest.raises(DiffError, match="shorter than expected"):
        parse_diff(SHORT_HUNK)
    (patched,) = parse_diff(SHORT_HUNK, recount=True)
    (hunk,) = patched
    assert (hunk.source_start, hunk.source_length, hunk.target_length) == (1, 1, 1)
    assert [line.value for line in hunk] == ["a = 1\n", "a = 2\n"]


def test_recounting_stops_at_the_next_file_and_keeps_header_like_changes() -> None:
    text = (
        SHORT_HUNK + "diff --git a/y.rst b/y.rst\n--- a/y.rst\n+++ b/y.rst\n@@ -1,9 +1,9 @@\n------\n+=====\n"
    )
    first, second = parse_diff(text, recount=True)
    assert [line.value for line in second[0]] == ["-----\n", "=====\n"]
    assert len(first[0]) == 2


def test_paths_are_repository_paths() -> None:
    text = (
        'diff --git "a/caf\\303\\251.py" "b/caf\\303\\251.py"\nnew file mode 100644\n'
        '--- /dev/null\n+++ "b/caf\\303\\251.py"\n@@ -0,0 +1 @@\n+x = 1\n'
    )
    (patched,) = parse_diff(text)
    assert diff_paths(patched) == (NO_FILE, "café.py")
