"""Replaying generated series through flockwatch's streaming engine, timed."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

from bench.scenarios import Series
from bench.scoring import Flag
from service.accounts import AccountRef
from service.detection.base import Detection
from service.detection.engine import DetectionEngine
from service.samples import Sample


def to_samples(series: list[Series]) -> list[Sample]:
    out = []
    for s in series:
        ref = AccountRef.parse(s.account)
        following = s.following.tolist() if s.following is not None else [None] * len(s.times)
        for at, count, step, follow in zip(
            s.times.tolist(), s.followers.tolist(), s.step.tolist(), following, strict=True
        ):
            out.append(Sample(ref, datetime.fromtimestamp(at, UTC), count, follow, None, step))
    out.sort(key=lambda x: x.observed_at)
    return out


def run_engine(series: list[Series]) -> tuple[list[Detection], int, float]:
    """All final detections, the number of samples and the seconds spent inside the engine."""
    worlds: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        worlds[s.world].append(s)
    detections: dict[int, Detection] = {}
    samples = 0
    elapsed = 0.0
    for members in worlds.values():
        batch = to_samples(members)
        engine = DetectionEngine()
        started = time.process_time()  # CPU time: the target is per core, and the machine may be shared
        for item in batch:
            for detection in engine.observe(item):
                detections[id(detection)] = detection
        elapsed += time.process_time() - started
        samples += len(batch)
    return list(detections.values()), samples, elapsed


def flags(detections: list[Detection]) -> list[Flag]:
    return [
        Flag(d.account, d.kind, d.detected_at.timestamp(), str(d.severity), d.explained_by is not None)
        for d in detections
    ]
