"""The one place that reads and writes accounts, samples and detections. Blocking; the daemon calls it from
threads. Every write on the hot path is a few bulk statements per batch, never a query per account."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Insert, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.accounts import AccountRef
from service.samples import AccountState, Sample
from service.store import changes, models
from service.store.database import reason_of

if TYPE_CHECKING:
    from service.store.listing import Page, StatusLine
    from service.store.queries import DetectionQuery, StatusQuery

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WatchedAccount:
    """A watched account as the daemon holds it; ``next_poll_at`` delays polls of a permanent state."""

    id: int
    ref: AccountRef
    platform_id: str | None
    interval: timedelta | None
    state: AccountState
    last_error: str | None = None
    last_polled_at: datetime | None = None
    next_poll_at: datetime | None = None
    backoff_step: int = 0
    latest_at: datetime | None = None
    platform_handle: str | None = None


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """What one poll learned about an account besides its counts."""

    account_id: int
    polled_at: datetime
    state: AccountState
    error: str | None = None
    platform_id: str | None = None  # set only when it differs from what the account row holds
    platform_handle: str | None = None
    next_poll_at: datetime | None = None
    backoff_step: int = 0


@dataclass(frozen=True, slots=True)
class DetectionRow:
    """One version of a detection, as stored: later versions of the same ``key`` replace earlier ones."""

    key: str
    account_id: int | None
    platform: str
    account: str
    kind: str
    detector: str
    started_at: datetime
    detected_at: datetime
    ended_at: datetime | None
    updated_at: datetime
    score: float
    severity: str
    summary: str
    explained_by_key: str | None = None


@dataclass(frozen=True, slots=True)
class SavedState:
    """An account's saved detection state (engine bytes, /metrics trail) as of its newest sample."""

    account_id: int
    as_of: datetime
    engine: bytes
    board: bytes | None
    saved_at: datetime


@dataclass
class Written:
    """What one ``write`` stored: new samples, and the earliest time among them (rollups start there)."""

    samples: int = 0
    earliest: datetime | None = None
    detections: int = 0
    refused: list[str] = field(default_factory=list)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- watchlist -------------------------------------------------------------------------------------

    def watch(self, ref: AccountRef, now: datetime, interval: timedelta | None = None) -> bool:
        """Start watching ``ref`` (again); True when it was not watched before."""
        return bool(self.watch_many([ref], now, interval))

    def watch_many(
        self, refs: Sequence[AccountRef], now: datetime, interval: timedelta | None = None
    ) -> list[AccountRef]:
        """Watch every account in ``refs`` in one transaction; returns those that were not watched before."""
        seconds = interval.total_seconds() if interval else None
        with self.engine.begin() as conn:
            known = _rows_by_ref(conn, refs)
            new = [ref for ref in dict.fromkeys(refs) if ref not in known]
            if new:
                table = models.table(models.Account)
                insert = insert_ignoring_duplicates(conn, table, ["platform", "handle"])
                conn.execute(insert, [_new_account(ref, now, seconds) for ref in new])
            again = [row for row in known.values() if not row.watched]
            changed = [
                row.id
                for row in known.values()
                if not row.watched or (seconds is not None and row.interval_seconds != seconds)
            ]
            if changed:
                values: dict[str, Any] = {"watched": True}
                if seconds is not None:
                    values["interval_seconds"] = seconds
                conn.execute(update(models.Account).where(models.Account.id.in_(changed)).values(**values))
            added = [row.id for row in _rows_by_ref(conn, new).values()]
            _log_changes(conn, [*changed, *added], now)
        return [*new, *(AccountRef(row.platform, row.handle) for row in again)]

    def unwatch(self, ref: AccountRef, now: datetime | None = None) -> bool:
        """Stop polling ``ref``; its history stays. True when it was watched."""
        return bool(self.unwatch_many([ref], now))

    def unwatch_many(self, refs: Sequence[AccountRef], now: datetime | None = None) -> list[AccountRef]:
        """Stop watching every account in ``refs`` in one transaction; returns those that were watched."""
        with self.engine.begin() as conn:
            rows = [row for row in _rows_by_ref(conn, refs).values() if row.watched]
            ids = [row.id for row in rows]
            if ids:
                conn.execute(update(models.Account).where(models.Account.id.in_(ids)).values(watched=False))
                _log_changes(conn, ids, now or datetime.now(UTC))
        return [AccountRef(row.platform, row.handle) for row in rows]

    def recheck(self, refs: Sequence[AccountRef], now: datetime) -> list[AccountRef]:
        """Poll these accounts at the next chance even if a permanent state had put them off."""
        with self.engine.begin() as conn:
            rows = [row for row in _rows_by_ref(conn, refs).values() if row.watched]
            ids = [row.id for row in rows]
            if ids:
                conn.execute(
                    update(models.Account)
                    .where(models.Account.id.in_(ids))
                    .values(next_poll_at=None, backoff_step=0)
                )
                _log_changes(conn, ids, now)
        return [AccountRef(row.platform, row.handle) for row in rows]

    def watched(self) -> list[WatchedAccount]:
        with self.engine.connect() as conn:
            rows = conn.execute(_ACCOUNT_QUERY.where(models.Account.watched).order_by(models.Account.id))
            return [_watched(row) for row in rows]

    def accounts_by_id(self, ids: Iterable[int]) -> dict[int, tuple[bool, WatchedAccount]]:
        """(watched, account) for each id that exists, watched or not."""
        wanted = list(ids)
        found: dict[int, tuple[bool, WatchedAccount]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 5_000):
                for row in conn.execute(_ACCOUNT_QUERY.where(models.Account.id.in_(chunk))):
                    found[row.id] = (bool(row.watched), _watched(row))
        return found

    def watchlist_version(self) -> int:
        """The number of the newest watchlist change (0 before any)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.max(models.WatchlistChange.seq))) or 0)

    def watchlist_changes(self, after: int) -> list[tuple[int, int]]:
        """(change number, account id) of every watchlist change numbered after ``after``."""
        table = models.WatchlistChange
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.seq, table.account_id).where(table.seq > after)).all()
        return [(seq, account_id) for seq, account_id in rows]

    def account_ids(self, refs: Iterable[AccountRef]) -> dict[AccountRef, int]:
        with self.engine.connect() as conn:
            return {ref: row.id for ref, row in _rows_by_ref(conn, list(refs)).items()}

    # -- writing ---------------------------------------------------------------------------------------

    def write(
        self,
        samples: Sequence[tuple[int, Sample]],
        updates: Sequence[AccountUpdate],
        detections: Sequence[DetectionRow] = (),
    ) -> int:
        """Store samples (a repeat of the same account and time is ignored), account updates and detection
        versions, atomically. Returns how many samples were new."""
        return self.write_batch(samples, updates, detections).samples

    def write_batch(
        self,
        samples: Sequence[tuple[int, Sample]],
        updates: Sequence[AccountUpdate],
        detections: Sequence[DetectionRow] = (),
    ) -> Written:
        written = Written()
        with Session(self.engine) as session, session.begin():
            conn = session.connection()
            written.samples, written.earliest = _insert_samples(conn, samples)
            _note_latest(conn, samples)
            if written.earliest is not None:
                note_late_samples(conn, written.earliest)
            _apply_updates(conn, updates)
            for change in updates:
                if change.platform_id or change.platform_handle:
                    _apply_identity(session, change)
            written.detections = _upsert_detections(conn, detections)
        return written

    # -- saved states ----------------------------------------------------------------------------------

    def load_states(self, account_ids: Sequence[int]) -> dict[int, SavedState]:
        table = models.table(models.DetectorState)
        found: dict[int, SavedState] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(account_ids), 5_000):
                for row in conn.execute(select(table).where(table.c.account_id.in_(chunk))):
                    found[row.account_id] = SavedState(
                        row.account_id, row.as_of, row.engine, row.board, row.saved_at
                    )
        return found

    def save_states(self, states: Sequence[SavedState]) -> None:
        table = models.table(models.DetectorState)
        with self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            for chunk in _chunks(states, 2_000):
                statement = dialect.insert(table)
                statement = statement.on_conflict_do_update(
                    index_elements=["account_id"],
                    set_={
                        name: statement.excluded[name] for name in ("as_of", "engine", "board", "saved_at")
                    },
                    # a replica's late checkpoint never replaces a newer state saved by the account's next holder
                    where=table.c.as_of <= statement.excluded.as_of,
                )
                conn.execute(
                    statement,
                    [
                        {
                            "account_id": s.account_id,
                            "as_of": s.as_of,
                            "engine": s.engine,
                            "board": s.board,
                            "saved_at": s.saved_at,
                        }
                        for s in chunk
                    ],
                )

    def load_engine_state(self, name: str) -> bytes | None:
        table = models.table(models.EngineState)
        with self.engine.connect() as conn:
            blob = conn.scalar(select(table.c.state).where(table.c.name == name))
        return bytes(blob) if blob is not None else None

    def save_engine_state(self, name: str, as_of: datetime, state: bytes) -> None:
        table = models.table(models.EngineState)
        with self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(table).values(name=name, as_of=as_of, state=state)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"as_of": statement.excluded.as_of, "state": statement.excluded.state},
                )
            )

    def close_stale_detections(self, account_ids: Sequence[int], open_keys: set[str]) -> int:
        """Close the open rows of these accounts whose anomaly is no longer open (as of their last update)."""
        table = models.table(models.Detection)
        closed = 0
        with self.engine.begin() as conn:
            for chunk in _chunks(sorted(account_ids), 5_000):
                query = select(table.c.id, table.c.key).where(
                    table.c.account_id.in_(chunk), table.c.ended_at.is_(None)
                )
                stale = [row.id for row in conn.execute(query) if row.key not in open_keys]
                if stale:
                    conn.execute(
                        update(table).where(table.c.id.in_(stale)).values(ended_at=table.c.updated_at)
                    )
                closed += len(stale)
        return closed

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

    def samples_after(
        self, after: dict[int, datetime], refs: dict[int, AccountRef], until: datetime | None = None
    ) -> list[tuple[int, Sample]]:
        """Each account's samples after its own ``after[id]`` (up to ``until``), all in time order: what
        start-up replays on top of a loaded state. One query per chunk of accounts, never per account."""
        table = models.Sample
        rows: list[tuple[int, Sample]] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(after), 2_000):
                oldest = min(after[i] for i in chunk)
                query = select(table).where(table.account_id.in_(chunk), table.observed_at > oldest)
                if until is not None:
                    query = query.where(table.observed_at <= until)
                for row in conn.execute(query):
                    if row.observed_at > after[row.account_id]:
                        rows.append((row.account_id, _sample(refs[row.account_id], row)))
        rows.sort(key=lambda pair: pair[1].observed_at)
        return rows

    def rebuild_history(
        self,
        since: dict[int, datetime],
        refs: dict[int, AccountRef],
        until: datetime | None = None,
        *,
        fine_from: datetime,
    ) -> list[tuple[int, Sample]]:
        """What rebuilding a state reads, in time order: each account's hourly rollups (the last sample of
        each hour) from ``since[id]`` up to ``fine_from`` or as far as the rollups reach, then its raw
        samples. Rollups outlive raw samples (``retention.raw``) and hold a quarter of their rows at
        15-minute polling; samples written late into hours already rolled up count once maintenance has
        rolled those hours up again."""
        with self.engine.connect() as conn:
            reach = rolled_up_until(conn)
        if reach is None:
            return self.samples_after(since, refs, until)
        cut = min(reach, _hour_floor(fine_from))
        rows = self._hourly_after(since, refs, cut)
        raw_from = {i: max(at, cut - _INSTANT) for i, at in since.items()}
        rows += self.samples_after(raw_from, refs, until)
        rows.sort(key=lambda pair: pair[1].observed_at)
        return rows

    def _hourly_after(
        self, since: dict[int, datetime], refs: dict[int, AccountRef], before: datetime
    ) -> list[tuple[int, Sample]]:
        """The last sample of each rolled-up hour after ``since[id]`` and before ``before``."""
        hourly = models.table(models.HourlyRollup).c
        rows: list[tuple[int, Sample]] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(since), 2_000):
                oldest = min(since[i] for i in chunk) - timedelta(hours=1)
                query = select(
                    hourly.account_id,
                    hourly.last_at,
                    hourly.last_followers,
                    hourly.last_following,
                    hourly.last_posts,
                    hourly.followers_step,
                ).where(hourly.account_id.in_(chunk), hourly.bucket >= oldest, hourly.bucket < before)
                for account_id, at, followers, following, posts, step in conn.execute(query):
                    if at > since[account_id]:
                        rows.append(
                            (account_id, Sample(refs[account_id], at, followers, following, posts, step))
                        )
        return rows

    def status_page(self, query: StatusQuery) -> Page[StatusLine]:
        """One page of watched accounts, filtered and sorted in the database (``flockwatch status``)."""
        from service.store.listing import status_page

        return status_page(self.engine, query)

    def detection_page(self, query: DetectionQuery) -> Page[DetectionRow]:
        """One page of stored detections, filtered and sorted in the database (``flockwatch detections``)."""
        from service.store.listing import detection_page

        return detection_page(self.engine, query)

    def events(self, ref: AccountRef) -> list[tuple[datetime, str, str]]:
        query = (
            select(models.AccountEvent.at, models.AccountEvent.kind, models.AccountEvent.detail)
            .join(models.Account)
            .where(models.Account.platform == ref.platform, models.Account.handle == ref.handle)
            .order_by(models.AccountEvent.at, models.AccountEvent.id)
        )
        with Session(self.engine) as session:
            return [(at, kind, detail) for at, kind, detail in session.execute(query)]

    def sample_count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(models.Sample)) or 0)


_INSTANT = timedelta(microseconds=1)


def _hour_floor(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


FUTURE_TOLERANCE = timedelta(minutes=5)  # a time further ahead of the clock than this is a clock's mistake
_ACCOUNT_QUERY = select(models.table(models.Account))


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _rows_by_ref(conn: Connection, refs: Sequence[AccountRef]) -> dict[AccountRef, Any]:
    """The account rows of ``refs`` that exist, by ref (chunked IN lists per platform)."""
    by_platform: dict[str, list[str]] = {}
    for ref in refs:
        by_platform.setdefault(ref.platform, []).append(ref.handle)
    found: dict[AccountRef, Any] = {}
    table = models.Account
    for platform, handles in by_platform.items():
        for chunk in _chunks(sorted(set(handles)), 2_000):
            query = _ACCOUNT_QUERY.where(table.platform == platform, table.handle.in_(chunk))
            found.update({AccountRef(row.platform, row.handle): row for row in conn.execute(query)})
    return found


def add_accounts(
    conn: Connection, refs: Iterable[AccountRef], now: datetime
) -> tuple[dict[AccountRef, int], list[AccountRef]]:
    """The ids of ``refs`` in the connection's transaction, adding (watched) those not known yet, and the
    ones added; an account known but not watched stays as it is. ``import`` creates its accounts so."""
    wanted = list(dict.fromkeys(refs))
    known = _rows_by_ref(conn, wanted)
    new = [ref for ref in wanted if ref not in known]
    if new:
        table = models.table(models.Account)
        insert = insert_ignoring_duplicates(conn, table, ["platform", "handle"])
        conn.execute(insert, [_new_account(ref, now, None) for ref in new])
        _refresh_statistics(conn, len(new))
        added = _rows_by_ref(conn, new)
        _log_changes(conn, [row.id for row in added.values()], now)
        known.update(added)
    return {ref: row.id for ref, row in known.items()}, new


def _refresh_statistics(conn: Connection, added: int) -> None:
    """After adding many accounts in this transaction, let PostgreSQL's planner know (ANALYZE counts the
    transaction's own rows): planned on a table it believes tiny, reading them back by handle took 3 s per
    2,000 accounts when 100,000 were added at once, instead of milliseconds."""
    if added >= _MANY and conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE accounts"))


_MANY = 1_000


def _log_changes(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    if ids:
        conn.execute(
            models.table(models.WatchlistChange).insert(), [{"account_id": i, "at": now} for i in ids]
        )


def _new_account(ref: AccountRef, now: datetime, interval_seconds: float | None) -> dict[str, Any]:
    return {
        "platform": ref.platform,
        "handle": ref.handle,
        "watched": True,
        "state": AccountState.PENDING.value,
        "added_at": now,
        "interval_seconds": interval_seconds,
        "backoff_step": 0,
    }


def _watched(row: Any) -> WatchedAccount:
    return WatchedAccount(
        id=row.id,
        ref=AccountRef(row.platform, row.handle),
        platform_id=row.platform_id,
        interval=timedelta(seconds=row.interval_seconds) if row.interval_seconds else None,
        state=AccountState(row.state),
        last_error=row.last_error,
        last_polled_at=row.last_polled_at,
        next_poll_at=row.next_poll_at,
        backoff_step=row.backoff_step or 0,
        latest_at=row.latest_at,
        platform_handle=row.platform_handle,
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


def _sample(ref: AccountRef, row: Any) -> Sample:
    return Sample(ref, row.observed_at, row.followers, row.following, row.posts, row.followers_step)


def insert_ignoring_duplicates(conn: Connection, table: Any, keys: list[str]) -> Insert:
    """INSERT that skips rows whose key exists: the same sample written twice stays one row."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    raise ValueError(f"unsupported database: {conn.dialect.name} (use SQLite or PostgreSQL)")


def _insert_samples(conn: Connection, samples: Sequence[tuple[int, Sample]]) -> tuple[int, datetime | None]:
    if not samples:
        return 0, None
    rows = [_sample_row(account_id, sample) for account_id, sample in samples]
    table = models.table(models.Sample)
    statement = insert_ignoring_duplicates(conn, table, ["account_id", "observed_at"])
    # RETURNING yields only the rows actually inserted: the count of new samples on every backend
    inserted = conn.execute(statement.returning(table.c.observed_at), rows).all()
    return len(inserted), min((at for (at,) in inserted), default=None)


ROLLUP_WATERMARK = "rollup_watermark"  # hours before it are rolled up
ROLLUP_DIRTY = "rollup_dirty"  # the earliest sample written behind the watermark since the rollups last ran


def rolled_up_until(conn: Connection) -> datetime | None:
    """The rollup watermark: every hourly rollup before it has been made (None before the first run)."""
    watermark = conn.scalar(select(models.Setting.value).where(models.Setting.name == ROLLUP_WATERMARK))
    return datetime.fromisoformat(watermark) if watermark else None


def note_late_samples(conn: Connection, earliest: datetime) -> None:
    """Samples written behind the rollup watermark (a spool backlog, an import) mark their hours for rolling
    up again, in the same transaction: the mark survives a crash or a skipped maintenance run."""
    settings = models.table(models.Setting)
    watermark = rolled_up_until(conn)
    if watermark is None or earliest >= watermark:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(settings).values(name=ROLLUP_DIRTY, value=earliest.isoformat())
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": statement.excluded.value},
            where=settings.c.value > statement.excluded.value,  # ISO times in UTC compare as text
        )
    )


def _note_latest(conn: Connection, samples: Sequence[tuple[int, Sample]]) -> None:
    """Keep each account's newest sample on its row; an older sample (a replayed backlog) never overwrites it,
    unless the kept one is dated in the future (a clock that ran ahead): then the account would freeze."""
    newest: dict[int, Sample] = {}
    for account_id, sample in samples:
        kept = newest.get(account_id)
        if kept is None or sample.observed_at > kept.observed_at:
            newest[account_id] = sample
    if not newest:
        return
    now = datetime.now(UTC)
    table = models.table(models.Account)
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .where(
            or_(
                table.c.latest_at.is_(None),
                table.c.latest_at < bindparam("at"),
                table.c.latest_at > bindparam("ceiling"),
            )
        )
        .values(
            latest_at=bindparam("at"),
            latest_followers=bindparam("followers"),
            latest_following=bindparam("following"),
            latest_posts=bindparam("posts"),
        )
    )
    conn.execute(
        statement,
        [
            {
                "row_id": i,
                "at": s.observed_at,
                "ceiling": max(s.observed_at, now) + FUTURE_TOLERANCE,
                "followers": s.followers,
                "following": s.following,
                "posts": s.posts,
            }
            for i, s in newest.items()
        ],
    )
    _refresh_changes(conn, newest)


def _refresh_changes(conn: Connection, account_ids: Iterable[int]) -> None:
    """The kept change and growth, from the samples stored by now (the batch's own among them). A savepoint
    keeps a failure here from costing the batch its samples: the columns stay as they were until the
    account's next write, and the failure is logged."""
    try:
        with conn.begin_nested():
            changes.refresh(conn, account_ids)
    except SQLAlchemyError as exc:
        log.warning("the change columns were not updated for a batch: %s", reason_of(exc))


_STATE_EVENT = text(
    "INSERT INTO account_events (account_id, at, kind, detail) "
    "SELECT id, :at, 'state', state || ' -> ' || :new_state || COALESCE(': ' || :error, '') "
    "FROM accounts WHERE id = :row_id AND state <> :new_state "
    "AND (last_polled_at IS NULL OR last_polled_at <= :at) "
    "ON CONFLICT (account_id, at, kind, detail) DO NOTHING"
).bindparams(bindparam("at", type_=models.UtcDateTime()))


def _apply_updates(conn: Connection, updates: Sequence[AccountUpdate]) -> None:
    """Each account's state, error and poll time: a state change leaves an event, all in bulk statements. An
    update older than what the row holds (a late backlog, a quarantined record put back) changes nothing."""
    for round_ in _rounds(updates):
        rows = [
            {
                "row_id": u.account_id,
                "at": u.polled_at,
                "new_state": u.state.value,
                "error": u.error,
                "next_poll": u.next_poll_at,
                "step": u.backoff_step,
            }
            for u in round_
        ]
        conn.execute(_STATE_EVENT, rows)
        table = models.table(models.Account)
        newer = or_(table.c.last_polled_at.is_(None), table.c.last_polled_at <= bindparam("at"))
        conn.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"), table.c.state != bindparam("new_state"), newer)
            .values(state_changed_at=bindparam("at")),
            rows,
        )
        conn.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"), newer)
            .values(
                state=bindparam("new_state"),
                last_error=bindparam("error"),
                last_polled_at=bindparam("at"),
                next_poll_at=bindparam("next_poll"),
                backoff_step=bindparam("step"),
            ),
            rows,
        )


def _rounds(updates: Sequence[AccountUpdate]) -> list[list[AccountUpdate]]:
    """The updates in rounds that name each account once, in order: a bulk statement sees the table as it was
    before it, so two updates of one account in one statement would both compare with the old state."""
    rounds: list[list[AccountUpdate]] = []
    seen: dict[int, int] = {}
    for change in updates:
        index = seen.get(change.account_id, 0)
        seen[change.account_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(change)
    return rounds


def _apply_identity(session: Session, change: AccountUpdate) -> None:
    """A new stable id or platform spelling (rare: first poll, renames), row by row."""
    row = session.get(models.Account, change.account_id)
    if row is None:
        return
    if change.platform_id and row.platform_id != change.platform_id:
        _claim_platform_id(session, row, change.platform_id)
    if change.platform_handle and change.platform_handle != row.platform_handle:
        known = row.platform_handle or row.handle
        if change.platform_handle.lower() != known.lower():
            detail = f"{known} -> {change.platform_handle}"
            session.execute(
                insert_ignoring_duplicates(
                    session.connection(),
                    models.table(models.AccountEvent),
                    ["account_id", "at", "kind", "detail"],
                ).values(account_id=row.id, at=change.polled_at, kind="renamed", detail=detail)
            )
        row.platform_handle = change.platform_handle
    session.flush()


def _claim_platform_id(session: Session, row: models.Account, platform_id: str) -> None:
    """Record the stable id; another row holding it (an old handle of the same account) gives it up."""
    session.execute(
        update(models.Account)
        .where(models.Account.platform == row.platform, models.Account.platform_id == platform_id)
        .where(models.Account.id != row.id)
        .values(platform_id=None)
    )
    row.platform_id = platform_id


_DETECTION_FIELDS = (
    "account_id",
    "platform",
    "account",
    "kind",
    "detector",
    "started_at",
    "detected_at",
    "ended_at",
    "updated_at",
    "score",
    "severity",
    "summary",
    "explained_by_key",
)
_DETECTION_UPDATES = (
    "started_at",
    "ended_at",
    "updated_at",
    "score",
    "severity",
    "summary",
    "explained_by_key",
)


def _upsert_detections(conn: Connection, detections: Sequence[DetectionRow]) -> int:
    """Insert each detection version or update the row of its key; then point explained rows at their event."""
    if not detections:
        return 0
    latest: dict[str, DetectionRow] = {}
    for detection in detections:  # a batch may carry several versions of one anomaly: the last one counts
        latest[detection.key] = detection
    table = models.table(models.Detection)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={name: statement.excluded[name] for name in _DETECTION_UPDATES},
        where=table.c.updated_at
        <= statement.excluded.updated_at,  # an older version never undoes a newer one
    )
    rows = [{"key": d.key, **{name: getattr(d, name) for name in _DETECTION_FIELDS}} for d in latest.values()]
    conn.execute(statement, rows)
    explained = [d.key for d in latest.values() if d.explained_by_key]
    if explained:
        event = models.table(models.Detection).alias("event")
        conn.execute(
            update(table)
            .where(table.c.key.in_(explained))
            .values(
                explained_by=select(event.c.id)
                .where(event.c.key == table.c.explained_by_key)
                .scalar_subquery()
            )
        )
    return len(latest)
