"""cli/errors.py: sub-commands raise CommandError; one function prints it."""

from __future__ import annotations

import argparse
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


def test_only_the_error_module_prints_the_error_line() -> None:
    folder = Path(reposearcher_plugin.cli.__file__).parent
    printing = [path.name for path in folder.glob("*.py") if "reposearcher: error:" in path.read_text()]
    assert printing == ["errors.py"]
