"""What ``flockwatch status`` and ``flockwatch detections`` read: one page of rows, filtered and sorted in
the database, and how many rows match, in a few set-based statements whatever the size of the fleet.

An account's change and growth over 24 h and 7 d are columns of its row, written with its latest sample
(changes.py says from what): a sort by them reads a page off their index instead of working out the old
count of every account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, func, literal, select

from service.samples import Sample
from service.store import models
from service.store.queries import DetectionQuery, StatusQuery, at_least
from service.store.repository import DetectionRow, WatchedAccount, _watched

T = TypeVar("T")


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
        rows = conn.execute(_status_rows(query, accounts, ongoing, source, where, early)).all()
    return Page([_status_line(row) for row in rows], total)


def _filters_detections(query: StatusQuery) -> bool:
    return query.active or query.kind is not None or query.severity is not None


def _for_listing(conn: Connection) -> None:
    """PostgreSQL compiles queries it estimates costly to machine code first: most of a second here,
    for queries that then run in a fraction of it. SQLite reads pages through a memory map: a command
    starts with an empty page cache."""
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


_SORTED: tuple[str, ...] = ("id", "platform", "handle", "latest_followers")


def _status_rows(
    query: StatusQuery, accounts: Any, ongoing: Any, source: Any, where: list[Any], early: bool
) -> Any:
    """The page: filtered, sorted and limited over narrow rows, then the page's accounts in full and,
    unless read already, their ongoing detections."""
    key = _sort_column(query.sort)
    columns = [accounts.c[name] for name in (*_SORTED, *([key] if key else []))]
    if early:
        columns += [ongoing.c.score, ongoing.c.ongoing]
    inner = (
        select(*columns).select_from(source).where(*where).order_by(*_status_order(query, accounts, ongoing))
    )
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
    return select(*outer_columns).select_from(outer_source).order_by(*_status_order(query, page, page))


def _sort_column(sort: str) -> str | None:
    """The kept column a sort by change or growth reads ("change-24h": change_24h)."""
    return sort.replace("-", "_") if sort.startswith(("change-", "growth-")) else None


def _status_order(query: StatusQuery, accounts: Any, ongoing: Any) -> list[Any]:
    if query.sort == "account":
        keys = [accounts.c.platform, accounts.c.handle]
        return [k.desc() if query.reverse else k for k in keys] + [accounts.c.id]
    column = _sort_column(query.sort)
    if column is not None:
        key = accounts.c[column]
    elif query.sort == "followers":
        key = accounts.c.latest_followers
    else:
        key = ongoing.c.score
    ordered = key.asc() if query.reverse else key.desc()
    return [ordered.nulls_last(), accounts.c.platform, accounts.c.handle, accounts.c.id]


def _status_line(row: Any) -> StatusLine:
    account = _watched(row)
    latest = None
    if row.latest_at is not None and row.latest_followers is not None:
        latest = Sample(
            account.ref, row.latest_at, row.latest_followers, row.latest_following, row.latest_posts
        )
    known = latest is not None
    change_24h, change_7d = (row.change_24h, row.change_7d) if known else (None, None)
    return StatusLine(account, latest, change_24h, change_7d, row.score, row.ongoing or 0)


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
