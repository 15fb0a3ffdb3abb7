"""The `reposearcher` command as users run it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import write_tree

FILES = {
    "app/__init__.py": "",
    "app/core.py": "class Engine:\n    def start(self):\n        return 1\n\n\nasync def run():\n    pass\n",
    "web/app.ts": "export class Server {\n  listen(port: number): void {}\n}\n",
}


def reposearcher(*args: str, cache_dir, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, REPOSEARCHER_CACHE=str(cache_dir))
    return subprocess.run(["reposearcher", *args], capture_output=True, text=True, env=env, check=check)


def test_index_json_and_entities(tmp_path):
    root = write_tree(tmp_path / "repo", FILES)
    cache_dir = tmp_path / "cache"
    first = json.loads(reposearcher("index", str(root), "--json", cache_dir=cache_dir).stdout)
    assert first["files"] == 3 and first["entities"] == 5 and first["parsed"] == 3
    assert first["languages"] == {"python": 2, "typescript": 1}
    assert isinstance(first["seconds"], float)
    second = json.loads(reposearcher("index", str(root), "--json", cache_dir=cache_dir).stdout)
    assert (second["parsed"], second["unchanged"]) == (0, 3)
    lines = reposearcher("index", str(root), "--entities", cache_dir=cache_dir).stdout.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "app/core.py::Engine", "kind": "class", "start": 1, "end": 3},
        {"id": "app/core.py::Engine.start", "kind": "method", "start": 2, "end": 3},
        {"id": "app/core.py::run", "kind": "function", "start": 6, "end": 7},
        {"id": "web/app.ts::Server", "kind": "class", "start": 1, "end": 3},
        {"id": "web/app.ts::Server.listen", "kind": "method", "start": 2, "end": 2},
    ]
    assert reposearcher("index", str(root), cache_dir=cache_dir).stdout.startswith(f"Indexed {root}")


def test_tool_prints_the_observation_and_signals_failure(tmp_path):
    root = write_tree(tmp_path / "repo", FILES)
    cache_dir = tmp_path / "cache"
    done = reposearcher(
        "tool",
        str(root),
        "search_class_method",
        "--args",
        '{"class_name": "Engine", "method_name": "start"}',
        cache_dir=cache_dir,
    )
    assert (
        done.stdout
        == "app/core.py::Engine.start (method, lines 2-3)\n2 |     def start(self):\n3 |         return 1\n"
    )
    refused = reposearcher(
        "tool",
        str(root),
        "show_code",
        "--args",
        '{"file": "../x", "start_line": 1, "end_line": 2}',
        cache_dir=cache_dir,
        check=False,
    )
    assert refused.returncode == 1 and refused.stdout.startswith("Error: refused:")
    bad_json = reposearcher(
        "tool", str(root), "search_class", "--args", "{nope", cache_dir=cache_dir, check=False
    )
    assert bad_json.returncode == 2 and "--args is not valid JSON" in bad_json.stderr
    missing = reposearcher("index", str(tmp_path / "missing"), cache_dir=cache_dir, check=False)
    assert missing.returncode == 2 and "no such directory" in missing.stderr and not missing.stdout


def test_tools_prints_schemas_in_both_formats(tmp_path):
    openai = json.loads(reposearcher("tools", cache_dir=tmp_path).stdout)
    assert [tool["function"]["name"] for tool in openai] == [
        "get_repo_structure",
        "get_imports_of_file",
        "search_class",
        "search_function",
        "search_class_method",
        "show_code",
        "search_code",
        "find_references",
        "submit",
    ]
    hermes = reposearcher("tools", "--profile", "tooltrain", "--format", "hermes", cache_dir=tmp_path).stdout
    assert '"name": "get_code_of_class_function"' in hermes and "<tools>" in hermes


def test_bench_prints_one_json_object_last(tmp_path):
    many = {
        f"pkg/m{i}.py": f"class C{i}:\n    def m(self):\n        return {i}\n\n\ndef f{i}():\n    pass\n"
        for i in range(120)
    }
    root = write_tree(tmp_path / "repo", many)
    done = reposearcher("bench", str(root), "--runs", "1", "--json", cache_dir=tmp_path / "cache")
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["files"] == 120 and result["entities"] == 360
    assert result["reindex_changed_files"] == 1 and result["tool_calls"] == 400
    for key in ("index_cold_s", "index_warm_s", "parse_floor_s", "reindex_s", "tool_p50_ms", "tool_p99_ms"):
        assert result[key] > 0, key
    assert result["tool_p50_ms"] <= result["tool_p99_ms"]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # private cache only
