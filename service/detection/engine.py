"""The streaming engine: one sample in, the detections it opened, changed or ended out.

Backtest, import and the daemon all run this. Per account it keeps the period history and one instance of
every detector, all bounded; across accounts it keeps the platform watch. Samples of one account must come
in time order; an older or duplicate sample of an account is ignored.

An account's whole state can be taken out as bytes (``snapshot``) and put back (``restore``), into this
engine or another one, so a restart or a second replica loads it instead of replaying raw samples; the
platform watch likewise (``platform_snapshot``, ``restore_platforms``). The format is in snapshot.py.

A daemon watching a fleet builds the engine with ``compact=True``: between two samples an account is then held
as its snapshot (a few hundred bytes to 2 KB, compressed) with its scores, newest point and open detections,
instead of as live detectors (several KB each). A sample wakes the account, the detectors read it, and it goes
back to sleep. That costs tens of microseconds per sample, which a poll every few minutes can afford and a
backtest of millions of rows cannot: replays use the default.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Set
from typing import final

from service.accounts import AccountRef
from service.detection.base import (
    DROP,
    Detection,
    Detector,
    Finding,
    Point,
    load_detection,
    save_detection,
    to_datetime,
)
from service.detection.detectors import all_detectors
from service.detection.detectors.drop import DropDetector
from service.detection.history import AccountHistory
from service.detection.platform import PlatformWatch, explanation
from service.detection.snapshot import SnapshotError, StateReader, StateWriter
from service.samples import Sample

__all__ = ["DetectionEngine", "SnapshotError"]

SLEEP_LEVEL = 1  # zlib level of a compact engine's sleeping accounts: put to sleep after every sample


@final
class _Account:
    __slots__ = ("detectors", "drop", "history", "name", "open", "per_sample", "platform", "ref")

    detectors: tuple[Detector, ...]
    per_sample: tuple[Detector, ...]

    def __init__(self, ref: AccountRef, detectors: list[Detector]) -> None:
        self.ref = ref
        self.name = str(ref)  # platform:handle
        self.platform = ref.platform
        self.detectors = tuple(detectors)
        self.per_sample = tuple(d for d in detectors if d.per_sample)  # read samples between period closes
        # The detector whose losses feed the platform watch.
        self.drop = next((d for d in detectors if isinstance(d, DropDetector)), None)
        self.history = AccountHistory()
        # (detector, kind) -> open detection; None while there is none, as for most accounts most of the time
        self.open: dict[tuple[str, str], Detection] | None = None

    def opened(self) -> list[Detection]:
        return list(self.open.values()) if self.open else []

    def newest(self) -> Point | None:
        return self.history.last

    def scored(self) -> Iterator[tuple[str, float]]:
        for detector in self.detectors:
            yield detector.name, detector.score

    def keep_open(self, key: tuple[str, str], detection: Detection) -> None:
        if self.open is None:
            self.open = {}
        self.open[key] = detection

    def close(self, key: tuple[str, str]) -> None:
        if self.open is not None:
            self.open.pop(key, None)
            if not self.open:
                self.open = None

    def save(self, out: StateWriter) -> None:
        out.text(self.name)
        out.integer(_layout(self.detectors))
        self.history.save(out)
        for detector in self.detectors:
            detector.save(out)
        opened = self.opened()
        out.integer(len(opened))
        for detection in opened:
            save_detection(out, detection)

    def load(self, state: StateReader) -> None:
        if state.text() != self.name or state.integer() != _layout(self.detectors):
            raise SnapshotError(f"snapshot is not of {self.name} with these detectors")
        self.history.load(state)
        for detector in self.detectors:
            detector.load(state)
        for _ in range(state.count(64)):
            detection = load_detection(state)
            self.keep_open((detection.detector, detection.kind), detection)
        state.done()


@final
class _Sleeping:
    """An account between two samples in a compact engine: its state as snapshot bytes, and what readers ask
    for without waking it. ``open`` keeps the very Detection objects the platform watch and callers hold."""

    __slots__ = ("last", "names", "open", "ref", "scores", "state")

    def __init__(self, account: _Account, names: tuple[str, ...], state: bytes) -> None:
        self.ref = account.ref
        self.state = state
        self.last = account.history.last
        self.names = names
        self.scores = tuple([detector.score for detector in account.detectors])
        self.open = account.open

    def opened(self) -> list[Detection]:
        return list(self.open.values()) if self.open else []

    def newest(self) -> Point | None:
        return self.last

    def scored(self) -> Iterator[tuple[str, float]]:
        return zip(self.names, self.scores, strict=True)


_Held = _Account | _Sleeping  # what the engine holds of an account: live detectors, or asleep as bytes


def _wake(ref: AccountRef, sleeping: _Sleeping, detectors: list[Detector]) -> _Account:
    account = _Account(ref, detectors)
    account.load(StateReader(sleeping.state))
    account.open = sleeping.open  # the same objects, not the copies the snapshot holds
    return account


def _layout(detectors: tuple[Detector, ...]) -> int:
    """Which detectors, in which order, a snapshot holds the state of."""
    return zlib.crc32(",".join(d.name for d in detectors).encode())


class DetectionEngine:
    def __init__(
        self, detectors: Callable[[AccountRef], list[Detector]] = all_detectors, compact: bool = False
    ) -> None:
        self._make_detectors = detectors
        self._compact = compact
        self._accounts: dict[AccountRef, _Held] = {}  # a compact engine's are asleep between samples
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple of detector names per layout
        self._by_identity: dict[int, _Account] = {}  # id(account.ref) -> account
        self._platforms = PlatformWatch()

    def observe(self, sample: Sample) -> list[Detection]:
        return self.observe_values(
            sample.account,
            sample.observed_at.timestamp(),
            sample.followers,
            sample.following,
            sample.followers_step,
        )

    def observe_values(
        self, ref: AccountRef, at: float, followers: int, following: int | None = None, step: int = 1
    ) -> list[Detection]:
        """``observe`` for a sample given by its fields, ``at`` in epoch seconds: what replays of large
        files call, without building a Sample per row."""
        if self._compact:
            return self._observe_awake(ref, at, followers, following, step)
        account = self._by_identity.get(id(ref))
        if account is None or account.ref is not ref:
            account = self._account(ref)
        return self._observe(account, at, followers, following, step)

    def _observe_awake(
        self, ref: AccountRef, at: float, followers: int, following: int | None, step: int
    ) -> list[Detection]:
        """A compact engine's observe: wake the account, let it read the sample, put it back to sleep."""
        held = self._accounts.get(ref)
        newest = held.newest() if held is not None else None
        if newest is not None and at <= newest.at:
            return []
        account = self._awake(held) if held is not None else _Account(ref, self._make_detectors(ref))
        try:
            return self._observe(account, at, followers, following, step)
        finally:
            self._sleep(account)

    def _observe(
        self, account: _Account, at: float, followers: int, following: int | None, step: int
    ) -> list[Detection]:
        history = account.history
        last = history.last
        if last is not None and at <= last.at:
            return []
        point = Point(at, followers, following, step)
        period = history.add(point)
        changed: list[Detection] | None = None
        if period is None:
            # Most sub-daily samples close no period: only the detectors that read raw samples need them.
            for detector in account.per_sample:
                findings = detector.observe(point, None, history)
                if findings:
                    changed = changed or []
                    changed += [self._apply(account, detector.name, finding, at) for finding in findings]
            if changed is None:
                return []
        else:
            changed = []
            for detector in account.detectors:
                findings = detector.observe(point, period, history)
                if findings:
                    changed += [self._apply(account, detector.name, finding, at) for finding in findings]
            history.push(period)
            changed += self._platform_news(account, at)
        return _unique(changed) if len(changed) > 1 else changed

    def _platform_news(self, account: _Account, at: float) -> list[Detection]:
        platform = account.platform
        news = self._platforms.saw(platform, account.name, at)
        signal = account.drop.platform_signal if account.drop is not None else None
        if signal is not None:
            news += self._platforms.signal(platform, account.name, signal)
        return news

    def _account(self, ref: AccountRef) -> _Account:
        held = self._accounts.get(ref)
        account = held if isinstance(held, _Account) else self._add_account(ref)
        # Readers hand the same AccountRef object for every sample of an account: looking it up by
        # identity skips hashing a dataclass on every sample. The ``is`` check above keeps it exact.
        if account.ref is ref:
            self._by_identity[id(ref)] = account
        return account

    def _add_account(self, ref: AccountRef) -> _Account:
        account = self._accounts[ref] = _Account(ref, self._make_detectors(ref))
        return account

    def _sleep(self, account: _Account, state: bytes | None = None) -> None:
        """Keep the account as bytes. An account already asleep is replaced in place, never taken out of the
        dictionary first, so a reader in another thread always finds every account."""
        if state is None:
            out = StateWriter()
            account.save(out)
            state = out.finish(SLEEP_LEVEL)
        names = tuple([detector.name for detector in account.detectors])
        self._accounts[account.ref] = _Sleeping(account, self._names.setdefault(names, names), state)

    def _awake(self, held: _Held) -> _Account:
        if isinstance(held, _Account):
            return held
        return _wake(held.ref, held, self._make_detectors(held.ref))

    def snapshot(self, ref: AccountRef) -> bytes | None:
        """The account's whole detection state (period history, every detector's state, its open detections
        with their keys) as compact versioned bytes; None for an account the engine does not hold."""
        held = self._accounts.get(ref)
        if held is None:
            return None
        if isinstance(held, _Sleeping) and not held.open:
            return held.state
        # Written anew: the platform watch may have explained an open detection since the account fell asleep.
        return self._snapshot(self._awake(held))

    def _snapshot(self, account: _Account) -> bytes:
        out = StateWriter()
        account.save(out)
        return out.finish()

    def restore(self, ref: AccountRef, state: bytes) -> None:
        """Replace (or create) the account's state from a snapshot. Raises SnapshotError for another format
        version or corrupt bytes (the engine is then unchanged); the caller then rebuilds from samples."""
        account = _Account(ref, self._make_detectors(ref))
        try:
            account.load(StateReader(state))
        except (IndexError, OverflowError, ValueError) as exc:  # SnapshotError is a ValueError
            raise (
                exc if isinstance(exc, SnapshotError) else SnapshotError(f"corrupt snapshot: {exc}")
            ) from exc
        old = self._accounts.pop(ref, None)
        if isinstance(old, _Account):
            self._by_identity.pop(id(old.ref), None)
        self._platforms.share(account.platform, account.name, account.opened())
        if self._compact:
            self._sleep(account, bytes(state))
        else:
            self._accounts[ref] = account

    def last_at(self, ref: AccountRef) -> float | None:
        """Epoch seconds of the newest sample the account's state includes (what a snapshot is 'as of')."""
        held = self._accounts.get(ref)
        last = held.newest() if held is not None else None
        return last.at if last is not None else None

    def platform_snapshot(self) -> bytes:
        """The cross-account platform watch as bytes (one blob per engine; see ``snapshot``)."""
        out = StateWriter()
        self._platforms.save(out)
        return out.finish()

    def restore_platforms(self, state: bytes) -> None:
        """Replace the platform watch from ``platform_snapshot`` bytes; SnapshotError as for ``restore``."""
        watch = PlatformWatch()
        try:
            reader = StateReader(state)
            watch.load(reader)
            reader.done()
        except (IndexError, OverflowError, ValueError) as exc:
            raise (
                exc if isinstance(exc, SnapshotError) else SnapshotError(f"corrupt snapshot: {exc}")
            ) from exc
        self._platforms = watch
        for held in self._accounts.values():
            watch.share(held.ref.platform, str(held.ref), held.opened())

    def keep_only(self, refs: Set[AccountRef]) -> None:
        """Forget accounts no longer watched: their scores and active detections leave the metrics."""
        for ref in [ref for ref in self._accounts if ref not in refs]:
            account = self._accounts.pop(ref)
            self._by_identity.pop(id(account.ref), None)

    def flush(self) -> list[Detection]:
        """The detections still open at the end of the input (they stay open)."""
        return list(self.active())

    def active(self) -> Iterator[Detection]:
        for held in self._accounts.values():
            if held.open:
                yield from held.open.values()

    def scores(self) -> Iterator[tuple[AccountRef, str, float]]:
        """(account, detector, latest anomaly score) for every account and detector."""
        for held in self._accounts.values():
            for name, score in held.scored():
                yield held.ref, name, score

    def score_tokens(self) -> Iterator[tuple[AccountRef, object]]:
        """Each account with a token that changes whenever its scores may have (its latest point)."""
        for held in self._accounts.values():
            yield held.ref, held.newest()

    def scores_of(self, ref: AccountRef) -> tuple[tuple[str, float], ...]:
        """(detector, latest score) of one account."""
        return tuple(self._accounts[ref].scored())

    def _apply(self, account: _Account, detector: str, finding: Finding, at: float) -> Detection:
        key = (detector, finding.kind)
        detection = account.open.get(key) if account.open else None
        now = to_datetime(at)
        if detection is None:
            name = account.name
            detection = Detection(
                account.platform,
                name,
                finding.kind,
                detector,
                to_datetime(finding.started_at),
                now,
                None,
                finding.score,
                finding.severity,
                finding.summary,
                key=f"{name}|{detector}|{finding.kind}|{int(finding.started_at)}",
            )
            if finding.kind == DROP:
                self._platforms.own_drop(detection)
        elif detection.explained_by is None:
            detection.severity = finding.severity
            detection.summary = finding.summary
        else:
            detection.summary = finding.summary + explanation(account.platform)
        detection.score = finding.score
        detection.started_at = to_datetime(finding.started_at)
        detection.updated_at = now
        if finding.ended_at is None:
            account.keep_open(key, detection)
        else:
            detection.ended_at = to_datetime(finding.ended_at)
            account.close(key)
        return detection


def _unique(detections: list[Detection]) -> list[Detection]:
    seen: set[int] = set()
    out = []
    for detection in detections:
        if id(detection) not in seen:
            seen.add(id(detection))
            out.append(detection)
    return out
