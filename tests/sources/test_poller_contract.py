"""The contract again, one level up: the poller writes what each source says into a real SQLite database.

Every fault must leave the database correct (no sample that was not observed, states that say what
happened) and the poller able to go on.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.samples import AccountState
from service.sources.ratelimit import BACKOFF_CAP
from tests.fakes.catalog import FAKES
from tests.fakes.server import Fault
from tests.sources.daemon import deployed

PLATFORMS = sorted(FAKES)  # every fake's case: each platform, and GitHub repositories two ways
BUDGETED = [p for p in PLATFORMS if p != "youtube"]  # YouTube announces no budget: its quota is daily


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_counts_states_and_a_rename_reach_the_database(platform: str, tmp_path: Path) -> None:
    async with deployed(platform, tmp_path) as d:
        fake = d.world.fake
        alice, bob = fake.add("alice", 12_345), fake.add("bob", 500, suspended=True)
        refs = [
            d.watch(alice),
            d.watch(bob),
            d.watch("ghost" if platform != "bluesky" else "ghost.bsky.social"),
        ]

        await d.poll()

        assert [s.followers for s in d.samples(refs[0])] == [fake.expected_followers(alice)]
        assert d.account(refs[0]).platform_id == alice.id
        assert d.state(refs[0]) is AccountState.ACTIVE
        assert d.state(refs[1]) is fake.suspended_state
        assert d.state(refs[2]) is AccountState.NOT_FOUND
        assert d.samples(refs[1]) == [] and d.samples(refs[2]) == []

        fake.rename(alice, "alicia")
        alice.followers = 23_456
        await d.poll()

        # the same account row goes on: history kept, the platform's new spelling stored beside it
        assert [s.followers for s in d.samples(refs[0])][-1] == fake.expected_followers(alice)
        assert len(d.samples(refs[0])) == 2
        assert d.platform_handle(refs[0]).lower() == fake.written(fake.stored_handle("alicia")).lower()


async def test_the_first_rename_is_recorded_as_an_event(tmp_path: Path) -> None:
    async with deployed("github", tmp_path) as d:
        alice = d.world.fake.add("alice", 10)
        ref = d.watch(alice)
        await d.poll()
        d.world.fake.rename(alice, "alicia")
        await d.poll()
        assert ("renamed", "alice -> alicia") in [(kind, detail) for _, kind, detail in d.store.events(ref)]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(
    "fault",
    [
        Fault.SERVER_ERROR,
        Fault.INVALID_JSON,
        Fault.HUGE_BODY,
        Fault.TRUNCATED,
        Fault.SLOW,
        Fault.RATE_LIMIT,
        Fault.EXTRA_ACCOUNT,
    ],
)
async def test_a_fault_leaves_the_database_correct_and_polling_recovers(
    platform: str, fault: Fault, tmp_path: Path
) -> None:
    async with deployed(platform, tmp_path) as d:
        alice = d.world.fake.add("alice", 1000)
        ref = d.watch(alice)
        await d.poll()
        before = d.samples(ref)

        d.world.fake.fail_next(fault)
        await d.poll()

        if fault is Fault.EXTRA_ACCOUNT and not d.world.fake.per_account:
            assert len(d.samples(ref)) == len(before) + 1  # the asked-for account still counts
        else:
            assert d.samples(ref) == before
            assert d.state(ref) is AccountState.ERRORING
            assert d.account(ref).last_error
        assert all(s.followers == 1000 for s in d.samples(ref))
        assert d.store.sample_count() == len(d.samples(ref))  # nothing stored for anyone else

        await d.poll(after=BACKOFF_CAP)
        assert d.state(ref) is AccountState.ACTIVE
        assert len(d.samples(ref)) > len(before)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("followers", [None, -1, 10**11])
async def test_an_impossible_count_is_never_stored(platform: str, followers: object, tmp_path: Path) -> None:
    async with deployed(platform, tmp_path) as d:
        alice = d.world.fake.add("alice", followers)
        ref = d.watch(alice)

        await d.poll()

        assert d.samples(ref) == []
        assert d.state(ref) is AccountState.ERRORING
        assert "malformed" in (d.account(ref).last_error or "")


@pytest.mark.parametrize("case", BUDGETED)
async def test_a_poll_held_back_by_a_spent_budget_changes_no_account(case: str, tmp_path: Path) -> None:
    async with deployed(case, tmp_path) as d:
        fake, platform = d.world.fake, d.world.platform
        ref = d.watch(fake.add("alice", 1000))
        await d.poll()
        before = len(fake.requests)
        await d.poll()
        # The next poll's last answer says the budget is spent until the window resets.
        fake.remaining = len(fake.requests) - before
        await d.poll(after=timedelta(seconds=1))
        answered = len(fake.requests)
        sent = d.world.registry.get_sample_value("flockwatch_polls_total", {"platform": platform})

        await d.poll(after=timedelta(seconds=1))

        assert len(fake.requests) == answered, "a request went out with the budget spent"
        assert d.state(ref) is AccountState.ACTIVE and d.account(ref).last_error is None
        assert len(d.samples(ref)) == 3
        labels = {"platform": platform, "kind": "rate_limited"}
        assert d.world.registry.get_sample_value("flockwatch_poll_errors_total", labels) == 1
        assert d.world.registry.get_sample_value("flockwatch_polls_total", {"platform": platform}) == sent

        await d.poll()  # the window has reset
        assert len(d.samples(ref)) == 4 and d.state(ref) is AccountState.ACTIVE


@pytest.mark.parametrize("case", ["mastodon", "x", "github-repositories"])
@pytest.mark.parametrize(
    "hostile", ["a" * 300, "ali\x00ce", "ali\ud800ce"], ids=["300 characters", "NUL", "surrogate"]
)
async def test_a_hostile_answer_leaves_every_other_sample_written(
    case: str, hostile: str, db_url: str, tmp_path: Path
) -> None:
    async with deployed(case, tmp_path, db_url=db_url) as d:
        fake = d.world.fake
        alice, bob = fake.add("alice", 1000), fake.add("bob", 2000)
        refs = [d.watch(alice), d.watch(bob)]
        await d.poll()
        alice.handle = fake.stored_handle(hostile)

        await d.poll()

        assert [len(d.samples(ref)) for ref in refs] == [1, 2]
        assert d.state(refs[0]) is AccountState.ERRORING
        assert "malformed" in (d.account(refs[0]).last_error or "")
        fake.rename(alice, "alice")
        await d.poll()
        assert [len(d.samples(ref)) for ref in refs] == [2, 3]
        assert all(d.state(ref) is AccountState.ACTIVE for ref in refs)
