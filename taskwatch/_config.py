"""Where the API key comes from: the places, in the order, that the official lobstr tools use."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    # Installed only on 3.10 (see pyproject); mypy checks this branch without it.
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["ENV_VAR", "config_path", "find_api_key", "resolve_api_key"]

#: The environment variable the official lobstr SDK and CLI read.
ENV_VAR = "LOBSTR_TOKEN"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/lobstr/config.toml``, by default ``~/.config/lobstr/config.toml``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lobstr" / "config.toml"


def _token_from_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"could not read {path}: {exc.__class__.__name__}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message names a line and column, never the file's content.
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    auth = data.get("auth")
    token = auth.get("token") if isinstance(auth, dict) else None
    if token is None:
        return None
    if not isinstance(token, str) or not token.strip():
        raise ConfigurationError(f"[auth] token in {path} must be a non-empty string")
    return token.strip()


def _checked(key: str, where: str) -> str:
    """``key`` if it can travel in a header; a control character (a line break pasted with
    it, say) raises ConfigurationError now rather than a bare ValueError at the first request.
    The message names where the key came from, never the key."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise ConfigurationError(
            f"the API key from {where} contains a control character (a line break?)"
        )
    return key


def find_api_key(api_key: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The key from the first place that holds one (see ``resolve_api_key``), or None when
    none does.

    Raises:
        ConfigurationError: an explicit ``api_key`` that is empty, a key with a control
            character, or a config file that exists but cannot be read.
    """
    if api_key is not None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigurationError("api_key must be a non-empty string")
        return _checked(api_key.strip(), "api_key")
    env = os.environ if env is None else env
    from_env = env.get(ENV_VAR, "").strip()
    if from_env:
        return _checked(from_env, ENV_VAR)
    path = config_path(env)
    from_file = _token_from_file(path)
    if from_file:
        return _checked(from_file, str(path))
    return None


def resolve_api_key(api_key: str | None, env: Mapping[str, str] | None = None) -> str:
    """The key: ``api_key``, else ``$LOBSTR_TOKEN``, else ``[auth] token`` in the config file.

    Raises:
        ConfigurationError: no key in any of the three places (the message names them all), or
            the config file exists but cannot be read.
    """
    key = find_api_key(api_key, env)
    if key is None:
        path = config_path(os.environ if env is None else env)
        raise ConfigurationError(
            "no Lobstr.io API key found: pass api_key=..., set the environment variable "
            f"{ENV_VAR}, or log in with the lobstr CLI so that {path} holds [auth] token"
        )
    return key
