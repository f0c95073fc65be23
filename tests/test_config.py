"""Key resolution: argument, then LOBSTR_TOKEN, then [auth] token in the lobstr config file."""

from __future__ import annotations

from pathlib import Path

import pytest

import taskwatch
from taskwatch import ConfigurationError
from taskwatch._config import config_path, resolve_api_key

from .conftest import SECRET


def write_config(root: Path, text: str) -> Path:
    path = root / "lobstr" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_path_follows_xdg(tmp_path: Path) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "lobstr/config.toml"


def test_config_path_defaults_to_dot_config() -> None:
    assert config_path({}) == Path.home() / ".config" / "lobstr" / "config.toml"


def test_explicit_key_wins(tmp_path: Path) -> None:
    write_config(tmp_path, '[auth]\ntoken = "from-file"\n')
    env = {"LOBSTR_TOKEN": "from-env", "XDG_CONFIG_HOME": str(tmp_path)}
    assert resolve_api_key("explicit", env) == "explicit"


def test_env_beats_file(tmp_path: Path) -> None:
    write_config(tmp_path, '[auth]\ntoken = "from-file"\n')
    env = {"LOBSTR_TOKEN": " from-env ", "XDG_CONFIG_HOME": str(tmp_path)}
    assert resolve_api_key(None, env) == "from-env"


def test_file_is_last(tmp_path: Path) -> None:
    write_config(tmp_path, '[auth]\ntoken = "from-file"\n\n[other]\nx = 1\n')
    assert resolve_api_key(None, {"XDG_CONFIG_HOME": str(tmp_path)}) == "from-file"


def test_empty_env_falls_through_to_file(tmp_path: Path) -> None:
    write_config(tmp_path, '[auth]\ntoken = "from-file"\n')
    env = {"LOBSTR_TOKEN": "  ", "XDG_CONFIG_HOME": str(tmp_path)}
    assert resolve_api_key(None, env) == "from-file"


def test_no_key_anywhere_names_all_three_places(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    message = str(info.value)
    assert "api_key" in message
    assert "LOBSTR_TOKEN" in message
    assert str(tmp_path / "lobstr" / "config.toml") in message


@pytest.mark.parametrize(
    "text", ["[auth]\n", "[auth]\nuser = 'x'\n", "[other]\ntoken = 'x'\n", "auth = 3\n"]
)
def test_file_without_token_is_no_key(tmp_path: Path, text: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigurationError, match=r"no Lobstr\.io API key found"):
        resolve_api_key(None, {"XDG_CONFIG_HOME": str(tmp_path)})


def test_malformed_file_is_a_clear_error_without_its_content(tmp_path: Path) -> None:
    write_config(tmp_path, f'[auth]\ntoken = "{SECRET}\n')  # unterminated string
    with pytest.raises(ConfigurationError, match="not valid TOML") as info:
        resolve_api_key(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("text", ["[auth]\ntoken = 5\n", "[auth]\ntoken = ''\n"])
def test_wrong_token_type_in_file(tmp_path: Path, text: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigurationError, match="non-empty string"):
        resolve_api_key(None, {"XDG_CONFIG_HOME": str(tmp_path)})


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_explicit_key_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="non-empty"):
        resolve_api_key(value, {})


def test_client_without_key_fails_before_any_request() -> None:
    # conftest points XDG_CONFIG_HOME at an empty folder and clears LOBSTR_TOKEN.
    with pytest.raises(ConfigurationError, match="LOBSTR_TOKEN"):
        taskwatch.Client()


def test_client_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOBSTR_TOKEN", SECRET)
    client = taskwatch.Client()
    assert client._headers["Authorization"] == f"Token {SECRET}"
    assert SECRET not in repr(client)
