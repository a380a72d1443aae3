"""One module per detector; ``all_detectors`` builds the set one account needs."""

from __future__ import annotations

from typing import Final

from service.accounts import AccountRef, count_noun, is_repository
from service.detection.base import Detector
from service.detection.detectors.burst import BurstDetector
from service.detection.detectors.churn import ChurnDetector
from service.detection.detectors.drop import DropDetector
from service.detection.detectors.rate_change import RateChangeDetector
from service.detection.detectors.regular_growth import RegularGrowthDetector

DETECTOR_NAMES: Final = ("regular_growth", "burst", "drop", "rate_change", "churn")


def all_detectors(ref: AccountRef | None = None) -> list[Detector]:
    """The detectors of one account. A repository's count is stars, and its following and posts columns
    hold watchers and forks: no churn detector for it."""
    noun = count_noun(ref) if ref is not None else "followers"
    burst = BurstDetector(noun)
    detectors: list[Detector] = [
        RegularGrowthDetector(noun, burst.recent),  # reads the burst detector's raw samples of the last hours
        burst,
        DropDetector(noun),
        RateChangeDetector(noun),
    ]
    if ref is None or not is_repository(ref):
        detectors.append(ChurnDetector())
    return detectors
