"""Series builders and engine runners shared by the detection tests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from service.accounts import AccountRef
from service.detection.base import Detection
from service.detection.engine import DetectionEngine
from service.samples import Sample

START = datetime(2026, 3, 1, tzinfo=UTC)


def series(
    account: str,
    gains: Sequence[int],
    start: datetime = START,
    every: timedelta = timedelta(days=1),
    first: int = 10_000,
    step: int = 1,
    following: Sequence[int] | None = None,
) -> list[Sample]:
    """Samples of one account: ``first`` followers, then one gain per interval."""
    ref = AccountRef.parse(account)
    count = first
    out = [Sample(ref, start, first, following[0] if following else None, None, step)]
    for i, gain in enumerate(gains, 1):
        count += gain
        shown = count // step * step
        out.append(Sample(ref, start + i * every, shown, following[i] if following else None, None, step))
    return out


def organic_gains(days: int, mean: float, cv: float = 0.4, seed: int = 1) -> list[int]:
    """Over-dispersed daily gains with a weekly rhythm: what a real account does."""
    rng = random.Random(seed)
    return [
        max(0, round(rng.lognormvariate(0, cv) * mean * (1 + 0.2 * ((d % 7) in (5, 6))))) for d in range(days)
    ]


def run(samples: Sequence[Sample], engine: DetectionEngine | None = None) -> list[Detection]:
    """Every distinct detection the engine reported, in its final state."""
    engine = engine or DetectionEngine()
    seen: dict[int, Detection] = {}
    for sample in sorted(samples, key=lambda s: s.observed_at):
        for detection in engine.observe(sample):
            seen[id(detection)] = detection
    return list(seen.values())


def of_kind(detections: Sequence[Detection], kind: str) -> list[Detection]:
    return [d for d in detections if d.kind == kind]
