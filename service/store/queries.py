"""What ``flockwatch status`` and ``flockwatch detections`` ask the store for: filters, sort, limit.

Plain data, cheap to import (the command line reads the choices from here without loading SQLAlchemy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SEVERITIES: Final = ("info", "warning", "critical")
STATUS_SORTS: Final = ("score", "change-24h", "change-7d", "growth-24h", "growth-7d", "followers", "account")
DETECTION_SORTS: Final = ("detected", "started", "score", "account")


@dataclass(frozen=True)
class StatusQuery:
    platform: str | None = None
    states: tuple[str, ...] = ()
    kind: str | None = None  # only ongoing detections of this kind count (score, --active)
    severity: str | None = None  # ... and only those at least this severe
    active: bool = False  # only accounts with an ongoing detection that counts
    sort: str = "score"
    reverse: bool = False
    limit: int | None = 50  # None: all


@dataclass(frozen=True)
class DetectionQuery:
    account: str | None = None  # platform:handle
    platform: str | None = None
    kind: str | None = None
    severity: str | None = None  # at least this severe
    active: bool = False
    sort: str = "detected"
    reverse: bool = False
    limit: int | None = 50


def at_least(severity: str | None) -> tuple[str, ...]:
    """The severities at least as severe as ``severity`` (all of them for None)."""
    return SEVERITIES if severity is None else SEVERITIES[SEVERITIES.index(severity) :]
