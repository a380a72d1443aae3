"""Platform name to source: each built by its own module's ``PLATFORM.build`` from its ``platforms.<name>``
settings around an HTTP client, and wrapped in the ``Edge`` that checks everything it answers.

Each ``Wiring.api`` call gives an endpoint with its own rate gate, so the budget is kept per (platform,
credential, budget): GitHub's REST and GraphQL budgets apart, Mastodon one per instance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from service.clock import Clock
from service.config import PlatformConfig, missing_in
from service.sources.api import Api
from service.sources.base import Source
from service.sources.edge import Edge
from service.sources.metrics import SourceMetrics
from service.sources.platform import Platform, UnknownPlatform, declaration
from service.sources.ratelimit import RateGate


class UnsupportedPlatform(Exception):
    pass


class MissingCredential(UnsupportedPlatform):
    """A platform was asked for (a watched account) without the credential its API requires."""


@dataclass(frozen=True)
class Wiring:
    """What a platform's ``build`` makes its source from."""

    declared: Platform
    settings: PlatformConfig
    client: httpx.AsyncClient
    clock: Clock
    metrics: SourceMetrics | None = None
    rng: random.Random | None = None

    @property
    def base_url(self) -> str:
        return self.settings.base_url or self.declared.base_url

    def credential(self, field: str) -> str | None:
        return self.settings.credential(field)

    def headers(self) -> dict[str, str]:
        """The declared credentials that are set, as the platform wants them sent."""
        fields = (c.field for c in self.declared.credentials)
        return self.declared.headers({f: value for f in fields if (value := self.credential(f)) is not None})

    def gate(self) -> RateGate:
        declared = self.declared
        return RateGate(
            declared.name, self.clock, listener=self.metrics, rng=self.rng, prefixes=declared.rate_headers
        )

    def api(self, base_url: str | None = None, headers: dict[str, str] | None = None) -> Api:
        """An endpoint (``base_url`` by default) with a rate gate of its own, sending the credentials."""
        return Api(
            self.declared.name,
            self.client,
            base_url or self.base_url,
            self.gate(),
            headers=self.headers() if headers is None else headers,
            metrics=self.metrics,
        )


def build_source(
    platform: str,
    settings: PlatformConfig,
    client: httpx.AsyncClient,
    clock: Clock,
    *,
    metrics: SourceMetrics | None = None,
    rng: random.Random | None = None,
) -> Source:
    """The source for ``platform``; credentials are read here (from the value or its ``*_file``).

    Every request of the source ends within the client's longest timeout (``poll.timeout``), all of it.
    """
    try:
        declared = declaration(platform)
    except UnknownPlatform:
        raise UnsupportedPlatform(f"no source for platform {platform!r}") from None
    missing = missing_in(declared, settings)
    if missing:
        raise MissingCredential("; ".join(missing))
    wiring = Wiring(declared, settings, client, clock, metrics, rng)
    return Edge(declared.build(wiring), declared)
