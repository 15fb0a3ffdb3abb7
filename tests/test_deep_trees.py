"""A directory chain deeper than Python's recursion limit is indexed and browsed (issue 12, item 6).

Nothing in the index or the tools recurses over a repository's depth: an LLM agent asks for the
structure before its first turn, so one deep fixture directory must not end every localization. Nor over
a syntax tree's depth: a destructuring pattern nested past the limit is read too (issue 14, move 9).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reposearcher_plugin.index import Variable, build_index
from reposearcher_plugin.index.languages import parse_source
from reposearcher_plugin.tools import ToolBox

DEPTH = 1200  # well past the default recursion limit of 1000, well under PATH_MAX with one-letter names


@pytest.fixture(scope="module")
def deep_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("deep") / "repo"
    (root / "top.py").parent.mkdir(parents=True)
    (root / "top.py").write_text("def top():\n    pass\n")
    relative = "/".join(["d"] * DEPTH)
    # level by level: os.makedirs and pathlib's mkdir(parents=True) recurse once per missing level
    directory = root
    for _ in range(DEPTH):
        directory = directory / "d"
        directory.mkdir()
    (root / relative / "leaf.py").write_text("def leaf():\n    pass\n")
    (root / relative / "notes.txt").write_text("x\n")
    (root / "d" / "d" / "mid.py").write_text("class Mid:\n    pass\n")
    yield root
    _remove_tree(root)


def _remove_tree(top: Path) -> None:
    """Delete ``top`` without recursion and with short paths only: pytest's own cleanup (shutil.rmtree)
    recurses once per level and would fail on this tree in a later session, and removing by full
    paths costs one lookup per level per file. Each subdirectory is moved up next to ``top`` first."""
    pending = [top]
    moved = 0
    while pending:
        directory = pending.pop()
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                moved += 1
                target = top.parent / f"{top.name}-removed-{moved}"
                os.rename(entry.path, target)
                pending.append(target)
            else:
                os.unlink(entry.path)
        os.rmdir(directory)


def test_default_recursion_limit_is_below_the_fixture_depth():
    assert sys.getrecursionlimit() < DEPTH


def test_deep_chain_is_indexed(deep_repo, cache):
    index = build_index(deep_repo, cache=cache, workers=1)
    leaf = "/".join(["d"] * DEPTH) + "/leaf.py"
    assert set(index.files) == {"top.py", "d/d/mid.py", leaf}
    assert [entity.qualname for entity in index.files[leaf].parse.entities] == ["leaf"]
    # a warm load from the snapshot reads the same tree
    assert set(build_index(deep_repo, cache=cache, workers=1).files) == set(index.files)


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
def test_structure_of_a_deep_chain_at_every_depth(deep_repo, cache, depth):
    box = ToolBox(build_index(deep_repo, cache=cache, workers=1))
    observation = box.call("get_repo_structure", {"path": ".", "depth": depth})
    assert observation.ok, observation.text
    lines = observation.text.split("\n")
    assert lines[0] == "./"
    # the chain is expanded to `depth` levels, then counted: 2 source files and 1 other below the cut
    below = "1 source file" if depth > 2 else "2 source files"
    assert f"{'  ' * depth}d/ ({below}, 1 other file)" in lines
    assert "  top.py" in lines


def test_structure_from_inside_the_chain(deep_repo, cache):
    box = ToolBox(build_index(deep_repo, cache=cache, workers=1))
    for level in (3, 600, DEPTH - 1):
        path = "/".join(["d"] * level)
        observation = box.call("get_repo_structure", {"path": path, "depth": 2})
        assert observation.ok, observation.text
        assert observation.text.split("\n")[0] == f"{path}/"
    bottom = "/".join(["d"] * DEPTH)
    assert box.call("get_repo_structure", {"path": bottom, "depth": 2}).text == (
        f"{bottom}/\n  leaf.py\n  (+1 other file)"
    )
    leaf = box.call("show_code", {"file": f"{bottom}/leaf.py", "start_line": 1, "end_line": 9})
    assert leaf.ok and leaf.text.endswith("1 | def leaf():\n2 |     pass")
    assert "leaf" in box.call("search_function", {"function_name": "leaf"}).text


def test_a_chain_of_symlinks_longer_than_the_recursion_limit_is_refused(tmp_path, cache):
    root = tmp_path / "links"
    root.mkdir()
    (root / "target.py").write_text("def target():\n    pass\n")
    previous = "target.py"
    for number in range(DEPTH):
        os.symlink(previous, root / f"link{number}.py")
        previous = f"link{number}.py"
    box = ToolBox(build_index(root, cache=cache, workers=1))
    observation = box.call("show_code", {"file": previous, "start_line": 1, "end_line": 2})
    assert observation.text == f"Error: refused: {previous!r} cannot be resolved (RecursionError)"


@pytest.mark.parametrize("module, path", [("lang_javascript", "deep.js"), ("lang_typescript", "deep.ts")])
def test_a_destructuring_pattern_deeper_than_the_recursion_limit_binds_every_name(module, path):
    # `var [n0, [n1, [n2, ...]]] = v;` and `const {k: {k: ... {leaf}}} = v;`
    arrays = "".join(f"[n{level}, " for level in range(DEPTH)) + "last" + "]" * DEPTH
    objects = "{k: " * DEPTH + "{leaf}" + "}" * DEPTH
    source = f"var {arrays} = v;\nconst {objects} = v;\n".encode()
    parsed = parse_source(module, path, source)
    assert parsed.syntax_errors == 0
    names = [f"n{level}" for level in range(DEPTH)]
    assert list(parsed.variables) == [*(Variable(name, 1) for name in [*names, "last"]), Variable("leaf", 2)]
