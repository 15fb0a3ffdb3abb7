"""Localizer options: defaults < --config YAML < command-line flags, and clear errors for bad configs."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from reposearcher_plugin.agent.localizers import LocalizerOptions
from reposearcher_plugin.cli.options import add_localizer_options, localizer_options

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "agent"


def parse(*argv: str) -> LocalizerOptions:
    parser = argparse.ArgumentParser()
    add_localizer_options(parser)
    return localizer_options(parser.parse_args(list(argv)))


def test_defaults_without_flags():
    assert parse() == LocalizerOptions()


def test_config_then_flags(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("model: hosted_vllm/m\napi_base: http://h:1/v1\nmax_turns: 7\ntool_format: hermes\n")
    options = parse("--config", str(config), "--max-turns", "3")
    assert (options.model, options.api_base, options.tool_format) == (
        "hosted_vllm/m",
        "http://h:1/v1",
        "hermes",
    )
    assert options.max_turns == 3  # the flag wins over the file
    assert options.max_tokens == LocalizerOptions().max_tokens  # untouched: the default


def test_api_key_from_the_named_variable(tmp_path, monkeypatch):
    config = tmp_path / "agent.yaml"
    config.write_text("model: anthropic/x\napi_key_env: MY_KEY\n")
    with pytest.raises(ValueError, match="MY_KEY is not set"):
        parse("--config", str(config))
    monkeypatch.setenv("MY_KEY", "secret")
    assert parse("--config", str(config)).api_key == "secret"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modle: x\n", "unknown option\\(s\\) modle"),
        ("max_turns: many\n", "max_turns must be int"),
        ("- a\n- b\n", "expected a mapping"),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_configs_are_refused(tmp_path, text, message):
    config = tmp_path / "agent.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message):
        parse("--config", str(config))


def test_missing_config_file(tmp_path):
    with pytest.raises(ValueError, match="No such file"):
        parse("--config", str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("name", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    options = parse("--config", str(CONFIGS / name))
    assert options.model


@pytest.mark.parametrize("spelling", ["vllm-native", "vllm-native.yaml", "configs/agent/vllm-native.yaml"])
def test_a_packaged_config_is_found_by_name_from_any_folder(spelling, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the clone's root: the name still resolves, to the package's copy
    assert parse("--config", spelling) == parse("--config", str(CONFIGS / "vllm-native.yaml"))


def test_an_unknown_config_name_lists_the_packaged_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"No such file, nor a packaged agent config .*vllm-native"):
        parse("--config", "vllm-natve")


def test_the_package_carries_every_config_of_the_repository():
    from importlib.resources import files

    packaged = files("reposearcher_plugin") / "configs"
    top = Path(__file__).resolve().parent.parent / "configs"
    assert top.is_symlink() and top.resolve() == Path(str(packaged)).resolve()
    project = tomllib.loads((top.parent / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["reposearcher_plugin"]
    shipped = {str(path.relative_to(top.resolve())) for path in top.resolve().rglob("*") if path.is_file()}
    declared = {
        str(path.relative_to(top.resolve()))
        for pattern in patterns
        for path in top.resolve().glob(pattern.removeprefix("configs/"))
    }
    assert shipped == declared
