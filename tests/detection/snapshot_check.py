"""Snapshot exactness over generated histories, importable by the tests and runnable in a child process.

Every world of bench/scenarios.py (a platform cohort shares one engine; other series are alone) is replayed
twice: once straight through one engine, and once through a chain of engines, each restored from the
previous one's snapshots (every account and the platform watch) at random cut points and fed the rest. The
chain must report exactly what the straight engine reports, sample for sample, and end with the same
scores; with ``--compact`` the chain's engines keep accounts as bytes between samples, as the daemon's does.
``python -m tests.detection.snapshot_check SEED [--compact]`` prints the result as JSON, so the test can run
it against the interpreted modules too.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import zlib
from collections import defaultdict
from typing import Any

from bench.engine_run import to_samples
from bench.scenarios import Series, Sizes, generate
from service.accounts import AccountRef
from service.detection.base import Detection
from service.detection.engine import DetectionEngine
from service.samples import Sample

SIZES = Sizes(16, 6, 3, 6, 4, 8, 6, 6, 3, 3, 3, 3, 3, 3, 5, 3, 2)
Seen = list[tuple[Any, ...]]


def _said(detections: list[Detection]) -> Seen:
    return [(sorted(d.public().items()), d.key, d.explained_by) for d in detections]


def _fields(blob: bytes | None) -> bytes:
    """What a snapshot holds, whatever zlib level compressed it."""
    return zlib.decompress(blob[5:]) if blob else b"-"


def _hop(
    engine: DetectionEngine, refs: list[AccountRef], rng: random.Random, digest: Any, compact: bool
) -> DetectionEngine:
    """A fresh engine holding ``engine``'s state, restored in a random order."""
    blobs = [(ref, engine.snapshot(ref)) for ref in refs]
    platforms = engine.platform_snapshot()
    for _, blob in blobs:
        digest.update(_fields(blob))
    digest.update(_fields(platforms))
    fresh = DetectionEngine(compact=compact)
    platforms_first = rng.random() < 0.5
    if platforms_first:
        fresh.restore_platforms(platforms)
    rng.shuffle(blobs)
    for ref, blob in blobs:
        if blob is not None:
            fresh.restore(ref, blob)
    if not platforms_first:
        fresh.restore_platforms(platforms)
    return fresh


def _world(samples: list[Sample], rng: random.Random, digest: Any, compact: bool) -> tuple[int, int]:
    """(samples whose detections differ, restores) for one world."""
    refs = sorted({s.account for s in samples})
    cuts = set(rng.sample(range(1, len(samples)), k=min(3, len(samples) - 1)))
    straight, chained = DetectionEngine(), DetectionEngine(compact=compact)
    differences = restores = 0
    for index, sample in enumerate(samples):
        if index in cuts:
            chained = _hop(chained, refs, rng, digest, compact)
            restores += len(refs)
        differences += _said(straight.observe(sample)) != _said(chained.observe(sample))
    differences += sorted(straight.scores()) != sorted(chained.scores())
    differences += _said(straight.flush()) != _said(chained.flush())
    differences += [_fields(chained.snapshot(ref)) for ref in refs] != [
        _fields(straight.snapshot(ref)) for ref in refs
    ]
    return differences, restores


def check(seed: int, compact: bool = False) -> dict[str, Any]:
    """The chain's engines are compact ones (accounts kept as bytes between samples) when ``compact``."""
    worlds: dict[str, list[Series]] = defaultdict(list)
    for s in generate(seed, SIZES):
        worlds[s.world].append(s)
    rng = random.Random(seed)
    digest = hashlib.sha256()
    differences = restores = samples = 0
    for members in worlds.values():
        batch = to_samples(members)
        different, restored = _world(batch, rng, digest, compact)
        differences += different
        restores += restored
        samples += len(batch)
    return {
        "worlds": len(worlds),
        "samples": samples,
        "restores": restores,
        "differences": differences,
        "digest": digest.hexdigest(),
    }


if __name__ == "__main__":
    print(json.dumps(check(int(sys.argv[1]), compact="--compact" in sys.argv[2:])))
