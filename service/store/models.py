"""Tables. Times are stored as UTC; the ``UtcDateTime`` type hands back aware datetimes on every database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnClause

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DescendingNullsLast(ColumnClause[Any]):
    """An index column that serves ``ORDER BY column DESC NULLS LAST``: declared so on PostgreSQL, where a
    plain index read backwards puts nulls first; plain on SQLite, where it is read either way."""

    inherit_cache = True

    def __init__(self, name: str) -> None:
        super().__init__(name)


@compiles(DescendingNullsLast, "postgresql")
def _descending_postgresql(element: DescendingNullsLast, compiler: Any, **kw: Any) -> str:
    return f"{element.name} DESC NULLS LAST"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("platform", "handle", name="uq_accounts_platform_handle"),
        UniqueConstraint("platform", "platform_id", name="uq_accounts_platform_platform_id"),
        # `status --sort change-*|growth-*` reads a page off these (migration 0004; on PostgreSQL
        # descending with nulls last, the default order of a sort)
        *(
            Index(f"ix_accounts_{name}", DescendingNullsLast(name))
            for name in ("change_24h", "change_7d", "growth_24h", "growth_7d")
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    handle: Mapped[str] = mapped_column(String(255))  # as the user wrote it
    platform_id: Mapped[str | None] = mapped_column(String(255))  # the platform's stable id, once known
    platform_handle: Mapped[str | None] = mapped_column(String(255))  # as the platform spells it now
    watched: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_seconds: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    last_error: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The latest sample, kept here so that `status` reads one row per account.
    latest_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    latest_followers: Mapped[int | None] = mapped_column(BigInteger)
    latest_following: Mapped[int | None] = mapped_column(BigInteger)
    latest_posts: Mapped[int | None] = mapped_column(BigInteger)
    # The change and growth over 24 h and 7 d before the latest sample, written with it (changes.py).
    change_24h: Mapped[int | None] = mapped_column(BigInteger)
    change_7d: Mapped[int | None] = mapped_column(BigInteger)
    growth_24h: Mapped[float | None] = mapped_column(Float)
    growth_7d: Mapped[float | None] = mapped_column(Float)
    # A permanent state (not found, suspended) is polled again only from this time on, later each time.
    next_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    backoff_step: Mapped[int] = mapped_column(Integer, default=0)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_observed_at", "observed_at"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    followers: Mapped[int] = mapped_column(BigInteger)
    following: Mapped[int | None] = mapped_column(BigInteger)
    posts: Mapped[int | None] = mapped_column(BigInteger)
    followers_step: Mapped[int] = mapped_column(BigInteger, default=1)


class AccountEvent(Base):
    """What happened to an account that is not a count: renames, state changes."""

    __tablename__ = "account_events"
    __table_args__ = (
        Index("ix_account_events_account_at", "account_id", "at"),
        # one event of a kind per account and moment: a batch written twice (spool replay) adds nothing
        UniqueConstraint("account_id", "at", "kind", "detail", name="uq_account_events_account_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)


class Detection(Base):
    """An anomaly a detector found; ``account_id`` is null for a platform-wide event."""

    __tablename__ = "detections"
    __table_args__ = (
        Index("ix_detections_account_open", "account_id", "ended_at"),
        Index("ix_detections_detected_at", "detected_at"),
        # `flockwatch detections --kind --severity` counts what matches off it (migration 0005)
        Index("ix_detections_kind", "kind", "severity", "detected_at"),
        # The ongoing ones alone, with their scores: what `flockwatch status` aggregates (migration 0003).
        Index(
            "ix_detections_ongoing",
            "account_id",
            "score",
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    account: Mapped[str] = mapped_column(String(300))  # platform:handle, or platform:* for platform events
    kind: Mapped[str] = mapped_column(String(32))
    detector: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    score: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    explained_by: Mapped[int | None] = mapped_column(ForeignKey("detections.id", ondelete="SET NULL"))
    # The engine's identity of the anomaly: later versions of it update this row (idempotent upserts).
    key: Mapped[str | None] = mapped_column(String(400), unique=True)
    explained_by_key: Mapped[str | None] = mapped_column(String(400))


class DetectorState(Base):
    """An account's detection state (and its recent counts for /metrics), as of its newest sample:
    what start-up and a replica taking the account over load instead of replaying raw samples."""

    __tablename__ = "detector_states"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    engine: Mapped[bytes] = mapped_column(LargeBinary)
    board: Mapped[bytes | None] = mapped_column(LargeBinary)
    saved_at: Mapped[datetime] = mapped_column(UtcDateTime)


class EngineState(Base):
    """State the engine keeps across accounts (the platform watch), one blob per name."""

    __tablename__ = "engine_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[bytes] = mapped_column(LargeBinary)


class _Rollup:
    """Counts of one account over one bucket (an hour or a day): first, last, lowest and highest."""

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_followers: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_followers: Mapped[int] = mapped_column(BigInteger)
    min_followers: Mapped[int] = mapped_column(BigInteger)
    max_followers: Mapped[int] = mapped_column(BigInteger)
    samples: Mapped[int] = mapped_column(Integer)
    last_following: Mapped[int | None] = mapped_column(BigInteger)
    last_posts: Mapped[int | None] = mapped_column(BigInteger)
    followers_step: Mapped[int] = mapped_column(BigInteger, default=1)


class HourlyRollup(_Rollup, Base):
    __tablename__ = "samples_hourly"
    __table_args__ = (Index("ix_samples_hourly_bucket", "bucket"),)


class DailyRollup(_Rollup, Base):
    __tablename__ = "samples_daily"
    __table_args__ = (Index("ix_samples_daily_bucket", "bucket"),)


class WatchlistChange(Base):
    """Every change to the watchlist, in order: a running daemon reads the ones after the last it saw."""

    __tablename__ = "watchlist_changes"
    # never reuse a number, even once retention emptied the table: daemons read the changes after the last seen
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Setting(Base):
    """Small values the daemon keeps between runs (the rollup watermark)."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Replica(Base):
    """A running daemon sharing the watchlist with others (PostgreSQL): seen_at is its heartbeat."""

    __tablename__ = "replicas"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    shards: Mapped[int] = mapped_column(Integer, default=0)


def table(model: type[Base]) -> Table:
    """A model's table, typed as one (``__table__`` is declared as any FromClause)."""
    return cast(Table, model.__table__)
