"""Loading SWE-bench-style datasets from every local format, and clear errors when that fails."""

from __future__ import annotations

import csv
import json
import re
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reposearcher_plugin.evaluation.instances import DatasetError, load_instances
from tests.conftest import needs_shared_data

ROWS = [
    {
        "instance_id": "psf__requests-1",
        "repo": "psf/requests",
        "base_commit": "abc123",
        "problem_statement": "Redirects drop the body.",
        "patch": "diff --git a/x b/x\n",
        "FAIL_TO_PASS": json.dumps(["tests/test_x.py::test_a"]),
        "PASS_TO_PASS": "[]",
        "category": "bug report",
    },
    {
        "instance_id": "psf__requests-2",
        "repo": "psf/requests",
        "base_commit": "def456",
        "problem_statement": "Timeouts are ignored.",
    },
]


def _check(instances):
    assert [i.instance_id for i in instances] == ["psf__requests-1", "psf__requests-2"]
    first = instances[0]
    assert (first.repo, first.base_commit, first.patch) == ("psf/requests", "abc123", "diff --git a/x b/x\n")
    assert first.fail_to_pass == ("tests/test_x.py::test_a",) and first.pass_to_pass == ()
    assert first.extra == {"category": "bug report"}
    assert instances[1].patch == "" and instances[1].fail_to_pass == ()


def test_jsonl_json_csv_and_parquet_give_the_same_instances(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in ROWS) + "\n")
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(ROWS))
    as_dict = tmp_path / "dict.json"
    as_dict.write_text(
        json.dumps({row["instance_id"]: {k: v for k, v in row.items() if k != "instance_id"} for row in ROWS})
    )
    as_csv = tmp_path / "d.csv"
    fields = sorted({key for row in ROWS for key in row})
    with as_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(ROWS)
    as_parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([{key: row.get(key) for key in fields} for row in ROWS]), as_parquet)
    for path in (jsonl, as_list, as_dict, as_csv, as_parquet):
        _check(load_instances(str(path)))


@needs_shared_data
def test_the_shared_swe_bench_lite_file_loads():
    instances = load_instances(
        str(Path(__file__).resolve().parents[2] / "shared/data/swe-bench-lite/test.jsonl")
    )
    assert len(instances) == 300
    assert {i.repo for i in instances} >= {"django/django", "sympy/sympy", "psf/requests"}
    assert all(i.patch.startswith("diff --git") for i in instances)


def test_bad_datasets_get_clear_errors(tmp_path):
    missing_field = tmp_path / "m.jsonl"
    missing_field.write_text(json.dumps({"instance_id": "a", "repo": "o/n"}) + "\n")
    with pytest.raises(DatasetError, match="'a' lacks base_commit, problem_statement"):
        load_instances(str(missing_field))
    duplicated = tmp_path / "dup.jsonl"
    duplicated.write_text("".join(json.dumps(row) + "\n" for row in ROWS + ROWS[:1]))
    with pytest.raises(DatasetError, match="duplicate instance ids: psf__requests-1"):
        load_instances(str(duplicated))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"broken.jsonl:2: not JSON"):
        load_instances(str(broken))
    unknown = tmp_path / "d.txt"
    unknown.write_text("x")
    with pytest.raises(DatasetError, match=r"unknown dataset format '\.txt'"):
        load_instances(str(unknown))


def test_a_hub_name_offline_says_to_pass_a_local_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"pass a local \.jsonl"):
        load_instances("princeton-nlp/SWE-bench_Lite-that-does-not-exist", "test")


@pytest.mark.parametrize("typo", ["nope.jsonl", "data/test.json", "./x", "~/no/such.parquet"])
def test_a_missing_local_file_is_not_looked_up_on_the_hub(typo, monkeypatch):
    import datasets

    def no_hub(*args, **kwargs):
        raise AssertionError("asked the hub for a local path")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    with pytest.raises(DatasetError, match=rf"^{re.escape(typo)}: no such file$"):
        load_instances(typo)


def test_an_unreachable_hub_is_said_without_asking_it(monkeypatch):
    import datasets

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("asked the unreachable hub"))
    with pytest.raises(DatasetError, match=r"hub cannot be asked: 127\.0\.0\.1 is unreachable"):
        load_instances("princeton-nlp/SWE-bench_Lite")
