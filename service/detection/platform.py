"""Platform-wide events: many watched accounts on one platform losing followers at the same time.

Each account's drop detector raises a *signal* on a loss that is unusual for that account. When at least
three accounts, and at least 30% of the platform's recently seen accounts, signal within 36 hours, the
platform had a purge (or a counting change): one detection for ``platform:*``, and the accounts' own drop
detections in that window are marked as explained by it instead of alerting as their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from service.detection.base import (
    DAY,
    DROP,
    PLATFORM_EVENT,
    Detection,
    Severity,
    load_detection,
    save_detection,
    to_datetime,
)
from service.detection.snapshot import StateReader, StateWriter
from service.detection.stats import median, percent

WINDOW: Final = 1.5 * DAY
MIN_ACCOUNTS: Final = 3
MIN_SHARE: Final = 0.3
ACTIVE_WITHIN: Final = 7 * DAY
DETECTOR: Final = "platform_event"


@dataclass
class _Platform:
    seen: dict[str, float] = field(default_factory=dict)  # account -> last sample time
    signals: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # (start, end, change)
    drops: dict[str, Detection] = field(default_factory=dict)  # recent own drop detections, per account
    event: Detection | None = None
    last_signal: float = 0.0
    _active: tuple[float, int] = (-1e18, 0)  # (when counted, how many)

    def active(self, now: float) -> int:
        """Accounts seen in the last week; recounted at most hourly, as it moves slowly."""
        counted_at, count = self._active
        if now - counted_at >= 3_600.0:
            count = sum(1 for t in self.seen.values() if t >= now - ACTIVE_WITHIN)
            self._active = (now, count)
        return count

    def save(self, out: StateWriter) -> None:
        out.integer(len(self.seen))
        for account, at in self.seen.items():
            out.text(account)
            out.number(at)
        out.integer(len(self.signals))
        for account, (start, end, change) in self.signals.items():
            out.text(account)
            for value in (start, end, change):
                out.number(value)
        out.integer(len(self.drops))
        for drop in self.drops.values():
            save_detection(out, drop)
        out.flag(self.event is not None)
        if self.event is not None:
            save_detection(out, self.event)
        out.number(self.last_signal)
        out.number(self._active[0])
        out.integer(self._active[1])

    @staticmethod
    def load(state: StateReader) -> _Platform:
        platform = _Platform()
        for _ in range(state.count(1 << 30)):
            account = state.text()
            platform.seen[account] = state.number()
        for _ in range(state.count(1 << 30)):
            account = state.text()
            platform.signals[account] = (state.number(), state.number(), state.number())
        for _ in range(state.count(1 << 30)):
            drop = load_detection(state)
            platform.drops[drop.account] = drop
        platform.event = load_detection(state) if state.flag() else None
        platform.last_signal = state.number()
        platform._active = (state.number(), state.integer())
        return platform


class PlatformWatch:
    def __init__(self) -> None:
        self._platforms: dict[str, _Platform] = {}

    def saw(self, platform: str, account: str, at: float) -> list[Detection]:
        state = self._platforms.get(platform)
        if state is None:
            state = self._platforms[platform] = _Platform()
        state.seen[account] = at
        event = state.event
        if event is None:
            return []
        if at - state.last_signal > 2 * WINDOW:
            event.ended_at = to_datetime(state.last_signal)
            event.updated_at = to_datetime(at)
            state.event = None
            return [event]
        return []

    def signal(self, platform: str, account: str, signal: tuple[float, float, float]) -> list[Detection]:
        state = self._platforms[platform]
        now = signal[1]
        state.signals[account] = signal
        state.last_signal = now
        for name in [a for a, s in state.signals.items() if s[1] < now - WINDOW]:
            del state.signals[name]
        active = state.active(now)
        if len(state.signals) < max(MIN_ACCOUNTS, MIN_SHARE * active):
            return []
        changes = [s[2] for s in state.signals.values()]
        summary = (
            f"{len(changes)} of {active} watched {platform} accounts lost followers within 36 hours "
            f"(median {percent(median(changes))}): a platform-wide purge or count correction"
        )
        if state.event is None:
            started = to_datetime(min(s[0] for s in state.signals.values()))
            state.event = Detection(
                platform,
                f"{platform}:*",
                PLATFORM_EVENT,
                DETECTOR,
                started,
                to_datetime(now),
                None,
                min(1.0, len(changes) / max(active, 1)),
                Severity.WARNING,
                summary,
                key=f"{platform}:*|{DETECTOR}|{PLATFORM_EVENT}|{int(now)}",
            )
        else:
            state.event.summary = summary
            state.event.score = min(1.0, len(changes) / max(active, 1))
        state.event.updated_at = to_datetime(now)
        return [state.event, *self._explain_all(state)]

    def save(self, out: StateWriter) -> None:
        out.integer(len(self._platforms))
        for name, platform in self._platforms.items():
            out.text(name)
            platform.save(out)

    def load(self, state: StateReader) -> None:
        platforms = {}
        for _ in range(state.count(1 << 16)):
            name = state.text()
            platforms[name] = _Platform.load(state)
        self._platforms = platforms

    def share(self, platform: str, account: str, open_detections: list[Detection]) -> None:
        """After a restore: the account's open drop and the watch's note of it become one object again,
        as they were before the snapshot (explaining the drop must change the account's detection)."""
        state = self._platforms.get(platform)
        noted = state.drops.get(account) if state is not None else None
        if state is None or noted is None:
            return
        for detection in open_detections:
            if detection.key == noted.key:
                state.drops[account] = detection

    def own_drop(self, detection: Detection) -> None:
        """Note an account's drop; explain it at once when an event is going on."""
        state = self._platforms.setdefault(detection.platform, _Platform())
        state.drops[detection.account] = detection
        if state.event is not None:
            _explain(detection, state.event)

    def _explain_all(self, state: _Platform) -> list[Detection]:
        assert state.event is not None
        earliest = state.event.started_at.timestamp() - WINDOW
        changed = []
        for name, drop in list(state.drops.items()):
            # A drop found around the event is its doing, even if its losing streak began a little earlier.
            if drop.detected_at.timestamp() < earliest:
                del state.drops[name]
            elif drop.explained_by is None:
                _explain(drop, state.event)
                changed.append(drop)
        return changed


def _explain(drop: Detection, event: Detection) -> None:
    if drop.kind != DROP or drop.explained_by is not None:
        return
    drop.explained_by = event.key
    drop.severity = Severity.INFO
    drop.summary += explanation(event.platform)


def explanation(platform: str) -> str:
    return f"; explained by a platform-wide event on {platform}"
