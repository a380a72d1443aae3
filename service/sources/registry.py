"""Platform name to source: each one built from its ``platforms.<name>`` settings around a shared HTTP client.

Each source gets its own rate gate, so the budget is kept per (platform, credential); Mastodon keeps one
per instance. ``missing_credentials`` names every platform that has watched accounts but lacks what it
needs, for ``check-config`` and start-up.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from service.clock import Clock
from service.config import Config, PlatformConfig
from service.sources.api import Api
from service.sources.base import Source
from service.sources.bluesky import BlueskySource
from service.sources.github import HEADERS as GITHUB_HEADERS
from service.sources.github import GithubSource
from service.sources.mastodon import MastodonSource
from service.sources.metrics import SourceMetrics
from service.sources.ratelimit import RateGate
from service.sources.twitch import TwitchSource
from service.sources.x import XSource
from service.sources.youtube import YoutubeSource

DEFAULT_BASE_URLS = {
    "x": "https://api.x.com",
    "bluesky": "https://public.api.bsky.app",
    "youtube": "https://www.googleapis.com",
    "twitch": "https://api.twitch.tv",
    "github": "https://api.github.com",
}


@dataclass(frozen=True)
class Credential:
    field: str  # the settings field holding it
    what: str  # what the platform calls it, for the error message


REQUIRED: dict[str, tuple[Credential, ...]] = {
    "x": (Credential("bearer_token", "X needs an app bearer token"),),
    "youtube": (Credential("api_key", "YouTube needs a Data API v3 key"),),
    "twitch": (
        Credential("client_id", "Twitch needs the app's client id"),
        Credential("token", "Twitch needs a user access token"),
    ),
}


class UnsupportedPlatform(Exception):
    pass


class MissingCredential(UnsupportedPlatform):
    """A platform was asked for (a watched account) without the credential its API requires."""


def build_source(
    platform: str,
    settings: PlatformConfig,
    client: httpx.AsyncClient,
    clock: Clock,
    *,
    metrics: SourceMetrics | None = None,
    rng: random.Random | None = None,
) -> Source:
    """The source for ``platform``; credentials are read here (from the value or its ``*_file``)."""
    if platform == "mastodon":
        return MastodonSource(
            client,
            settings.base_url,
            _secret(settings, "token"),
            clock=clock,
            metrics=metrics,
            allow_hosts=settings.allow_hosts,
        )
    if platform not in BUILDERS:
        raise UnsupportedPlatform(f"no source for platform {platform!r}")
    missing = [_describe(platform, c) for c in REQUIRED.get(platform, ()) if not _has(settings, c.field)]
    if missing:
        raise MissingCredential("; ".join(missing))
    gate = RateGate(platform, clock, listener=metrics, rng=rng)
    api = Api(
        platform,
        client,
        settings.base_url or DEFAULT_BASE_URLS[platform],
        gate,
        headers=_headers(platform, settings),
        metrics=metrics,
    )
    return BUILDERS[platform](api)


BUILDERS: dict[str, Callable[[Api], Source]] = {
    "x": XSource,
    "bluesky": BlueskySource,
    "youtube": YoutubeSource,
    "twitch": TwitchSource,
    "github": GithubSource,
}


def _headers(platform: str, settings: PlatformConfig) -> dict[str, str]:
    if platform == "x":
        return {"Authorization": f"Bearer {_secret(settings, 'bearer_token')}"}
    if platform == "youtube":
        return {"X-Goog-Api-Key": _secret(settings, "api_key") or ""}
    if platform == "twitch":
        client_id = getattr(settings, "client_id", None) or ""
        return {"Client-Id": client_id, "Authorization": f"Bearer {_secret(settings, 'token')}"}
    if platform == "github":
        token = _secret(settings, "token")
        return {**GITHUB_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    return {}


def _secret(settings: PlatformConfig, name: str) -> str | None:
    secret = settings.secret(name)
    return secret.get_secret_value() if secret is not None else None


def missing_credentials(config: Config) -> list[str]:
    """One line per credential a watched platform lacks, naming the key and the ways to set it."""
    watched = {entry.account.platform for entry in config.watchlist}
    problems = []
    for platform in sorted(watched & REQUIRED.keys()):
        settings = config.platforms.of(platform)
        for credential in REQUIRED[platform]:
            if not _has(settings, credential.field):
                problems.append(_describe(platform, credential))
    return problems


def _has(settings: PlatformConfig, field: str) -> bool:
    value = getattr(settings, field, None)
    if isinstance(value, str):
        return bool(value.strip())
    try:
        secret = settings.secret(field)
    except OSError:
        return False
    return secret is not None and bool(secret.get_secret_value().strip())


def _describe(platform: str, credential: Credential) -> str:
    key = f"platforms.{platform}.{credential.field}"
    env = f"FLOCKWATCH_PLATFORMS__{platform.upper()}__{credential.field.upper()}"
    if credential.field == "client_id":
        return f"{key}: {credential.what} (set it or {env})"
    return f"{key}: {credential.what} (set it, {credential.field}_file, or {env})"
