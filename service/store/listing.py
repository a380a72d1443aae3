"""What ``flockwatch status`` and ``flockwatch detections`` read: one page of rows, filtered and sorted in
the database, and how many rows match, in a few set-based statements whatever the size of the fleet.

An account's change over 24 h (or 7 d) is its latest count minus the count at the last hourly point at
or before (latest sample - window), an hourly point being the last sample of an hour: the rule of
/metrics' ``flockwatch_followers_change``. It is read from the hourly rollups (a hash join on the few
hours most accounts fall in, on PostgreSQL), and from the raw samples for an account whose hour is not
rolled up (then it is the last sample at or before that time). Only a sort by change computes it for
every matching account; otherwise it is worked out for the rows of the page alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    FunctionElement,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.ext.compiler import compiles

from service.samples import Sample
from service.store import models
from service.store.queries import DetectionQuery, StatusQuery, at_least
from service.store.repository import DetectionRow, WatchedAccount, _minus, _status_row, count_at_or_before

T = TypeVar("T")
WINDOWS: Final = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
_LABELS: Final = {"24h": "old_0", "7d": "old_1"}  # as the repository's _status_row reads them
COMMON_HOURS: Final = 4  # PostgreSQL: hours of the fleet's cut-off times read by a hash join
COMMON_SHARE: Final = 0.05  # ... each holding at least this share of the accounts


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    total: int  # rows matching the filters, on this page or not


@dataclass(frozen=True)
class StatusLine:
    account: WatchedAccount
    latest: Sample | None
    change_24h: int | None
    change_7d: int | None
    score: float | None  # the highest score of its ongoing detections that count
    ongoing: int


# -- status ----------------------------------------------------------------------------------------------


def status_page(engine: Engine, query: StatusQuery) -> Page[StatusLine]:
    accounts = models.table(models.Account)
    ongoing = _ongoing(query)
    # The ongoing detections are joined before the limit only when a filter or the sort reads them;
    # otherwise only the page's rows are looked up.
    early = _filters_detections(query) or query.sort == "score"
    source = accounts.outerjoin(ongoing, ongoing.c.account_id == accounts.c.id) if early else accounts
    where = _status_filters(query, accounts, ongoing)
    with engine.connect() as conn:
        _for_listing(conn)
        # The outer join to the ongoing detections (one row per account) changes no count: without a
        # filter on them the count reads the accounts alone (a tenth of a second less at 100,000).
        counted = source if _filters_detections(query) else accounts
        total = int(conn.scalar(select(func.count()).select_from(counted).where(*where)) or 0)
        window = _sorted_window(query.sort)
        hours = _common_hours(conn, source, where, WINDOWS[window]) if window else {}
        olds = {name: _OldCount(name, delta, hours.get(name, ())) for name, delta in WINDOWS.items()}
        page = _status_rows(query, accounts, ongoing, source, where, olds, early)
        rows = conn.execute(page).all()
    return Page([_status_line(row) for row in rows], total)


def _filters_detections(query: StatusQuery) -> bool:
    return query.active or query.kind is not None or query.severity is not None


def _for_listing(conn: Connection) -> None:
    """PostgreSQL compiles queries it estimates costly to machine code first: most of a second here,
    for queries that then run in a fraction of it. SQLite reads pages through a memory map: a command
    starts with an empty page cache, and a sort by change reads a page or two per account."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA mmap_size = 1073741824")


def _ongoing(query: StatusQuery) -> Any:
    detections = models.table(models.Detection)
    conditions: list[Any] = [detections.c.ended_at.is_(None), detections.c.account_id.is_not(None)]
    if query.kind is not None:
        conditions.append(detections.c.kind == query.kind)
    if query.severity is not None:
        conditions.append(detections.c.severity.in_(at_least(query.severity)))
    return (
        select(
            detections.c.account_id,
            func.max(detections.c.score).label("score"),
            func.count().label("ongoing"),
        )
        .where(*conditions)
        .group_by(detections.c.account_id)
        .subquery("ongoing")
    )


def _status_filters(query: StatusQuery, accounts: Any, ongoing: Any) -> list[Any]:
    where = [accounts.c.watched]
    if query.platform is not None:
        where.append(accounts.c.platform == query.platform)
    if query.states:
        where.append(accounts.c.state.in_(query.states))
    if _filters_detections(query):
        where.append(ongoing.c.account_id.is_not(None))
    return where


def _sorted_window(sort: str) -> str | None:
    return sort.partition("-")[2] or None if sort.startswith(("change-", "growth-")) else None


class _OldCount:
    """The count at the last hourly point at or before (latest_at - window), as a column expression
    over the accounts table and two outer joins to the hourly rollups."""

    def __init__(self, name: str, window: timedelta, hours: tuple[datetime, ...]) -> None:
        self.name = name
        self.window = window
        self.hours = hours  # PostgreSQL: the cut-off hours to read with a hash join

    def joined(self, source: Any, accounts: Any) -> tuple[Any, Any]:
        """``source`` joined to the rollups this needs, and the expression of the old count."""
        hourly = models.table(models.HourlyRollup)
        cut = _minus(accounts.c.latest_at, self.window)
        here = hourly.alias(f"h{self.name}")
        before = hourly.alias(f"b{self.name}")
        source = source.outerjoin(here, self._on(here, accounts, _HourOf(cut), 0)).outerjoin(
            before, self._on(before, accounts, _HourOf(cut, back=1), 1)
        )
        old = func.coalesce(
            case((here.c.last_at <= cut, here.c.last_followers)),
            before.c.last_followers,
            count_at_or_before(accounts, cut),
        )
        return source, old

    def _on(self, rollup: Any, accounts: Any, hour: Any, back: int) -> Any:
        condition = and_(rollup.c.account_id == accounts.c.id, rollup.c.bucket == hour)
        if self.hours:  # lets PostgreSQL read those hours' rows in one scan and hash-join them
            shifted = [h - timedelta(hours=back) for h in self.hours]
            condition = and_(condition, rollup.c.bucket.in_(shifted))
        return condition


def _common_hours(
    conn: Connection, source: Any, where: list[Any], window: timedelta
) -> dict[str, tuple[datetime, ...]]:
    """PostgreSQL: the cut-off hours that hold most of the matching accounts (a fleet polled on time
    has one or two), to hash-join their rollups instead of probing the index once per account."""
    if conn.dialect.name != "postgresql":
        return {}
    accounts = models.table(models.Account)
    hour = _HourOf(_minus(accounts.c.latest_at, window)).label("hour")
    counted = (
        select(hour, func.count().label("n"))
        .select_from(source)
        .where(*where, accounts.c.latest_at.is_not(None))
        .group_by(hour)
        .order_by(func.count().desc())
        .limit(COMMON_HOURS)
    )
    rows = conn.execute(counted).all()
    total = sum(row.n for row in rows)
    name = next(key for key, value in WINDOWS.items() if value == window)
    return {name: tuple(row.hour for row in rows if row.n >= COMMON_SHARE * total)}


def _status_rows(
    query: StatusQuery,
    accounts: Any,
    ongoing: Any,
    source: Any,
    where: list[Any],
    olds: dict[str, _OldCount],
    early: bool,
) -> Any:
    """The page: filtered, sorted and limited over narrow rows (the old counts a sort needs computed for
    every matching account), then the page's accounts in full, their other old counts and, unless read
    already, their ongoing detections."""
    window = _sorted_window(query.sort)
    keys = ("id", "platform", "handle", "latest_at", "latest_followers")
    columns = [accounts.c[key] for key in keys]
    if early:
        columns += [ongoing.c.score, ongoing.c.ongoing]
    if window is not None:
        source, old = olds[window].joined(source, accounts)
        columns.append(old.label(_LABELS[window]))
    order = _status_order(query, accounts, ongoing, window, columns[-1] if window else None)
    inner = select(*columns).select_from(source).where(*where).order_by(*order)
    if query.limit is not None:
        inner = inner.limit(query.limit)
    page = inner.subquery("page")
    full = accounts.alias("account")
    outer_source: Any = page.join(full, full.c.id == page.c.id)
    if early:
        outer_columns = [full, page.c.score, page.c.ongoing]
    else:
        outer_source = outer_source.outerjoin(ongoing, ongoing.c.account_id == page.c.id)
        outer_columns = [full, ongoing.c.score, ongoing.c.ongoing]
    for name, old_count in olds.items():
        if name == window:
            outer_columns.append(page.c[_LABELS[name]])
        else:
            outer_source, old = old_count.joined(outer_source, full)
            outer_columns.append(old.label(_LABELS[name]))
    old = page.c[_LABELS[window]] if window else None
    return (
        select(*outer_columns)
        .select_from(outer_source)
        .order_by(*_status_order(query, page, page, window, old))
    )


def _status_order(query: StatusQuery, accounts: Any, ongoing: Any, window: str | None, old: Any) -> list[Any]:
    latest = accounts.c.latest_followers
    if query.sort == "account":
        keys = [accounts.c.platform, accounts.c.handle]
        return [k.desc() if query.reverse else k for k in keys] + [accounts.c.id]
    if query.sort == "followers":
        key = latest
    elif query.sort == "score":
        key = ongoing.c.score
    elif query.sort.startswith("change-"):
        key = latest - old
    else:  # growth: the change as a share of the old count
        key = case((old > 0, cast(latest - old, Float) / old))
    ordered = key.asc() if query.reverse else key.desc()
    return [ordered.nulls_last(), accounts.c.platform, accounts.c.handle, accounts.c.id]


def _status_line(row: Any) -> StatusLine:
    status = _status_row(row)  # the repository's reading of an account row with its two old counts
    return StatusLine(
        status.account, status.latest, status.change_24h, status.change_7d, row.score, row.ongoing or 0
    )


class _HourOf(FunctionElement[datetime]):
    """The hour a time falls in (UTC), ``back`` hours earlier: the bucket of an hourly rollup."""

    inherit_cache = True
    type = models.UtcDateTime()

    def __init__(self, column: Any, back: int = 0) -> None:
        super().__init__(column)
        self.back = back


@compiles(_HourOf, "postgresql")
def _hour_postgresql(element: _HourOf, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    hour = f"(date_trunc('hour', ({column}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    return f"({hour} - interval '{element.back} hours')" if element.back else hour


@compiles(_HourOf, "sqlite")
def _hour_sqlite(element: _HourOf, compiler: Any, **kw: Any) -> str:
    # Rollup buckets are stored as 'YYYY-MM-DD HH:00:00.000000' text.
    column = compiler.process(next(iter(element.clauses)), **kw)
    shift = f", '-{element.back * 3600} seconds'" if element.back else ""
    return f"(strftime('%Y-%m-%d %H:00:00', {column}{shift}) || '.000000')"


# -- detections ------------------------------------------------------------------------------------------


def detection_page(engine: Engine, query: DetectionQuery) -> Page[DetectionRow]:
    detections = models.table(models.Detection)
    where = _detection_filters(query, detections)
    listing = select(detections).where(*where).order_by(*_detection_order(query, detections))
    if query.limit is not None:
        listing = listing.limit(query.limit)
    with engine.connect() as conn:
        _for_listing(conn)
        total = int(conn.scalar(select(func.count()).select_from(detections).where(*where)) or 0)
        rows = conn.execute(listing).all()
    return Page([_detection_row(row) for row in rows], total)


def _detection_filters(query: DetectionQuery, detections: Any) -> list[Any]:
    where: list[Any] = []
    if query.account is not None:
        where.append(detections.c.account == query.account)
    if query.platform is not None:
        where.append(detections.c.platform == query.platform)
    if query.kind is not None:
        where.append(detections.c.kind == query.kind)
    if query.severity is not None:
        where.append(detections.c.severity.in_(at_least(query.severity)))
    if query.active:
        where.append(detections.c.ended_at.is_(None))
    return where or [literal(True)]


def _detection_order(query: DetectionQuery, detections: Any) -> list[Any]:
    if query.sort == "account":
        keys = [detections.c.account, detections.c.detected_at]
        return [k.desc() if query.reverse else k for k in keys] + [detections.c.id]
    key = {"detected": detections.c.detected_at, "started": detections.c.started_at}.get(
        query.sort, detections.c.score
    )
    return [key.asc() if query.reverse else key.desc(), detections.c.id.desc()]


def _detection_row(row: Any) -> DetectionRow:
    return DetectionRow(
        key=row.key or str(row.id),
        account_id=row.account_id,
        platform=row.platform,
        account=row.account,
        kind=row.kind,
        detector=row.detector,
        started_at=row.started_at,
        detected_at=row.detected_at,
        ended_at=row.ended_at,
        updated_at=row.updated_at,
        score=row.score,
        severity=row.severity,
        summary=row.summary,
        explained_by_key=row.explained_by_key,
    )
