"""The storage suite: every test runs against SQLite and PostgreSQL through the ``store`` fixture."""

from datetime import UTC, datetime, timedelta, timezone

from alembic import command
from alembic.util.exc import CommandError
from sqlalchemy import Engine, inspect

from service.accounts import AccountRef
from service.samples import AccountState, Sample
from service.store.database import alembic_config, is_current, upgrade
from service.store.listing import StatusLine
from service.store.queries import StatusQuery
from service.store.repository import AccountUpdate, Store
from tests.conftest import T0

GARGRON = AccountRef("mastodon", "Gargron@mastodon.social")
TORVALDS = AccountRef("github", "torvalds")


def _id(store: Store, ref: AccountRef) -> int:
    return store.account_ids([ref])[ref]


def test_migrations_build_the_schema_and_match_the_models(engine: Engine) -> None:
    assert {"accounts", "samples", "account_events", "detections"} <= set(inspect(engine).get_table_names())
    assert is_current(engine)
    try:
        command.check(alembic_config(engine))
    except CommandError as exc:  # pragma: no cover - the message is the useful part
        raise AssertionError(f"models and migrations differ: {exc}") from None


def test_upgrading_twice_changes_nothing(engine: Engine) -> None:
    upgrade(engine)
    assert is_current(engine)


def test_watch_unwatch_and_watch_again(store: Store) -> None:
    assert store.watch(GARGRON, T0) is True
    assert store.watch(GARGRON, T0) is False
    assert store.watch(TORVALDS, T0, timedelta(hours=1)) is True
    assert [(a.ref, a.interval, a.state) for a in store.watched()] == [
        (GARGRON, None, AccountState.PENDING),
        (TORVALDS, timedelta(hours=1), AccountState.PENDING),
    ]
    assert store.unwatch(GARGRON) is True
    assert store.unwatch(GARGRON) is False
    assert [a.ref for a in store.watched()] == [TORVALDS]
    assert store.watch(GARGRON, T0) is True


def test_the_same_sample_written_twice_is_stored_once(store: Store) -> None:
    store.watch(GARGRON, T0)
    account_id = _id(store, GARGRON)
    sample = Sample(GARGRON, T0, 9_500, 120, 3_000)
    assert store.write([(account_id, sample)], []) == 1
    assert store.write([(account_id, sample), (account_id, sample)], []) == 0
    assert store.history(GARGRON) == [sample]


def test_times_come_back_as_the_same_utc_instant(store: Store) -> None:
    store.watch(GARGRON, T0)
    local = datetime(2026, 6, 1, 2, 30, tzinfo=timezone(timedelta(hours=2)))
    store.write([(_id(store, GARGRON), Sample(GARGRON, local, 10))], [])
    (stored,) = store.history(GARGRON)
    assert stored.observed_at == local and stored.observed_at.tzinfo == UTC


def test_missing_counts_stay_missing_never_zero(store: Store) -> None:
    store.watch(TORVALDS, T0)
    store.write([(_id(store, TORVALDS), Sample(TORVALDS, T0, 250_000, None, None, followers_step=1_000))], [])
    (stored,) = store.history(TORVALDS)
    assert (stored.following, stored.posts, stored.followers_step) == (None, None, 1_000)


def _status(store: Store) -> StatusLine:
    (line,) = store.status_page(StatusQuery()).rows
    return line


def test_status_gives_latest_and_changes_over_24h_and_7d(store: Store) -> None:
    store.watch(GARGRON, T0)
    account_id = _id(store, GARGRON)
    days = [T0 + timedelta(days=d) for d in range(9)]
    store.write([(account_id, Sample(GARGRON, at, 9_500 + 768 * i)) for i, at in enumerate(days)], [])
    row = _status(store)
    assert row.latest is not None and row.latest.followers == 9_500 + 768 * 8
    assert (row.change_24h, row.change_7d) == (768, 768 * 7)


def test_state_changes_and_renames_are_recorded(store: Store) -> None:
    store.watch(GARGRON, T0)
    account_id = _id(store, GARGRON)
    store.write(
        [], [AccountUpdate(account_id, T0, AccountState.ACTIVE, None, "1", "Gargron@mastodon.social")]
    )
    later = T0 + timedelta(hours=1)
    store.write([], [AccountUpdate(account_id, later, AccountState.ERRORING, "HTTP 503", "1", None)])
    store.write(
        [], [AccountUpdate(account_id, later, AccountState.ACTIVE, None, "1", "Eugen@mastodon.social")]
    )
    (account,) = store.watched()
    assert (account.platform_id, account.state, account.last_error) == ("1", AccountState.ACTIVE, None)
    kinds = [(kind, detail) for _, kind, detail in store.events(GARGRON)]
    assert kinds == [
        ("state", "pending -> active"),
        ("state", "active -> erroring: HTTP 503"),
        ("state", "erroring -> active"),
        ("renamed", "Gargron@mastodon.social -> Eugen@mastodon.social"),
    ]


def test_a_stable_id_moves_to_the_handle_that_now_answers_for_it(store: Store) -> None:
    old, new = AccountRef("x", "oldname"), AccountRef("x", "newname")
    store.watch(old, T0)
    store.watch(new, T0)
    store.write([], [AccountUpdate(_id(store, old), T0, AccountState.ACTIVE, None, "42", "oldname")])
    store.write([], [AccountUpdate(_id(store, new), T0, AccountState.ACTIVE, None, "42", "newname")])
    ids = {a.ref: a.platform_id for a in store.watched()}
    assert ids == {old: None, new: "42"}


def test_a_latest_sample_dated_in_the_future_does_not_freeze_the_account(store: Store) -> None:
    """A sample written by a clock that ran years ahead (or imported by mistake) would otherwise stay the
    account's latest for ever, and `status` would never move again."""
    from datetime import UTC, datetime

    store.watch(GARGRON, T0)
    account_id = _id(store, GARGRON)
    now = datetime.now(UTC)
    store.write([(account_id, Sample(GARGRON, now + timedelta(days=3650), 1))], [])
    store.write([(account_id, Sample(GARGRON, now, 9_500))], [])
    row = _status(store)
    assert row.latest is not None and row.latest.followers == 9_500
    store.write([(account_id, Sample(GARGRON, now - timedelta(hours=1), 9_400))], [])  # a replayed backlog
    row = _status(store)
    assert row.latest is not None and row.latest.followers == 9_500


def test_two_updates_of_one_account_in_one_write_leave_both_state_changes(store: Store) -> None:
    store.watch(GARGRON, T0)
    account_id = _id(store, GARGRON)
    store.write([], [AccountUpdate(account_id, T0, AccountState.ACTIVE)])
    later = [T0 + timedelta(hours=h) for h in (1, 2)]
    store.write(  # a backlog written in one chunk: failed, then recovered
        [],
        [
            AccountUpdate(account_id, later[0], AccountState.ERRORING, "HTTP 503"),
            AccountUpdate(account_id, later[1], AccountState.ACTIVE),
        ],
    )
    (account,) = store.watched()
    assert (account.state, account.last_polled_at) == (AccountState.ACTIVE, later[1])
    assert [detail for _, kind, detail in store.events(GARGRON)] == [
        "pending -> active",
        "active -> erroring: HTTP 503",
        "erroring -> active",
    ]


def test_an_older_update_written_late_changes_nothing(store: Store) -> None:
    """A quarantined record put back, or a former holder's backlog, arrives after newer ones."""
    store.watch(GARGRON, T0)
    account_id = _id(store, GARGRON)
    store.write([], [AccountUpdate(account_id, T0 + timedelta(hours=2), AccountState.ACTIVE)])
    store.write([], [AccountUpdate(account_id, T0 + timedelta(hours=1), AccountState.NOT_FOUND, "gone")])
    (account,) = store.watched()
    assert (account.state, account.last_error) == (AccountState.ACTIVE, None)
    assert [detail for _, _, detail in store.events(GARGRON)] == ["pending -> active"]
