"""Localizer options: defaults < --config YAML < command-line flags, and clear errors for bad configs."""

from __future__ import annotations

import argparse
import pickle
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from reposearcher_plugin.agent.config import AgentConfig
from reposearcher_plugin.agent.localizers import LocalizerOptions, flat_option_names
from reposearcher_plugin.agent.options import add_localizer_options, localizer_options

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


def test_options_survive_pickling_and_hash_as_equal():
    # batch workers in other processes rebuild the localizer from options they get pickled
    options = LocalizerOptions(model="hosted_vllm/m", max_turns=3, api_base="http://h:1/v1")
    again = pickle.loads(pickle.dumps(options))
    assert again == options and hash(again) == hash(options)
    with pytest.raises(ValidationError, match="frozen"):
        options.model = "other"  # type: ignore[misc]


def test_flat_yaml_keys_land_in_the_nested_parts(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("model: hosted_vllm/m\nmax_turns: 7\nprofile: tooltrain\ntemperature: 0.5\nhints: 2\n")
    options = parse("--config", str(config))
    assert (options.agent.max_turns, options.agent.profile, options.agent.hints) == (7, "tooltrain", 2)
    assert options.policy.temperature == 0.5
    assert options.agent.max_tokens == AgentConfig().max_tokens


def test_nested_yaml_is_read_as_the_flat_form(tmp_path):
    flat, nested = tmp_path / "flat.yaml", tmp_path / "nested.yaml"
    flat.write_text("model: hosted_vllm/m\nmax_turns: 7\nretries: 1\n")
    nested.write_text("model: hosted_vllm/m\nagent:\n  max_turns: 7\npolicy:\n  retries: 1\n")
    assert parse("--config", str(nested)) == parse("--config", str(flat))
    assert parse("--config", str(nested), "--max-turns", "2").agent.max_turns == 2  # the flag still wins


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: hosted_vllm/m\nagent:\n  max_trns: 3\n", "unknown option\\(s\\) max_trns"),
        ("model: hosted_vllm/m\napi_key: secret\n", "unknown option\\(s\\) api_key"),
        ("model: hosted_vllm/m\nmax_turns: 3\nagent:\n  max_turns: 4\n", "max_turns given both"),
        ("model: hosted_vllm/m\ntemperature: warm\n", "temperature must be float, got 'warm'"),
        ("model: hosted_vllm/m\nmax_turns: '3'\n", "max_turns must be int, got '3'"),  # strict: no coercion
        ("model: hosted_vllm/m\nmax_turns: true\n", "max_turns must be int, got True"),
        ("model: hosted_vllm/m\nmax_turns: 0\n", "max_turns must be at least 1"),
        ("model: hosted_vllm/m\ntool_format: xml\n", "unknown tool format 'xml'"),
    ],
)
def test_bad_values_name_the_file_and_the_field(tmp_path, text, message):
    config = tmp_path / "agent.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message) as raised:
        parse("--config", str(config))
    assert str(raised.value).startswith(f"--config {config}: ")


def test_a_bad_flag_value_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match=r"^--max-turns: max_turns must be at least 1$"):
        parse("--model", "hosted_vllm/m", "--max-turns", "0")
    with pytest.raises(ValueError, match=r"^--prompts: .*does not exist"):
        parse("--model", "hosted_vllm/m", "--prompts", str(tmp_path / "missing"))


def test_every_localizer_flag_sets_a_field_of_the_options():
    parser = argparse.ArgumentParser()
    add_localizer_options(parser)
    dests = {action.dest for action in parser._actions} - {"help", "config", "api_key_env"}
    assert dests <= set(flat_option_names())
    assert parser.parse_args(["--max-wall", "5"]).max_wall_s == 5.0  # typed as the field is


def test_the_constructor_takes_flat_and_nested_keys_alike():
    assert LocalizerOptions(max_turns=3, retries=1) == LocalizerOptions(
        agent=AgentConfig(max_turns=3), policy={"retries": 1}
    )
    assert LocalizerOptions(max_turns=3).max_turns == 3  # flat reads reach into the parts
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        LocalizerOptions(max_trns=3)
