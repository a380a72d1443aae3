"""The anomaly-score page: the same text prometheus-client would write, re-formatted only where scores moved."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest

from service.accounts import AccountRef
from service.detection.engine import DetectionEngine
from service.detection.metrics import ScoreCollector, ScoreExposition
from tests.detection.helpers import START, organic_gains, series


def _reference_page(engine: DetectionEngine) -> bytes:
    registry = CollectorRegistry()
    registry.register(ScoreCollector(engine))
    return generate_latest(registry)


def _engine_with(accounts: list[str], drip_for: str) -> DetectionEngine:
    engine = DetectionEngine()
    for name in accounts:
        gains = organic_gains(30, 20) + ([768] * 8 if name == drip_for else organic_gains(8, 20))
        for sample in series(name, gains):
            engine.observe(sample)
    return engine


def test_the_page_is_what_prometheus_client_writes() -> None:
    engine = _engine_with(["mastodon:someone@x.social", "x:plain", "github:drip"], drip_for="github:drip")
    page = ScoreExposition(engine).render()
    assert page == _reference_page(engine)
    assert dict(engine.scores_of(AccountRef("github", "drip")))["regular_growth"] >= 0.8


def test_it_follows_new_scores_and_forgotten_accounts() -> None:
    engine = _engine_with(["x:one", "x:two"], drip_for="none")
    exposition = ScoreExposition(engine)
    first = exposition.render()
    for sample in series("x:two", [768] * 10, start=START + timedelta(days=40), first=60_000):
        engine.observe(sample)
    engine.keep_only({AccountRef("x", "two")})
    second = exposition.render()
    assert second == _reference_page(engine)
    assert second != first and b'account="one"' not in second
