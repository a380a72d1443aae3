"""What every detector shares: the observation it reads, the finding it returns, the detection it becomes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, final

if TYPE_CHECKING:
    from service.detection.history import AccountHistory

REGULAR_GROWTH: Final = "regular_growth"
BURST: Final = "burst"
DROP: Final = "drop"
RATE_CHANGE: Final = "rate_change"
CHURN: Final = "churn"
PLATFORM_EVENT: Final = "platform_event"
KINDS: Final = (REGULAR_GROWTH, BURST, DROP, RATE_CHANGE, CHURN, PLATFORM_EVENT)

DAY: Final = 86_400.0


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@final
class Point:
    """One sample, reduced to what detectors read; times are epoch seconds for speed.

    A plain final class: compiled (setup.py), reading its fields is a memory load."""

    __slots__ = ("at", "followers", "following", "step")

    def __init__(self, at: float, followers: int, following: int | None, step: int) -> None:
        self.at = at
        self.followers = followers
        self.following = following
        self.step = step  # precision of the count


@final
class Period:
    """Growth over about a day or more, between two samples: the unit the daily-scale detectors read."""

    __slots__ = ("days", "end", "followers", "following", "following_gain", "gain", "rate", "start", "step")

    def __init__(self, start: Point, end: Point) -> None:
        self.start = start.at  # epoch seconds
        self.end = end.at
        self.gain = end.followers - start.followers
        self.followers = end.followers  # at the end
        self.following = end.following
        self.following_gain = (
            end.following - start.following
            if end.following is not None and start.following is not None
            else None
        )
        self.step = max(start.step, end.step)  # precision of the counts
        self.days = (end.at - start.at) / DAY  # kept because every detector reads it
        self.rate = self.gain / self.days  # gain per day


@dataclass(slots=True)
class Finding:
    """A detector's current verdict on one anomaly; ``ended_at`` set means it is over."""

    kind: str
    started_at: float
    score: float
    severity: Severity
    summary: str
    ended_at: float | None = None


class Detector(ABC):
    """One detector for one account. Called once per sample, in time order; state must stay bounded.

    ``period`` is the daily-scale period this sample closed, or None; ``history`` holds the account's
    recent periods (oldest first), ``period`` excluded. Returns the findings this sample opened,
    changed or ended. A base class rather than a protocol: compiled, the engine's calls go straight to
    the subclass's method.
    """

    def __init__(self, name: str, per_sample: bool) -> None:
        self.name = name
        self.per_sample = per_sample  # False: called only for samples that close a period
        self.score = 0.0  # latest anomaly score in [0, 1], 0 when nothing is going on

    @abstractmethod
    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]: ...


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
