"""Replaying a history through the engine, as ``flockwatch backtest`` does: no database, no network."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final

from service.detection.base import DAY, Detection
from service.detection.csvinput import Record
from service.detection.engine import DetectionEngine
from service.samples import Sample

# An ended detection can still be explained by a platform event found a little later; after this long
# past its end nothing can change it any more, so it is final.
FINAL_AFTER: Final = 2 * DAY
PROGRESS_EVERY: Final = 200_000


def replay(
    samples: Sequence[Sample],
    engine: DetectionEngine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Detection]:
    """Yield each detection once, when it is final: ended long enough ago, or still open at the end."""
    engine = engine or DetectionEngine()
    ended: dict[int, Detection] = {}
    for done, sample in enumerate(samples, 1):
        for detection in engine.observe(sample):
            if detection.ended_at is not None:
                ended[id(detection)] = detection
        if done % 1000 == 0:
            now = sample.observed_at.timestamp()
            yield from _final(ended, now)
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done, len(samples))
    yield from _final(ended, float("inf"))
    yield from sorted(engine.flush(), key=lambda d: (d.detected_at, d.account, d.kind))


def replay_records(
    records: list[Record],
    engine: DetectionEngine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Detection]:
    """``replay`` for rows read by ``read_records``: the same detections in the same order, without a
    Sample per row (counts from a CSV are exact: step 1)."""
    engine = engine or DetectionEngine()
    ended: dict[int, Detection] = {}
    total = len(records)
    for index in range(total):  # an index loop: compiled, enumerate() would be a generic iterator
        at, _, _, ref, followers, following = records[index]
        done = index + 1
        changed = engine.observe_values(ref, at, followers, following, 1)  # a direct call when compiled
        if changed:
            for detection in changed:
                if detection.ended_at is not None:
                    ended[id(detection)] = detection
        if done % 1000 == 0:
            yield from _final(ended, at)
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, total)
    yield from _final(ended, float("inf"))
    yield from sorted(engine.flush(), key=lambda d: (d.detected_at, d.account, d.kind))


def _final(ended: dict[int, Detection], now: float) -> Iterator[Detection]:
    done = [k for k, d in ended.items() if d.ended_at and d.ended_at.timestamp() + FINAL_AFTER < now]
    for key in sorted(done, key=lambda k: ended[k].detected_at):
        yield ended.pop(key)
