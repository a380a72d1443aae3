"""Keeping the ``detections`` table in step with the engine: one row per anomaly, updated, never duplicated.

The daemon calls ``on_samples`` after each stored batch; ``import`` calls ``persist`` directly. A row is found
again by its identity (account, detector, kind, started_at), or, after a restart, as the open row of the same
account, detector and kind, so replays and restarts update rows instead of adding new ones.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from service.accounts import AccountRef
from service.clock import Clock
from service.detection.base import PLATFORM_EVENT, Detection, Severity
from service.detection.engine import DetectionEngine
from service.samples import Sample
from service.store import models

WARM_SAMPLES = 2_000  # per account: 40 days of 30-minute polls, enough for every detector's memory
KEPT_EVENTS = 256


class DetectionRecorder:
    def __init__(self, engine: DetectionEngine, database: Engine, clock: Clock) -> None:
        self.engine = engine
        self._database = database
        self._clock = clock
        self._rows: dict[str, int] = {}  # open detection key -> row id
        self._ended_events: OrderedDict[str, int] = OrderedDict()  # recent ended platform events
        self._account_ids: dict[str, int | None] = {}

    async def on_samples(self, samples: Sequence[Sample]) -> None:
        """Run the engine on newly stored samples and store what it found."""
        found: list[Detection] = []
        for sample in sorted(samples, key=lambda s: s.observed_at):
            found += self.engine.observe(sample)
        if found:
            await asyncio.to_thread(self.persist, found)

    async def warm_up(self, per_account: int = WARM_SAMPLES) -> int:
        """Feed the engine each account's last stored samples; returns how many.

        Nothing new is stored, but rows left open by the previous run whose anomaly the replay saw end
        are closed, so a restart does not leave stale active detections behind.
        """
        samples = await asyncio.to_thread(load_recent_samples, self._database, per_account)
        ended: dict[tuple[str, str, str], Detection] = {}
        for sample in samples:
            for detection in self.engine.observe(sample):
                if detection.ended_at is not None:
                    ended[(detection.account, detection.detector, detection.kind)] = detection
        still_open = {(d.account, d.detector, d.kind) for d in self.engine.active()}
        await asyncio.to_thread(self._close_stale, {k: d for k, d in ended.items() if k not in still_open})
        return len(samples)

    def _close_stale(self, ended: dict[tuple[str, str, str], Detection]) -> None:
        with Session(self._database) as session, session.begin():
            for row in session.scalars(select(models.Detection).where(models.Detection.ended_at.is_(None))):
                detection = ended.get((row.account, row.detector, row.kind))
                if detection is not None and detection.ended_at is not None:
                    row.ended_at = detection.ended_at
                    row.updated_at = self._clock.now()

    def persist(self, detections: Iterable[Detection]) -> None:
        # Platform events first: the account detections they explain point at their rows.
        ordered = sorted(detections, key=lambda d: d.kind != PLATFORM_EVENT)
        with Session(self._database) as session, session.begin():
            for detection in ordered:
                self._store(session, detection)

    def _store(self, session: Session, detection: Detection) -> None:
        row = self._find(session, detection)
        if row is None:
            row = models.Detection(
                platform=detection.platform,
                account=detection.account,
                account_id=self._account_id(session, detection.account),
                kind=detection.kind,
                detector=detection.detector,
                detected_at=detection.detected_at,
            )
            session.add(row)
        row.started_at = detection.started_at
        row.ended_at = detection.ended_at
        row.updated_at = detection.updated_at or self._clock.now()
        row.score = detection.score
        row.severity = str(detection.severity)
        row.summary = detection.summary
        row.explained_by = self._row_of(detection.explained_by)
        session.flush()
        self._rows[detection.key] = row.id
        if detection.ended_at is not None:
            self._rows.pop(detection.key, None)
            if detection.kind == PLATFORM_EVENT:  # ended events still explain the drops that follow
                self._ended_events[detection.key] = row.id
                while len(self._ended_events) > KEPT_EVENTS:
                    self._ended_events.popitem(last=False)

    def _row_of(self, key: str | None) -> int | None:
        if key is None:
            return None
        return self._rows.get(key) or self._ended_events.get(key)

    def _find(self, session: Session, detection: Detection) -> models.Detection | None:
        row_id = self._rows.get(detection.key)
        if row_id is not None:
            return session.get(models.Detection, row_id)
        same = select(models.Detection).where(
            models.Detection.account == detection.account,
            models.Detection.detector == detection.detector,
            models.Detection.kind == detection.kind,
        )
        exact = session.scalars(same.where(models.Detection.started_at == detection.started_at)).first()
        if exact is not None:
            return exact
        return session.scalars(same.where(models.Detection.ended_at.is_(None))).first()

    def _account_id(self, session: Session, account: str) -> int | None:
        if account not in self._account_ids:
            platform, _, handle = account.partition(":")
            self._account_ids[account] = session.scalar(
                select(models.Account.id).where(
                    models.Account.platform == platform, models.Account.handle == handle
                )
            )
        return self._account_ids[account]


def load_recent_samples(database: Engine, per_account: int) -> list[Sample]:
    """The last ``per_account`` stored samples of every account, oldest first."""
    samples: list[Sample] = []
    with Session(database) as session:
        for account in session.scalars(select(models.Account)):
            ref = AccountRef(account.platform, account.handle)
            rows = session.scalars(
                select(models.Sample)
                .where(models.Sample.account_id == account.id)
                .order_by(models.Sample.observed_at.desc())
                .limit(per_account)
            ).all()
            samples += [_sample(ref, row) for row in reversed(rows)]
    samples.sort(key=lambda s: s.observed_at)
    return samples


def _sample(ref: AccountRef, row: models.Sample) -> Sample:
    return Sample(ref, row.observed_at, row.followers, row.following, row.posts, row.followers_step)


def list_detections(database: Engine, account: str | None = None, active: bool = False) -> list[Detection]:
    """Stored detections, newest first, as the ``detections`` command lists them."""
    query = select(models.Detection).order_by(models.Detection.detected_at.desc(), models.Detection.id.desc())
    if account is not None:
        query = query.where(models.Detection.account == account)
    if active:
        query = query.where(models.Detection.ended_at.is_(None))
    with Session(database) as session:
        return [_detection(row) for row in session.scalars(query)]


def _detection(row: models.Detection) -> Detection:
    return Detection(
        row.platform,
        row.account,
        row.kind,
        row.detector,
        row.started_at,
        row.detected_at,
        row.ended_at,
        row.score,
        Severity(row.severity),
        row.summary,
        key=str(row.id),
        explained_by=str(row.explained_by) if row.explained_by else None,
        updated_at=row.updated_at,
    )
