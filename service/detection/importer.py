"""Loading a history exported from elsewhere into the database: idempotent, in batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine

from service.accounts import AccountRef
from service.samples import Sample
from service.store.repository import Store

BATCH = 5_000


def ensure_accounts(database: Engine, refs: set[AccountRef], now: datetime) -> dict[AccountRef, int]:
    """Ids of the accounts, adding (as watched) the ones the database does not know yet."""
    store = Store(database)
    store.watch_many(sorted(refs - store.account_ids(refs).keys()), now)
    return store.account_ids(refs)


def insert_samples(
    database: Engine,
    samples: Sequence[Sample],
    account_ids: dict[AccountRef, int],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Insert the samples an account does not have yet at that time; returns how many were new."""
    store = Store(database)
    added = 0
    for start in range(0, len(samples), BATCH):
        batch = samples[start : start + BATCH]
        added += store.write([(account_ids[s.account], s) for s in batch], [])
        if progress is not None:
            progress(start + len(batch), len(samples))
    return added
