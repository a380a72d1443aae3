"""Loading a history exported from elsewhere into the database: idempotent, in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.accounts import AccountRef
from service.samples import AccountState, Sample
from service.store import models

BATCH = 5_000
KEY = ["account_id", "observed_at"]  # the samples primary key


def ensure_accounts(database: Engine, refs: set[AccountRef], now: datetime) -> dict[AccountRef, int]:
    """Ids of the accounts, adding the ones the database does not know yet."""
    ids: dict[AccountRef, int] = {}
    with Session(database) as session, session.begin():
        for account in session.scalars(select(models.Account)):
            ids[AccountRef(account.platform, account.handle)] = account.id
        for ref in sorted(refs - ids.keys()):
            row = models.Account(
                platform=ref.platform,
                handle=ref.handle,
                watched=True,
                state=AccountState.ACTIVE.value,
                added_at=now,
            )
            session.add(row)
            session.flush()
            ids[ref] = row.id
    return {ref: ids[ref] for ref in refs}


def insert_samples(
    database: Engine,
    samples: Sequence[Sample],
    account_ids: dict[AccountRef, int],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Insert the samples an account does not have yet at that time; returns how many were new."""
    table = models.Sample
    dialect = database.dialect.name
    with database.begin() as conn:
        before = _stored(conn, account_ids.values())
        for start in range(0, len(samples), BATCH):
            rows = [_row(s, account_ids[s.account]) for s in samples[start : start + BATCH]]
            statement: Any
            if dialect == "postgresql":
                statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=KEY)
            elif dialect == "sqlite":
                statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=KEY)
            else:
                raise ValueError(f"import supports SQLite and PostgreSQL, not {dialect}")
            conn.execute(statement, rows)
            if progress is not None:
                progress(min(start + BATCH, len(samples)), len(samples))
        # rowcount is not reliable for executemany with ON CONFLICT on every driver: count instead.
        return _stored(conn, account_ids.values()) - before


def _stored(conn: Connection, account_ids: Iterable[int]) -> int:
    query = (
        select(func.count()).select_from(models.Sample).where(models.Sample.account_id.in_(list(account_ids)))
    )
    return int(conn.execute(query).scalar_one())


def _row(sample: Sample, account_id: int) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "observed_at": sample.observed_at,
        "followers": sample.followers,
        "following": sample.following,
        "posts": sample.posts,
        "followers_step": sample.followers_step,
    }
