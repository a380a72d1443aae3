"""One module per detector; ``all_detectors`` builds the set one account needs."""

from __future__ import annotations

from typing import Final

from service.detection.base import Detector
from service.detection.detectors.burst import BurstDetector
from service.detection.detectors.churn import ChurnDetector
from service.detection.detectors.drop import DropDetector
from service.detection.detectors.rate_change import RateChangeDetector
from service.detection.detectors.regular_growth import RegularGrowthDetector

DETECTOR_NAMES: Final = ("regular_growth", "burst", "drop", "rate_change", "churn")


def all_detectors() -> list[Detector]:
    return [
        RegularGrowthDetector(),
        BurstDetector(),
        DropDetector(),
        RateChangeDetector(),
        ChurnDetector(),
    ]
