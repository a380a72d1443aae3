"""``watch add|remove|recheck`` from arguments, files and stdin: every line checked first, then one bulk
write; a bad line changes nothing and is named by its line number."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from service.accounts import AccountRef
from service.cli import main
from service.store import models
from service.store.repository import Store


def _run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--db", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _watched(engine: Engine) -> int:
    accounts = models.table(models.Account)
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(accounts.c.watched)) or 0)


def test_ten_thousand_accounts_from_a_file_in_one_go(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "accounts.txt"
    listing.write_text(
        "# exported from elsewhere\n\n" + "".join(f"x:user{i}\n" for i in range(10_000)) + "x:user7\n"
    )
    code, out, _ = _run(capsys, db_url, "watch", "add", "--file", str(listing))

    assert code == 0 and out == "10,000 accounts: 10,000 watching, 0 already watched\n"
    assert _watched(engine) == 10_000
    changes = models.table(models.WatchlistChange)
    with engine.connect() as conn:  # a running daemon picks every one up from the change log
        assert conn.scalar(select(func.count()).select_from(changes)) == 10_000

    code, out, _ = _run(capsys, db_url, "watch", "remove", "--file", str(listing))
    assert code == 0 and _watched(engine) == 0


def test_accounts_from_stdin_and_arguments(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x:from_stdin\n  bluesky:bsky.app  \n")))
    code, out, _ = _run(capsys, db_url, "watch", "add", "github:torvalds", "-")

    assert code == 0
    assert out.splitlines() == [
        "watching: github:torvalds",
        "watching: x:from_stdin",
        "watching: bluesky:bsky.app",
    ]


def test_every_bad_line_is_named_and_nothing_changes(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "accounts.txt"
    listing.write_bytes(
        b"x:fine\nmyspace:tom\nx:nul\x00byte\nx:\xff\xfe\nx:" + b"a" * 10_000 + b"\nx:also_fine\n"
    )
    code, _, err = _run(capsys, db_url, "watch", "add", "--file", str(listing))

    assert code == 2 and "nothing was changed: 4 bad accounts" in err
    for number, reason in ((2, "unknown platform"), (3, "handle may hold"), (4, "not UTF-8"), (5, "longer")):
        assert f"accounts.txt:{number}: " in err and reason in err
    assert "Traceback" not in err and len(err) < 2_000
    assert _watched(engine) == 0


@pytest.mark.parametrize(
    "argument",
    ["x:" + "a" * 100_000, "x:lone\udcffsurrogate", "torvalds", "x:a\nx:b"],
    ids=["100,000 characters", "lone surrogate", "no platform", "newline"],
)
def test_a_hostile_argument_exits_2_with_a_short_message(
    db_url: str, engine: Engine, argument: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, db_url, "watch", "add", argument)

    assert code == 2 and "argument 1:" in err and "Traceback" not in err and len(err) < 500
    assert _watched(engine) == 0


def test_recheck_brings_a_backed_off_account_forward(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = AccountRef("x", "gone")
    store = Store(engine)
    store.watch(ref, datetime.now(UTC))
    accounts = models.table(models.Account)
    with engine.begin() as conn:  # a permanent state put the next poll off for a day
        conn.execute(
            update(accounts).values(next_poll_at=datetime.now(UTC) + timedelta(days=1), backoff_step=3)
        )

    code, out, _ = _run(capsys, db_url, "watch", "recheck", "x:gone", "x:never_watched")

    assert code == 1
    assert out.splitlines() == ["polled at the next chance: x:gone", "was not watched: x:never_watched"]
    (watched,) = store.watched()
    assert watched.next_poll_at is None and watched.backoff_step == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "add", "x:a", "--interval", "9" * 30 + "d"], "longer than any interval"),
        (["watch", "add", "x:a", "--interval", "0s"], "longer than zero"),
        (["watch", "add"], "no accounts given"),
        (["watch", "add", "--file", "/"], "cannot read /"),
        (["watch", "add", "--file", "/nonexistent/list"], "cannot read /nonexistent/list"),
    ],
)
def test_bad_watch_input_exits_2(
    db_url: str, engine: Engine, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, db_url, *args)

    assert code == 2 and message in err and "Traceback" not in err
    assert _watched(engine) == 0
