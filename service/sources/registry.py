"""Platform name → its source, built from that platform's configuration."""

from __future__ import annotations

import httpx

from service.clock import Clock
from service.config import PlatformConfig
from service.sources.base import Source
from service.sources.mastodon import MastodonSource


class UnsupportedPlatform(Exception):
    pass


def build_source(platform: str, settings: PlatformConfig, client: httpx.AsyncClient, clock: Clock) -> Source:
    if platform == "mastodon":
        token = settings.secret("token")
        return MastodonSource(client, settings.base_url, token.get_secret_value() if token else None)
    raise UnsupportedPlatform(f"flockwatch cannot poll {platform} accounts yet")
