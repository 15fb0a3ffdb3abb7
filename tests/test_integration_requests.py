"""Real code at real scale: the release source of requests 2.31.0 from PyPI.

The first run downloads the source distribution (PyPI is reachable on development machines and CI) into
a cache beside the parse cache; later runs reuse it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from reposearcher_plugin.index import ParseCache, build_index
from reposearcher_plugin.tools import ToolBox

pytestmark = pytest.mark.integration
RELEASE = "requests==2.31.0"


@pytest.fixture(scope="module")
def requests_source(tmp_path_factory) -> Path:
    store = Path(os.environ.get("REPOSEARCHER_TEST_DATA", Path.home() / ".cache" / "reposearcher-tests"))
    root = store / "requests-2.31.0"
    if not (root / "requests" / "sessions.py").exists():
        store.mkdir(parents=True, exist_ok=True)
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                RELEASE,
                "-d",
                str(store),
            ],
            capture_output=True,
            text=True,
        )
        archive = store / "requests-2.31.0.tar.gz"
        if download.returncode != 0 or not archive.exists():
            pytest.fail(f"could not download {RELEASE} from PyPI:\n{download.stderr[-2000:]}")
        with tarfile.open(archive) as tar:
            tar.extractall(store, filter="data")
    return root


def _ast_ids(root: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    for file in sorted(root.rglob("*.py")):
        relative = file.relative_to(root).as_posix()
        tree = ast.parse(file.read_bytes())
        pending = [(tree, "")]
        while pending:
            node, prefix = pending.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    qualname = f"{prefix}.{child.name}" if prefix else child.name
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    ids[f"{relative}::{qualname}@{first}-{child.end_lineno}"] += 1
                    pending.append((child, qualname))
                else:
                    pending.append((child, prefix))
    return ids


def test_every_definition_python_ast_finds_is_indexed_with_the_same_id_and_span(requests_source, tmp_path):
    env = dict(os.environ, REPOSEARCHER_CACHE=str(tmp_path / "cache"))
    listing = subprocess.run(
        ["reposearcher", "index", str(requests_source), "--entities"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    ours = Counter(f"{r['id']}@{r['start']}-{r['end']}" for r in map(json.loads, listing.splitlines()))
    expected = _ast_ids(requests_source)
    assert sum(expected.values()) > 700
    assert ours == expected


def test_tools_answer_real_questions_about_requests(requests_source, tmp_path):
    index = build_index(requests_source, cache=ParseCache(tmp_path / "cache"))
    box = ToolBox(index)
    method = box.call("search_class_method", {"class_name": "Session", "method_name": "request"}).text
    assert method.startswith("requests/sessions.py::Session.request (method, lines ")
    assert "def request(" in method
    imports = box.call("get_imports_of_file", {"file": "requests/api.py"}).text
    assert imports == "Imports of requests/api.py:\n  11: from . import sessions  -> requests/sessions.py"
    session_imports = box.call("get_imports_of_file", {"file": "requests/sessions.py"}).text
    assert "from .adapters import HTTPAdapter  -> requests/adapters.py" in session_imports
    references = box.call("find_references", {"name": "merge_setting"}).text
    assert references.startswith("9 references to 'merge_setting' in 1 file:\n")
    assert "  requests/sessions.py:495 [Session.prepare_request]: params=merge_setting(" in references
    ranked = box.call("search_code", {"query": "redirect target location", "k": 5}).text
    assert "requests/sessions.py::SessionRedirectMixin.get_redirect_target" in ranked
    outline = box.call("search_class", {"class_name": "Session"}).text
    assert outline.startswith("requests/sessions.py::Session (class, lines ")
    assert "members are listed below" in outline and "def mount(self, prefix, adapter):" in outline


@pytest.fixture(scope="module")
def demo_source() -> Path:
    """What `reposearcher demo` searches, fetched by the demo's own downloader (sha256-checked)."""
    from reposearcher_plugin.cli.demo import release_source

    store = Path(os.environ.get("REPOSEARCHER_TEST_DATA", Path.home() / ".cache" / "reposearcher-tests"))
    try:
        return release_source(store)
    except RuntimeError as error:
        pytest.fail(str(error))


def test_demo_localizes_a_real_issue(demo_source, capsys):
    """The README's main command: the retrieval default finds the fix of SWE-bench Lite psf__requests-1963,
    in the release the issue was written against (the fix's lines are not there yet)."""
    from reposearcher_plugin.cli.demo import DEMO_FIX, DEMO_FIX_ADDED_LINE, DEMO_FIX_FILE, run_demo

    assert DEMO_FIX_ADDED_LINE not in (demo_source / DEMO_FIX_FILE).read_text()
    assert run_demo(str(demo_source)) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "Searching requests 2.2.1, the last release before this issue's fix" in printed
    assert f"changed {DEMO_FIX}: ranked #" in printed
    rank = int(printed.split(f"changed {DEMO_FIX}: ranked #", 1)[1].split(".", 1)[0])
    assert rank <= 3


def test_demo_refuses_an_archive_that_is_not_the_published_one(tmp_path):
    from reposearcher_plugin.cli.demo import release_source

    forged = tmp_path / "forged.tar.gz"
    forged.write_bytes(b"not requests")
    with pytest.raises(RuntimeError, match="not the published"):
        release_source(tmp_path / "store", url=forged.as_uri())
    assert not (tmp_path / "store" / "requests-2.2.1").exists()


def test_demo_says_when_the_code_already_holds_the_fix(requests_source):
    from reposearcher_plugin.cli.demo import pre_fix_note

    assert "already holds the fix's lines" in pre_fix_note(requests_source)  # 2.31.0 is post-fix
