"""The real Mastodon client against the simulated platform on a real socket, writing to a real database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry

from service.accounts import AccountRef
from service.board import Board
from service.clock import ManualClock
from service.metrics import ServiceMetrics
from service.poller import Poller
from service.samples import AccountState
from service.simulator.scenarios import demo_scenarios
from service.simulator.server import SimulatedPlatform
from service.sources.base import FetchResult, Target
from service.sources.platforms.mastodon import MastodonSource
from service.store.repository import Store
from service.writer import SampleWriter

FOUNDING = AccountRef("mastodon", "founding@demo.example")
BURST = AccountRef("mastodon", "burst@demo.example")
VIRAL = AccountRef("mastodon", "viral@demo.example")
WATCHED = (FOUNDING, BURST, VIRAL)


@pytest.fixture
async def platform(clock: ManualClock) -> AsyncIterator[SimulatedPlatform]:
    simulated = SimulatedPlatform(demo_scenarios(), clock)
    simulated.slow_seconds = 4.0  # well past the client timeout below, which a loaded machine must still meet
    await simulated.start()
    yield simulated
    await simulated.stop()


class Pipeline:
    def __init__(self, store: Store, platform: SimulatedPlatform, clock: ManualClock) -> None:
        self.store, self.platform, self.clock = store, platform, clock
        self.registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.registry)
        self.board = Board()
        self.writer = SampleWriter(store, self.metrics)
        client = httpx.AsyncClient(timeout=2.0)
        self.poller = Poller(
            MastodonSource(client, platform.base_url), self.writer, self.board, self.metrics, clock
        )
        for ref in WATCHED:
            store.watch(ref, clock.now())
        self.board.keep_only(set(WATCHED))

    async def poll(self) -> None:
        await self.poller.poll(self.store.watched())
        assert await self.writer.flush()

    def state(self, ref: AccountRef) -> tuple[AccountState, str | None]:
        account = next(a for a in self.store.watched() if a.ref == ref)
        return account.state, account.last_error

    def errors(self, kind: str) -> float:
        value = self.registry.get_sample_value(
            "flockwatch_poll_errors_total", {"platform": "mastodon", "kind": kind}
        )
        return value or 0.0


@pytest.fixture
async def pipeline(store: Store, platform: SimulatedPlatform, clock: ManualClock) -> AsyncIterator[Pipeline]:
    built = Pipeline(store, platform, clock)
    yield built
    await built.poller.source.aclose()


async def test_each_poll_stores_the_counts_the_platform_shows(pipeline: Pipeline) -> None:
    for _ in range(3):
        await pipeline.poll()
        pipeline.clock.advance(timedelta(days=1))
    history = pipeline.store.history(FOUNDING)
    scenario = pipeline.platform.scenarios["founding@demo.example"]
    assert [s.followers for s in history] == [scenario.followers(d) for d in (0, 1, 2)]
    assert all(s.following is not None and s.posts is not None for s in history)
    assert pipeline.state(FOUNDING) == (AccountState.ACTIVE, None)
    assert next(a for a in pipeline.store.watched() if a.ref == FOUNDING).platform_id is not None


@pytest.mark.parametrize(
    ("fault", "state", "kind", "reason"),
    [
        ("not_found", AccountState.NOT_FOUND, "account", "does not know this account"),
        ("server_error", AccountState.ERRORING, "http_5xx", "HTTP 503"),
        ("slow", AccountState.ERRORING, "timeout", "did not answer in time"),
        ("invalid_json", AccountState.ERRORING, "invalid_response", "not JSON"),
        ("suspended", AccountState.SUSPENDED, "account", "suspended"),
    ],
)
async def test_a_failing_account_changes_state_and_counts_an_error_without_a_sample(
    pipeline: Pipeline, fault: str, state: AccountState, kind: str, reason: str
) -> None:
    await pipeline.poll()
    pipeline.clock.advance(timedelta(hours=1))
    pipeline.platform.set_fault(BURST.handle, fault)
    await pipeline.poll()
    got_state, error = pipeline.state(BURST)
    assert got_state is state and error is not None and reason in error
    assert pipeline.errors(kind) == 1
    assert len(pipeline.store.history(BURST)) == 1  # nothing was made up for the failed poll
    assert len(pipeline.store.history(FOUNDING)) == 2  # the others were polled as usual
    assert len(pipeline.store.history(VIRAL)) == 2


async def test_failure_and_recovery_each_log_one_line(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    await pipeline.poll()
    pipeline.platform.set_fault(BURST.handle, "server_error")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="service.poller"):
        for _ in range(3):
            pipeline.clock.advance(timedelta(hours=1))
            await pipeline.poll()
        pipeline.platform.set_fault(BURST.handle, None)
        for _ in range(2):
            pipeline.clock.advance(timedelta(hours=1))
            await pipeline.poll()
    lines = [(r.getMessage(), getattr(r, "account", None)) for r in caplog.records]
    assert lines == [
        ("account poll failed", str(BURST)),
        ("account recovered", str(BURST)),
    ]
    assert pipeline.state(BURST) == (AccountState.ACTIVE, None)


async def test_the_board_shows_what_was_stored(pipeline: Pipeline) -> None:
    await pipeline.poll()
    pipeline.clock.advance(timedelta(days=3))
    await pipeline.poll()
    view = pipeline.board.view(FOUNDING)
    assert view.latest is not None
    assert view.latest.followers == pipeline.store.history(FOUNDING)[-1].followers
    assert view.change(timedelta(hours=24)) == view.latest.followers - 9_500


async def test_an_account_that_is_gone_is_asked_again_after_an_hour_then_six_then_daily(
    pipeline: Pipeline,
) -> None:
    pipeline.platform.set_fault(BURST.handle, "not_found")
    waits = []
    for _ in range(4):
        await pipeline.poll()
        account = next(a for a in pipeline.store.watched() if a.ref == BURST)
        assert account.next_poll_at is not None and account.last_polled_at is not None
        waits.append(account.next_poll_at - account.last_polled_at)
        pipeline.clock.set(account.next_poll_at)
    assert waits == [timedelta(hours=1), timedelta(hours=6), timedelta(days=1), timedelta(days=1)]
    pipeline.platform.set_fault(BURST.handle, None)
    await pipeline.poll()
    account = next(a for a in pipeline.store.watched() if a.ref == BURST)
    assert (account.state, account.next_poll_at, account.backoff_step) == (AccountState.ACTIVE, None, 0)


class _Exploding:
    """A source with a bug: anything it is asked about one account raises something no one expected."""

    platform = "mastodon"
    batch_size = 1

    def __init__(self, inner: object, bad: str) -> None:
        self._inner = inner
        self._bad = bad

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        if any(t.handle == self._bad for t in targets):
            raise RecursionError("maximum recursion depth exceeded while decoding a JSON object")
        return await self._inner.fetch(targets)  # type: ignore[attr-defined, no-any-return]

    async def aclose(self) -> None:
        await self._inner.aclose()  # type: ignore[attr-defined]


async def test_a_source_that_raises_anything_fails_only_its_own_batch(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.poller.source = _Exploding(pipeline.poller.source, BURST.handle)  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="service.poller"):
        await pipeline.poll()
    state, error = pipeline.state(BURST)
    assert state is AccountState.ERRORING and error is not None
    assert pipeline.errors("internal") == 1
    assert len(pipeline.store.history(FOUNDING)) == 1 and len(pipeline.store.history(VIRAL)) == 1
    assert any("RecursionError" in (r.exc_text or "") or r.exc_info for r in caplog.records)
