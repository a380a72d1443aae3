"""The fast per-account exposition renders exactly what the daemon's collector does, and follows changes."""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from service.accounts import AccountRef
from service.board import Board
from service.exposition import BLOCK_ITEMS, AccountExposition
from service.metrics import AccountCollector
from service.samples import AccountState, Sample
from tests.observability.support import require_tool

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def board_with_history() -> Board:
    refs = [
        AccountRef(platform, f"user{i}")
        for i, platform in enumerate(["x", "mastodon", "github", "youtube"] * 3)
    ]
    refs[1] = AccountRef("mastodon", "someone@example.social")
    board = Board()
    board.keep_only(set(refs))
    for number, ref in enumerate(refs):
        if number % 5 == 4:
            continue  # never polled: pending, no samples
        for hour in range(number * 20, -1, -1):
            following = None if number % 3 == 0 else 100 + hour
            sample = Sample(
                ref, NOW - timedelta(hours=hour), 10_000 + 7 * number * (200 - hour), following, 42
            )
            board.record_sample(sample)
        state = AccountState.SUSPENDED if number % 7 == 6 else AccountState.ACTIVE
        board.record_state(ref, state, None, NOW)
    return board


def collector_page(board: Board) -> bytes:
    registry = CollectorRegistry()
    registry.register(AccountCollector(board))
    return generate_latest(registry)


def test_same_page_as_the_collector() -> None:
    board = board_with_history()
    assert AccountExposition(board).render() == collector_page(board)
    assert AccountExposition(Board()).render() == collector_page(Board())


def test_follows_new_samples_states_and_the_watchlist() -> None:
    board = board_with_history()
    exposition = AccountExposition(board)
    exposition.render()
    ref = AccountRef("mastodon", "someone@example.social")
    board.record_sample(Sample(ref, NOW + timedelta(hours=1), 123_456, 7, 8))
    board.record_state(ref, AccountState.ERRORING, "timeout", NOW + timedelta(hours=2))
    board.keep_only({view.ref for view in board.views()} - {AccountRef("x", "user0")})
    page = exposition.render()
    assert page == collector_page(board)
    assert b'flockwatch_followers{account="someone@example.social",platform="mastodon"} 123456.0' in page
    assert b'account="user0"' not in page


def test_promtool_accepts_the_page() -> None:
    promtool = require_tool("promtool")
    page = AccountExposition(board_with_history()).render()
    result = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, check=False)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize("seed", range(5))
def test_same_changes_as_the_board_with_irregular_sampling(seed: int) -> None:
    rng = random.Random(seed)
    board = Board()
    refs = [AccountRef("github", f"user{i}") for i in range(20)]
    board.keep_only(set(refs))
    for ref in refs:
        at, followers = NOW - timedelta(days=rng.uniform(0, 9)), rng.randrange(10**6)
        while at < NOW:
            board.record_sample(Sample(ref, at, followers))
            at += timedelta(minutes=rng.choice([1, 7, 15, 59, 61, 180, 1500]))
            followers += rng.randrange(-50, 500)
        board.record_state(ref, AccountState.ACTIVE, None, NOW)
    assert AccountExposition(board).render() == collector_page(board)


def test_a_large_watchlist_keeps_its_lines_small_and_follows_scattered_changes() -> None:
    refs = [AccountRef("x", f"user{i}") for i in range(2 * BLOCK_ITEMS + 17)]
    board = Board()
    board.keep_only(set(refs))
    for number, ref in enumerate(refs):
        board.record_sample(Sample(ref, NOW - timedelta(hours=1), 1_000 + number, 5, 6))
        board.record_state(ref, AccountState.ACTIVE, None, NOW)
    exposition = AccountExposition(board)
    first = exposition.render()
    for ref in refs[::97]:  # one account in 97 polled again, in every block
        board.record_sample(Sample(ref, NOW, 777_777, 5, 6))
    board.keep_only(set(refs[5:]))  # and the first few leave: every block's accounts shift
    page = exposition.render()
    assert page == collector_page(board) and page != first
    assert page.count(b"} 777777.0\n") == len([ref for ref in refs[::97] if ref in set(refs[5:])])
    kept = sum(len(packed) for block in exposition._lines._blocks for packed in block.families)
    assert kept < len(page) / 5  # deflated, not kept as text
