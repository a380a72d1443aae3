"""When accounts are polled: one interval after their last poll, never during a permanent state's wait."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from service.accounts import AccountRef
from service.clock import ManualClock
from service.samples import AccountState
from service.scheduler import PollScheduler
from service.store.repository import WatchedAccount

INTERVAL = timedelta(minutes=15)


async def _never(
    _platform: str, _accounts: Sequence[WatchedAccount], _deadline: float
) -> list[WatchedAccount]:
    return []


def _account(account_id: int, **fields: object) -> WatchedAccount:
    account = WatchedAccount(
        account_id, AccountRef("x", f"user{account_id}"), None, None, AccountState.ACTIVE
    )
    for name, value in fields.items():
        setattr(account, name, value)
    return account


def test_an_account_is_due_one_interval_after_its_last_poll_and_not_during_its_wait(
    clock: ManualClock,
) -> None:
    now = clock.now()
    accounts = [
        _account(1),  # never polled
        _account(
            2, last_polled_at=now - timedelta(minutes=5)
        ),  # polled by another replica, or before a restart
        _account(3, last_polled_at=now - timedelta(minutes=20)),
        _account(4, next_poll_at=now + timedelta(hours=1), state=AccountState.NOT_FOUND),
        _account(5, next_poll_at=now - timedelta(minutes=1), state=AccountState.NOT_FOUND),
    ]
    scheduler = PollScheduler(_never, timedelta(0), lambda _a: INTERVAL, clock)
    scheduler.plan(accounts)
    assert {a.id for a in scheduler.due(("x", INTERVAL.total_seconds()))} == {1, 3, 5}


def test_replanning_keeps_each_account_s_turn(clock: ManualClock) -> None:
    recent = _account(2, last_polled_at=clock.now() - timedelta(minutes=5))
    scheduler = PollScheduler(_never, timedelta(0), lambda _a: INTERVAL, clock)
    scheduler.plan([recent])
    scheduler.plan([recent, _account(1)])
    assert [a.id for a in scheduler.due(("x", INTERVAL.total_seconds()))] == [1]
