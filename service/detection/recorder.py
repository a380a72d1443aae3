"""From the engine's detections to stored rows: every version of an anomaly is one upsert by its key.

The daemon's poller calls ``judge`` with each batch's samples before the batch goes to the spool, so the
detections ride the same durable path as the samples they came from and reach the database in order, with
their true times, after an outage. ``import`` calls ``judge`` and ``persist`` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from service.accounts import AccountRef
from service.detection.base import PLATFORM_EVENT, Detection, Severity
from service.detection.engine import DetectionEngine
from service.samples import Sample
from service.store import models
from service.store.repository import DetectionRow, Store


class DetectionRecorder:
    def __init__(self, engine: DetectionEngine, ids: dict[AccountRef, int] | None = None) -> None:
        self.engine = engine
        self.ids = ids if ids is not None else {}  # account -> its row id, kept by whoever owns the watchlist

    def judge(self, samples: Sequence[tuple[int, Sample]]) -> list[DetectionRow]:
        """Run the engine on new samples (any order within the batch); the detection versions it produced."""
        found: list[Detection] = []
        for account_id, sample in sorted(samples, key=lambda pair: pair[1].observed_at):
            self.ids.setdefault(sample.account, account_id)
            found += self.engine.observe(sample)
        return self.rows(found)

    def rows(self, detections: Iterable[Detection]) -> list[DetectionRow]:
        # Platform events first: the account detections they explain point at their rows.
        ordered = sorted(detections, key=lambda d: d.kind != PLATFORM_EVENT)
        return [as_row(d, self._account_id(d)) for d in ordered]

    def persist(self, database: Engine, detections: Iterable[Detection]) -> int:
        """Store detections directly (``import``); returns how many distinct anomalies were written."""
        rows = self.rows(detections)
        return Store(database).write_batch([], [], rows).detections if rows else 0

    def _account_id(self, detection: Detection) -> int | None:
        if detection.kind == PLATFORM_EVENT:
            return None
        platform, _, handle = detection.account.partition(":")
        return self.ids.get(AccountRef(platform, handle))


def as_row(detection: Detection, account_id: int | None) -> DetectionRow:
    return DetectionRow(
        key=detection.key,
        account_id=account_id,
        platform=detection.platform,
        account=detection.account,
        kind=detection.kind,
        detector=detection.detector,
        started_at=detection.started_at,
        detected_at=detection.detected_at,
        ended_at=detection.ended_at,
        updated_at=detection.updated_at or detection.detected_at,
        score=detection.score,
        severity=str(detection.severity),
        summary=detection.summary,
        explained_by_key=detection.explained_by,
    )


def list_detections(database: Engine, account: str | None = None, active: bool = False) -> list[Detection]:
    """Stored detections, newest first, as the ``detections`` command lists them."""
    query = select(models.Detection).order_by(models.Detection.detected_at.desc(), models.Detection.id.desc())
    if account is not None:
        query = query.where(models.Detection.account == account)
    if active:
        query = query.where(models.Detection.ended_at.is_(None))
    with Session(database) as session:
        return [detection_of(row, row.key or str(row.id)) for row in session.scalars(query)]


def detection_of(row: models.Detection | DetectionRow, key: str) -> Detection:
    """The detection a stored row (an ORM row or a listing's row) holds, under ``key``."""
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
        key=key,
        explained_by=row.explained_by_key,
        updated_at=row.updated_at,
    )
