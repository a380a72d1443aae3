"""The configuration file, validated strictly: every problem is named by its key path; a bad file starts nothing.

Environment variables override the file: ``FLOCKWATCH_`` + the key path in capitals joined by ``__``, e.g.
``FLOCKWATCH_DATABASE__URL`` or ``FLOCKWATCH_PLATFORMS__X__BEARER_TOKEN``. Secrets may also be given as
``*_file`` paths (``bearer_token_file``); they are held as ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from service.accounts import PLATFORMS, AccountError, AccountRef
from service.durations import parse_duration
from service.sources.platform import Credential, Platform, declaration, declarations

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
    # How long `run` waits for an unreachable database at start (what it polled before stays in the spool).
    start_timeout: Duration = timedelta(minutes=2)

    _check = field_validator("start_timeout")(_positive)


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


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}


def _size(value: object) -> int:
    """Bytes, written as a number or text like 512MiB, 2GB."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError("a size is a number of bytes or text like 512MiB, 2GB")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise ValueError("must be above zero")
    return size


Size = Annotated[int, BeforeValidator(_size)]


class SpoolConfig(Strict):
    """The local write-ahead spool: polled data is on this disk before it counts as taken."""

    path: Path | None = None  # default: beside a SQLite database, else ./flockwatch-spool.db
    max_size: Size = 2**30  # at the cap, polling pauses until the database takes the backlog


class RetentionConfig(Strict):
    """How long samples are kept at each resolution; rollups are made before raw samples go."""

    raw: Duration = timedelta(days=90)
    hourly: Duration = timedelta(days=180)
    daily: Duration | None = None  # None: kept for ever
    events: Duration = timedelta(days=400)  # account events and ended detections
    every: Duration = timedelta(hours=1)

    _check = field_validator("raw", "hourly", "daily", "events", "every")(_positive)


class StateConfig(Strict):
    """How often each account's detection state is saved (a restart loads it instead of replaying samples)."""

    checkpoint: Duration = timedelta(minutes=15)

    _check = field_validator("checkpoint")(_positive)


class ClusterConfig(Strict):
    """Several daemons on one PostgreSQL database share the watchlist by shards held with advisory locks."""

    shards: int = 64
    heartbeat: Duration = timedelta(seconds=5)
    name: str | None = None  # this replica's name (default: host name and process id)

    _check = field_validator("heartbeat")(_positive)

    @field_validator("shards")
    @classmethod
    def _check_shards(cls, value: int) -> int:
        if not 1 <= value <= 4096:
            raise ValueError("must be between 1 and 4096")
        return value


class ShutdownConfig(Strict):
    """Time to stop on SIGTERM: finish polls, write the spool, save states (keep it under the service
    manager's stop timeout, 60 s in the shipped unit and pod files)."""

    timeout: Duration = timedelta(seconds=45)

    _check = field_validator("timeout")(_positive)


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
    """Settings every platform has. ``base_url`` lets a self-hosted or test server stand in.

    Each platform's own class adds the credentials its declaration names (``Platform.credentials``):
    ``<field>`` and, for a secret, ``<field>_file``.
    """

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

    def credential(self, name: str) -> str | None:
        """A credential's value (a secret read from its file if need be); None when unset or blank."""
        value = getattr(self, name, None)
        if not isinstance(value, str):
            try:
                secret = self.secret(name)
            except (OSError, UnicodeDecodeError):  # check-config names the file (_check_secret_files)
                return None
            value = secret.get_secret_value() if secret is not None else ""
        return value.strip() or None


def settings_class(declared: Platform) -> type[PlatformConfig]:
    """The ``platforms.<name>`` settings of one platform: the common ones and its credentials."""
    fields: dict[str, Any] = {}
    for credential in declared.credentials:
        if credential.secret:
            fields[credential.field] = (SecretStr | None, None)
            fields[f"{credential.field}_file"] = (Path | None, None)
        else:
            fields[credential.field] = (str | None, None)
    return create_model(f"{declared.title.replace(' ', '')}Config", __base__=PlatformConfig, **fields)


SETTINGS: dict[str, type[PlatformConfig]] = {p.name: settings_class(p) for p in declarations()}


class _Platforms(Strict):
    def of(self, platform: str) -> PlatformConfig:
        config: PlatformConfig = getattr(self, platform)
        return config


if TYPE_CHECKING:
    PlatformsConfig = _Platforms
else:  # one key per declared platform, each with its own settings class
    PlatformsConfig = create_model(
        "PlatformsConfig", __base__=_Platforms, **{name: (cls, cls()) for name, cls in SETTINGS.items()}
    )


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
    spool: SpoolConfig = SpoolConfig()
    retention: RetentionConfig = RetentionConfig()
    state: StateConfig = StateConfig()
    cluster: ClusterConfig = ClusterConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
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
    problems = missing_credentials(config)
    if problems:
        raise ConfigError(source, problems)


def missing_credentials(config: Config) -> list[str]:
    """One line per credential a watched platform lacks, naming the key and the ways to set it."""
    watched = sorted({entry.account.platform for entry in config.watchlist})
    return [line for name in watched for line in missing_in(declaration(name), config.platforms.of(name))]


def missing_in(declared: Platform, settings: PlatformConfig) -> list[str]:
    """The required credentials ``settings`` lack, as ``missing_credentials`` says them."""
    return [
        _missing(declared.name, c)
        for c in declared.credentials
        if c.required and settings.credential(c.field) is None
    ]


def _missing(platform: str, credential: Credential) -> str:
    key = f"platforms.{platform}.{credential.field}"
    env = f"FLOCKWATCH_PLATFORMS__{platform.upper()}__{credential.field.upper()}"
    if not credential.secret:
        return f"{key}: {credential.what} (set it or {env})"
    return f"{key}: {credential.what} (set it, {credential.field}_file, or {env})"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"not UTF-8 text (byte {exc.start + 1})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [_yaml_problem(exc)]) from None
    except RecursionError:
        raise ConfigError(str(path), ["nested too deeply to be a configuration"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping of keys (database, http, poll, ...)"])
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where the YAML is broken, by line and column only: the parser's own message quotes the line,
    which may hold an inline secret."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return "not valid YAML (the file's text is not shown: it may hold a secret)"
    return (
        f"not valid YAML at line {mark.line + 1}, column {mark.column + 1} "
        "(the file's text is not shown: it may hold a secret)"
    )


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
            if field.endswith("_file") and path is not None:
                problem = _secret_file_problem(Path(path))
                if problem:
                    problems.append(f"platforms.{platform}.{field}: {problem}: {path}")
    if problems:
        raise ConfigError(source, problems)


def _secret_file_problem(path: Path) -> str | None:
    if not path.is_file():
        return "no such file"
    try:
        path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"cannot read the file ({exc.strerror})"
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None
