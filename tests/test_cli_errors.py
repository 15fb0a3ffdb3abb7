"""cli/errors.py: sub-commands raise CommandError; one function prints it."""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import reposearcher_plugin.cli
from reposearcher_plugin.cli.errors import CommandError, reports_errors


def test_a_command_error_is_one_line_and_its_status(capsys: pytest.CaptureFixture[str]) -> None:
    @reports_errors
    def handler(args: argparse.Namespace) -> int:
        raise CommandError("--out x: not a directory", status=3)

    assert handler(argparse.Namespace()) == 3
    assert capsys.readouterr().err == "reposearcher: error: --out x: not a directory\n"


def test_other_errors_pass_through() -> None:
    @reports_errors
    def handler(args: argparse.Namespace) -> int:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        handler(argparse.Namespace())


def _write_on_a_full_disk(path: str) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def test_a_full_disk_in_a_batch_worker_is_one_line_that_says_to_resume(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the way a batch run meets it: in a forked worker, re-raised in the parent by the pool
    @reports_errors
    def handler(args: argparse.Namespace) -> int:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            pool.submit(_write_on_a_full_disk, "/out/preds.trajectories/x.json").result()
        return 0

    assert handler(argparse.Namespace()) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("reposearcher: error: no space left on the device (writing /out/preds.traj")
    assert "run the same command again" in err


def test_other_os_errors_pass_through() -> None:
    @reports_errors
    def handler(args: argparse.Namespace) -> int:
        raise OSError(errno.EIO, "Input/output error", "/x")

    with pytest.raises(OSError):
        handler(argparse.Namespace())


def test_only_the_error_module_prints_the_error_line() -> None:
    folder = Path(reposearcher_plugin.cli.__file__).parent
    printing = [path.name for path in folder.glob("*.py") if "reposearcher: error:" in path.read_text()]
    assert printing == ["errors.py"]
