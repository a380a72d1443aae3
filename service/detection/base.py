"""What every detector shares: the observation it reads, the finding it returns, the detection it becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

REGULAR_GROWTH = "regular_growth"
BURST = "burst"
DROP = "drop"
RATE_CHANGE = "rate_change"
CHURN = "churn"
PLATFORM_EVENT = "platform_event"
KINDS = (REGULAR_GROWTH, BURST, DROP, RATE_CHANGE, CHURN, PLATFORM_EVENT)

DAY = 86_400.0


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Point(NamedTuple):
    """One sample, reduced to what detectors read; times are epoch seconds for speed."""

    at: float
    followers: int
    following: int | None
    step: int


class Period(NamedTuple):
    """Growth over about a day or more, between two samples: the unit the daily-scale detectors read.

    A named tuple rather than a frozen dataclass: one is made per account and day, and tuples are built
    several times faster."""

    start: float  # epoch seconds
    end: float
    gain: int
    followers: int  # at the end
    following_gain: int | None
    following: int | None
    step: int  # precision of the counts
    days: float  # (end - start) in days, kept because every detector reads it
    rate: float  # gain per day


def make_period(start: Point, end: Point) -> Period:
    following_gain = None
    if end.following is not None and start.following is not None:
        following_gain = end.following - start.following
    days = (end.at - start.at) / DAY
    gain = end.followers - start.followers
    return Period(
        start.at,
        end.at,
        gain,
        end.followers,
        following_gain,
        end.following,
        max(start.step, end.step),
        days,
        gain / days,
    )


@dataclass(slots=True)
class Finding:
    """A detector's current verdict on one anomaly; ``ended_at`` set means it is over."""

    kind: str
    started_at: float
    score: float
    severity: Severity
    summary: str
    ended_at: float | None = None


class Detector(Protocol):
    """One detector for one account. Called once per sample, in time order; state must stay bounded.

    ``period`` is the daily-scale period this sample closed, or None; ``history`` holds the account's
    recent periods (oldest first), ``period`` excluded. Returns the findings this sample opened,
    changed or ended.
    """

    name: str
    score: float  # latest anomaly score in [0, 1], 0 when nothing is going on
    per_sample: bool  # False: called only for samples that close a period (period is never None)

    def observe(self, point: Point, period: Period | None, history: PeriodHistory) -> list[Finding]: ...


class PeriodHistory(Protocol):
    def rates(self, last: int) -> list[float]: ...
    def periods(self, last: int) -> list[Period]: ...
    def __len__(self) -> int: ...


@dataclass(slots=True)
class Detection:
    """An anomaly as stored, listed and exported. ``key`` identifies it while it is open."""

    platform: str
    account: str  # platform:handle, or platform:* for a platform event
    kind: str
    detector: str
    started_at: datetime
    detected_at: datetime
    ended_at: datetime | None
    score: float
    severity: Severity
    summary: str
    key: str = ""
    explained_by: str | None = None  # key of the platform event that explains it
    updated_at: datetime | None = field(default=None)

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def public(self) -> dict[str, Any]:
        """The exact fields of the backtest JSON output."""
        return {
            "platform": self.platform,
            "account": self.account,
            "kind": self.kind,
            "detector": self.detector,
            "started_at": iso(self.started_at),
            "detected_at": iso(self.detected_at),
            "ended_at": iso(self.ended_at) if self.ended_at else None,
            "score": round(self.score, 4),
            "severity": str(self.severity),
            "summary": self.summary,
        }


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
