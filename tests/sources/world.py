"""A source pointed at its fake platform, sharing one manual clock, and helpers to read its answers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from prometheus_client import CollectorRegistry

from service.clock import ManualClock
from service.sources.base import AccountProblem, FetchResult, Observation, Source, SourceError, Target
from service.sources.metrics import SourceMetrics
from service.sources.registry import build_source
from tests.fakes.catalog import FAKES
from tests.fakes.server import FakePlatform

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SECRET = "tok-SECRET-9f8e7d6c5b4a3210"
CLIENT_TIMEOUT = 1.0  # well under the fake's slow answer (2 s), and what a loaded machine still meets

Answer = Mapping[Target, FetchResult] | SourceError


@dataclass
class World:
    platform: str
    fake: FakePlatform
    source: Source
    clock: ManualClock
    registry: CollectorRegistry

    async def fetch(self, *targets: Target) -> Answer:
        """The source's answer, or the ``SourceError`` it raised (a failure is an answer too)."""
        try:
            return await self.source.fetch(list(targets))
        except SourceError as exc:
            return exc

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"platform": self.platform, **labels})


@asynccontextmanager
async def open_world(case: str, secret: str = SECRET) -> AsyncIterator[World]:
    """A source and its fake platform; ``case`` names the fake (``FAKES``), e.g. ``github-repositories``."""
    clock = ManualClock(START)
    fake = FAKES[case](clock, secret)
    platform = fake.platform
    await fake.start()
    registry = CollectorRegistry()
    try:
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
            source = build_source(
                platform,
                fake.settings(),
                client,
                clock,
                metrics=SourceMetrics(registry),
                rng=random.Random(7),
            )
            yield World(platform, fake, source, clock, registry)
    finally:
        await fake.stop()


def observation(answer: Answer, target: Target) -> Observation:
    assert not isinstance(answer, SourceError), f"the whole request failed: {answer.message}"
    result = answer.get(target)
    assert isinstance(result, Observation), f"expected a sample for {target}, got {result}"
    return result


def problem(answer: Answer, target: Target) -> AccountProblem:
    assert not isinstance(answer, SourceError), f"the whole request failed: {answer.message}"
    result = answer.get(target)
    assert isinstance(result, AccountProblem), f"expected a problem for {target}, got {result}"
    return result


def failure_kind(answer: Answer, target: Target) -> str | None:
    """How the account's poll failed: the whole request (``SourceError``) or the account alone."""
    if isinstance(answer, SourceError):
        return answer.kind
    result = answer.get(target)
    if isinstance(result, AccountProblem):
        return result.kind
    return None if result is None else "observed"


def no_sample(answer: Answer, target: Target) -> bool:
    return isinstance(answer, SourceError) or not isinstance(answer.get(target), Observation)
