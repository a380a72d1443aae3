"""The one place that reads and writes accounts and samples. Blocking; the daemon calls it from a thread."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Insert, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.accounts import AccountRef
from service.samples import AccountState, Sample
from service.store import models


@dataclass(frozen=True)
class WatchedAccount:
    id: int
    ref: AccountRef
    platform_id: str | None
    interval: timedelta | None
    state: AccountState
    last_error: str | None = None
    last_polled_at: datetime | None = None


@dataclass(frozen=True)
class AccountUpdate:
    """What one poll learned about an account besides its counts."""

    account_id: int
    polled_at: datetime
    state: AccountState
    error: str | None = None
    platform_id: str | None = None
    platform_handle: str | None = None


@dataclass(frozen=True)
class StatusRow:
    account: WatchedAccount
    latest: Sample | None
    change_24h: int | None
    change_7d: int | None


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- watchlist -------------------------------------------------------------------------------------

    def watch(self, ref: AccountRef, now: datetime, interval: timedelta | None = None) -> bool:
        """Start watching ``ref`` (again); True when it was not watched before."""
        with Session(self.engine) as session, session.begin():
            row = session.scalar(_account_query(ref))
            if row is None:
                session.add(_new_account(ref, now, interval))
                return True
            newly = not row.watched
            row.watched = True
            row.interval_seconds = interval.total_seconds() if interval else row.interval_seconds
            return newly

    def unwatch(self, ref: AccountRef) -> bool:
        """Stop polling ``ref``; its history stays. True when it was watched."""
        with Session(self.engine) as session, session.begin():
            row = session.scalar(_account_query(ref))
            if row is None or not row.watched:
                return False
            row.watched = False
            return True

    def watched(self) -> list[WatchedAccount]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(models.Account).where(models.Account.watched).order_by(models.Account.id)
            )
            return [_watched(row) for row in rows]

    def account_ids(self, refs: Iterable[AccountRef]) -> dict[AccountRef, int]:
        wanted = set(refs)
        with Session(self.engine) as session:
            rows = session.execute(select(models.Account.id, models.Account.platform, models.Account.handle))
            found = {AccountRef(platform, handle): id_ for id_, platform, handle in rows}
        return {ref: found[ref] for ref in wanted if ref in found}

    # -- writing ---------------------------------------------------------------------------------------

    def write(self, samples: Sequence[tuple[int, Sample]], updates: Sequence[AccountUpdate]) -> int:
        """Store samples (a repeat of the same account and time is ignored) and account updates, atomically.

        Returns how many samples were new.
        """
        with Session(self.engine) as session, session.begin():
            written = self._insert_samples(session, samples)
            for account_update in updates:
                self._apply(session, account_update)
            return written

    def _insert_samples(self, session: Session, samples: Sequence[tuple[int, Sample]]) -> int:
        if not samples:
            return 0
        rows = [_sample_row(account_id, sample) for account_id, sample in samples]
        table = models.Sample.__table__
        statement = _insert_ignoring_duplicates(self.engine, table, ["account_id", "observed_at"])
        # RETURNING yields only the rows actually inserted: the count of new samples on every backend
        inserted = session.connection().execute(statement.returning(table.c.account_id), rows)
        return len(inserted.all())

    def _apply(self, session: Session, change: AccountUpdate) -> None:
        row = session.get(models.Account, change.account_id)
        if row is None:
            return
        if row.state != change.state.value:
            session.add(_state_event(row, change))
            row.state, row.state_changed_at = change.state.value, change.polled_at
        row.last_error = change.error
        row.last_polled_at = change.polled_at
        if change.platform_id and row.platform_id != change.platform_id:
            _claim_platform_id(session, row, change.platform_id)
        if change.platform_handle and change.platform_handle != row.platform_handle:
            known = row.platform_handle or row.handle
            if change.platform_handle.lower() != known.lower():
                session.add(
                    _event(row.id, change.polled_at, "renamed", f"{known} -> {change.platform_handle}")
                )
            row.platform_handle = change.platform_handle

    # -- reading ---------------------------------------------------------------------------------------

    def history(self, ref: AccountRef, since: datetime | None = None) -> list[Sample]:
        query = (
            select(models.Sample)
            .join(models.Account)
            .where(models.Account.platform == ref.platform, models.Account.handle == ref.handle)
            .order_by(models.Sample.observed_at)
        )
        if since is not None:
            query = query.where(models.Sample.observed_at >= since)
        with Session(self.engine) as session:
            return [_sample(ref, row) for row in session.scalars(query)]

    def recent_samples(self, since: datetime) -> list[Sample]:
        """Samples of watched accounts since ``since``, oldest first: what the daemon warms its state from."""
        query = (
            select(models.Account.platform, models.Account.handle, models.Sample)
            .join(models.Sample, models.Sample.account_id == models.Account.id)
            .where(models.Account.watched, models.Sample.observed_at >= since)
            .order_by(models.Sample.observed_at)
        )
        with Session(self.engine) as session:
            return [_sample(AccountRef(p, h), row) for p, h, row in session.execute(query)]

    def status(self) -> list[StatusRow]:
        """Each watched account with its latest sample and the change over 24 h and 7 d before it."""
        accounts = self.watched()
        with Session(self.engine) as session:
            return [self._status_row(session, account) for account in accounts]

    def _status_row(self, session: Session, account: WatchedAccount) -> StatusRow:
        latest = _sample_at_or_before(session, account.id, None)
        if latest is None:
            return StatusRow(account, None, None, None)
        changes = [_sample_at_or_before(session, account.id, latest.observed_at - d) for d in _WINDOWS]
        return StatusRow(
            account,
            _sample(account.ref, latest),
            *(latest.followers - old.followers if old else None for old in changes),
        )

    def events(self, ref: AccountRef) -> list[tuple[datetime, str, str]]:
        query = (
            select(models.AccountEvent.at, models.AccountEvent.kind, models.AccountEvent.detail)
            .join(models.Account)
            .where(models.Account.platform == ref.platform, models.Account.handle == ref.handle)
            .order_by(models.AccountEvent.id)
        )
        with Session(self.engine) as session:
            return [(at, kind, detail) for at, kind, detail in session.execute(query)]

    def sample_count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(models.Sample)) or 0)


_WINDOWS = (timedelta(hours=24), timedelta(days=7))


def _account_query(ref: AccountRef) -> Any:
    return select(models.Account).where(
        and_(models.Account.platform == ref.platform, models.Account.handle == ref.handle)
    )


def _new_account(ref: AccountRef, now: datetime, interval: timedelta | None) -> models.Account:
    return models.Account(
        platform=ref.platform,
        handle=ref.handle,
        watched=True,
        state=AccountState.PENDING.value,
        added_at=now,
        interval_seconds=interval.total_seconds() if interval else None,
    )


def _watched(row: models.Account) -> WatchedAccount:
    return WatchedAccount(
        id=row.id,
        ref=AccountRef(row.platform, row.handle),
        platform_id=row.platform_id,
        interval=timedelta(seconds=row.interval_seconds) if row.interval_seconds else None,
        state=AccountState(row.state),
        last_error=row.last_error,
        last_polled_at=row.last_polled_at,
    )


def _sample_row(account_id: int, sample: Sample) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "observed_at": sample.observed_at,
        "followers": sample.followers,
        "following": sample.following,
        "posts": sample.posts,
        "followers_step": sample.followers_step,
    }


def _sample(ref: AccountRef, row: models.Sample) -> Sample:
    return Sample(ref, row.observed_at, row.followers, row.following, row.posts, row.followers_step)


def _sample_at_or_before(session: Session, account_id: int, when: datetime | None) -> models.Sample | None:
    query = select(models.Sample).where(models.Sample.account_id == account_id)
    if when is not None:
        query = query.where(models.Sample.observed_at <= when)
    return session.scalar(query.order_by(models.Sample.observed_at.desc()).limit(1))


def _insert_ignoring_duplicates(engine: Engine, table: Any, keys: list[str]) -> Insert:
    """INSERT that skips rows whose key exists: the same sample written twice stays one row."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    raise ValueError(f"unsupported database: {engine.dialect.name} (use SQLite or PostgreSQL)")


def _claim_platform_id(session: Session, row: models.Account, platform_id: str) -> None:
    """Record the stable id; another row holding it (an old handle of the same account) gives it up."""
    session.execute(
        update(models.Account)
        .where(models.Account.platform == row.platform, models.Account.platform_id == platform_id)
        .where(models.Account.id != row.id)
        .values(platform_id=None)
    )
    row.platform_id = platform_id


def _state_event(row: models.Account, change: AccountUpdate) -> models.AccountEvent:
    detail = f"{row.state} -> {change.state.value}" + (f": {change.error}" if change.error else "")
    return _event(row.id, change.polled_at, "state", detail)


def _event(account_id: int, at: datetime, kind: str, detail: str) -> models.AccountEvent:
    return models.AccountEvent(account_id=account_id, at=at, kind=kind, detail=detail)
