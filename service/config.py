"""The configuration file, validated strictly: every problem is named by its key path; a bad file starts nothing.

Environment variables override the file: ``FLOCKWATCH_`` + the key path in capitals joined by ``__``, e.g.
``FLOCKWATCH_DATABASE__URL`` or ``FLOCKWATCH_PLATFORMS__X__BEARER_TOKEN``. Secrets may also be given as
``*_file`` paths (``bearer_token_file``); they are held as ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from service.accounts import PLATFORMS, AccountError, AccountRef
from service.durations import parse_duration

ENV_PREFIX = "FLOCKWATCH_"
DEFAULT_LISTEN = "127.0.0.1:9808"


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` lists each one as ``key.path: what is wrong``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str | int | float):
        raise ValueError("a duration is a number of seconds or text like 90s, 15m, 1h, 2d")
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9808`` for IPv6) into its parts."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:9808")
    return host, int(port)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(Strict):
    url: str = "sqlite:///flockwatch.db"


class HttpConfig(Strict):
    """Where /metrics, /healthz and /readyz are served, and how (TLS and basic auth: ``web_config_file``)."""

    listen: str = DEFAULT_LISTEN
    # A web configuration file in the Prometheus exporter-toolkit format (service/webconfig.py).
    web_config_file: Path | None = None
    # flockwatch_anomaly_score: six series per account; false leaves them out of /metrics for large fleets.
    anomaly_scores: bool = True

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("web_config_file")
    @classmethod
    def _check_web_config(cls, value: Path | None) -> Path | None:
        # Imported here: reading the file needs ssl and bcrypt-hash checks that other commands never use.
        from service.webconfig import WebConfigError, load_web_config

        if value is not None:
            try:
                load_web_config(value)
            except WebConfigError as exc:
                raise ValueError(f"{value}: " + "; ".join(exc.problems)) from None
        return value


class PollConfig(Strict):
    interval: Duration = timedelta(minutes=15)
    jitter: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=20)

    _check = field_validator("interval", "timeout")(_positive)


class RateLimitConfig(Strict):
    """A platform's request budget, when it differs from the published default (e.g. a self-hosted instance)."""

    requests: int
    window: Duration

    @field_validator("requests")
    @classmethod
    def _check_requests(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be above zero")
        return value

    _check = field_validator("window")(_positive)


class PlatformConfig(Strict):
    """Settings every platform has. ``base_url`` lets a self-hosted or test server stand in."""

    base_url: str | None = None
    interval: Duration | None = None
    allow_hosts: tuple[str, ...] = ()
    rate_limit: RateLimitConfig | None = None

    _check = field_validator("interval")(_positive)

    def secret(self, name: str) -> SecretStr | None:
        """A credential from ``name`` or the file named by ``name_file``."""
        direct = getattr(self, name, None)
        if isinstance(direct, SecretStr):
            return direct
        path = getattr(self, f"{name}_file", None)
        if path is None:
            return None
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())


class MastodonConfig(PlatformConfig):
    token: SecretStr | None = None
    token_file: Path | None = None


class XConfig(PlatformConfig):
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None


class BlueskyConfig(PlatformConfig):
    pass


class YoutubeConfig(PlatformConfig):
    api_key: SecretStr | None = None
    api_key_file: Path | None = None


class TwitchConfig(PlatformConfig):
    client_id: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None


class GithubConfig(PlatformConfig):
    token: SecretStr | None = None
    token_file: Path | None = None


class PlatformsConfig(Strict):
    x: XConfig = XConfig()
    mastodon: MastodonConfig = MastodonConfig()
    bluesky: BlueskyConfig = BlueskyConfig()
    youtube: YoutubeConfig = YoutubeConfig()
    twitch: TwitchConfig = TwitchConfig()
    github: GithubConfig = GithubConfig()

    def of(self, platform: str) -> PlatformConfig:
        config: PlatformConfig = getattr(self, platform)
        return config


class WatchEntry(Strict):
    account: AccountRef
    interval: Duration | None = None

    _check = field_validator("interval")(_positive)

    @field_validator("account", mode="before")
    @classmethod
    def _parse_account(cls, value: object) -> AccountRef:
        if isinstance(value, AccountRef):
            return value
        if not isinstance(value, str):
            raise ValueError("an account is text like mastodon:user@instance")
        try:
            return AccountRef.parse(value)
        except AccountError as exc:
            raise ValueError(str(exc)) from None


def _watch_entry(value: object) -> object:
    return {"account": value} if isinstance(value, str) else value


class LogConfig(Strict):
    level: str = "info"
    format: str = "logfmt"

    @field_validator("level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value.lower()

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value not in {"logfmt", "json"}:
            raise ValueError("must be logfmt or json")
        return value


class Config(Strict):
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    poll: PollConfig = PollConfig()
    log: LogConfig = LogConfig()
    platforms: PlatformsConfig = PlatformsConfig()
    watchlist: tuple[Annotated[WatchEntry, BeforeValidator(_watch_entry)], ...] = ()

    @model_validator(mode="after")
    def _no_duplicate_accounts(self) -> Config:
        seen: set[AccountRef] = set()
        for entry in self.watchlist:
            if entry.account in seen:
                raise ValueError(f"watchlist: {entry.account} is listed twice")
            seen.add(entry.account)
        return self

    def interval_for(self, account: AccountRef, own: timedelta | None = None) -> timedelta:
        """An account's own interval, else its platform's, else ``poll.interval``."""
        return own or self.platforms.of(account.platform).interval or self.poll.interval


def load(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge environment overrides, and validate; raises ``ConfigError`` listing every problem."""
    environ = os.environ if environ is None else environ
    source = str(path) if path else "configuration"
    raw = _read_yaml(Path(path)) if path else {}
    from_env = _apply_env(raw, environ)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(error, from_env) for error in exc.errors()]) from None
    _check_secret_files(config, source)
    _check_credentials(config, source)
    return config


def _check_credentials(config: Config, source: str) -> None:
    # Imported here: the sources package builds on this module, not the other way round.
    from service.sources.registry import missing_credentials

    problems = missing_credentials(config)
    if problems:
        raise ConfigError(source, problems)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping of keys (database, http, poll, ...)"])
    return data


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Set each ``FLOCKWATCH_A__B`` variable at key path a.b; returns which variable set which path."""
    applied: dict[tuple[str, ...], str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name or name == "FLOCKWATCH_CONFIG":
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = raw
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = None if value == "" else value
        applied[tuple(path)] = name
    return applied


def _describe(error: Mapping[str, Any], from_env: Mapping[tuple[str, ...], str]) -> str:
    loc = tuple(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    origin = next(
        (name for path, name in from_env.items() if path[: len(loc)] == loc or loc[: len(path)] == path), None
    )
    return f"{'.'.join(loc) or '(top level)'}: {message}" + (f" (set by {origin})" if origin else "")


def _check_secret_files(config: Config, source: str) -> None:
    problems = []
    for platform in PLATFORMS:
        settings = config.platforms.of(platform)
        for field in type(settings).model_fields:
            path = getattr(settings, field)
            if field.endswith("_file") and path is not None and not Path(path).is_file():
                problems.append(f"platforms.{platform}.{field}: no such file: {path}")
    if problems:
        raise ConfigError(source, problems)
