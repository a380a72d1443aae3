"""What every detector shares: the observation it reads, the finding it returns, the detection it becomes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, final

from service.detection.snapshot import SnapshotError, StateReader, StateWriter

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

    def __init__(
        self,
        start: float,
        end: float,
        followers_before: int,
        followers: int,
        step: int,
        following: int | None = None,
        following_before: int | None = None,
    ) -> None:
        self.start = start  # epoch seconds
        self.end = end
        self.gain = followers - followers_before
        self.followers = followers  # at the end
        self.following = following
        self.following_gain = (
            following - following_before if following is not None and following_before is not None else None
        )
        self.step = step  # precision of the counts
        self.days = (end - start) / DAY  # kept because every detector reads it
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

    def save(self, out: StateWriter) -> None:
        """Write the detector's whole state (see service/detection/snapshot.py); ``load`` reads it back."""
        out.number(self.score)

    def load(self, state: StateReader) -> None:
        self.score = state.number()


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


SEVERITIES: Final = tuple(Severity)


def save_period(out: StateWriter, period: Period) -> None:
    out.number(period.start)
    out.number(period.end)
    out.integer(period.followers - period.gain)
    out.integer(period.followers)
    out.integer(period.step)
    out.optional_integer(period.following)
    gain = period.following_gain
    out.optional_integer(None if gain is None or period.following is None else period.following - gain)


def load_period(state: StateReader) -> Period:
    start, end = state.number(), state.number()
    before, followers, step = state.integer(), state.integer(), state.integer()
    return Period(start, end, before, followers, step, state.optional_integer(), state.optional_integer())


def save_finding(out: StateWriter, finding: Finding | None) -> None:
    out.flag(finding is not None)
    if finding is not None:
        out.text(finding.kind)
        out.number(finding.started_at)
        out.number(finding.score)
        out.integer(SEVERITIES.index(finding.severity))
        out.text(finding.summary)
        out.optional_number(finding.ended_at)


def load_finding(state: StateReader) -> Finding | None:
    if not state.flag():
        return None
    kind, started_at, score = state.text(), state.number(), state.number()
    severity, summary = load_severity(state), state.text()
    return Finding(kind, started_at, score, severity, summary, state.optional_number())


def load_severity(state: StateReader) -> Severity:
    index = state.integer()
    if not 0 <= index < len(SEVERITIES):
        raise SnapshotError(f"snapshot severity out of range ({index})")
    return SEVERITIES[index]


def save_detection(out: StateWriter, detection: Detection) -> None:
    out.text(detection.platform)
    out.text(detection.account)
    out.text(detection.kind)
    out.text(detection.detector)
    out.time(detection.started_at)
    out.time(detection.detected_at)
    out.optional_time(detection.ended_at)
    out.number(detection.score)
    out.integer(SEVERITIES.index(detection.severity))
    out.text(detection.summary)
    out.text(detection.key)
    out.optional_text(detection.explained_by)
    out.optional_time(detection.updated_at)


def load_detection(state: StateReader) -> Detection:
    platform, account, kind, detector = state.text(), state.text(), state.text(), state.text()
    started_at, detected_at, ended_at = state.time(), state.time(), state.optional_time()
    score, severity, summary = state.number(), load_severity(state), state.text()
    key, explained_by, updated_at = state.text(), state.optional_text(), state.optional_time()
    return Detection(
        platform,
        account,
        kind,
        detector,
        started_at,
        detected_at,
        ended_at,
        score,
        severity,
        summary,
        key,
        explained_by,
        updated_at,
    )
