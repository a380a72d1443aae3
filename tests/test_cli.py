"""The command line as a user meets it: exit codes, messages, and what ends up in the database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.cli import main


@pytest.fixture
def db_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FLOCKWATCH_DATABASE__URL", db_url)
    monkeypatch.delenv("FLOCKWATCH_CONFIG", raising=False)
    return db_url


def test_watch_add_list_remove_and_status(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["watch", "add", "github:torvalds", "mastodon:Gargron@mastodon.social", "--interval", "1h"]) == 0
    )
    assert main(["watch", "add", "github:torvalds"]) == 0
    out = capsys.readouterr().out
    assert out.count("watching:") == 2 and "already watched: github:torvalds" in out
    assert main(["watch", "list"]) == 0
    listing = capsys.readouterr().out
    assert "github:torvalds" in listing and "1h" in listing and "pending" in listing
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert "mastodon:Gargron@mastodon.social" in status and "never" in status
    assert main(["watch", "remove", "github:torvalds", "github:nobody"]) == 1
    assert "was not watched: github:nobody" in capsys.readouterr().out
    assert main(["watch", "list"]) == 0
    assert "github:torvalds" not in capsys.readouterr().out


def test_a_malformed_account_changes_nothing(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "add", "github:torvalds", "torvalds", "myspace:tom"]) == 2
    err = capsys.readouterr().err
    assert (
        "nothing was changed" in err and "'torvalds' is not an account" in err and "unknown platform" in err
    )
    assert main(["watch", "list"]) == 0
    assert "the watchlist is empty" in capsys.readouterr().out


def test_db_upgrade_reports_the_revision(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    from alembic.script import ScriptDirectory

    from service.store.database import alembic_config

    assert main(["db", "upgrade"]) == 0
    (head,) = ScriptDirectory.from_config(alembic_config(None)).get_heads()  # type: ignore[arg-type]
    assert f"newest schema (revision {head})" in capsys.readouterr().out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_exits_2_with_a_clear_message_and_no_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql+psycopg://flockwatch:hunter2secret@127.0.0.1:{_closed_port()}/flockwatch"
    monkeypatch.setenv("FLOCKWATCH_DATABASE__URL", url)
    monkeypatch.setenv("FLOCKWATCH_HTTP__LISTEN", "127.0.0.1:0")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the database" in err and "127.0.0.1" in err
    assert "hunter2secret" not in err


def test_a_missing_sqlite_folder_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOCKWATCH_DATABASE__URL", f"sqlite:///{tmp_path / 'nope' / 'f.db'}")
    assert main(["status"]) == 2
    assert "folder for the SQLite database does not exist" in capsys.readouterr().err


def test_an_invalid_config_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yml"
    config.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'f.db'}'}}\nwatchlist: [myspace:tom]\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "watchlist.0.account" in capsys.readouterr().err
    assert not (tmp_path / "f.db").exists()


@pytest.mark.slow
def test_the_demo_serves_accounts_within_a_minute_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = _closed_port()
    db = tmp_path / "demo.db"
    command = [
        sys.executable,
        "-m",
        "service",
        "demo",
        "--listen",
        f"127.0.0.1:{port}",
        "--db",
        f"sqlite:///{db}",
    ]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        accounts = _wait_for_accounts(f"http://127.0.0.1:{port}/metrics", within=60)
        assert accounts >= 10
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}/metrics" in err and str(db) in err
    assert "flockwatch stopped" in err and "unwritten_samples=0" in err
    import sqlite3

    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT COUNT(DISTINCT account_id) FROM samples").fetchone()[0]
    assert stored >= 10


def _wait_for_accounts(url: str, within: float) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            page = httpx.get(url, timeout=2).text
            accounts = sum(1 for line in page.splitlines() if line.startswith("flockwatch_followers{"))
            if accounts >= 10:
                return accounts
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no 10 accounts on {url} within {within} s")


def test_a_non_positive_interval_changes_nothing(db_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "add", "github:torvalds", "--interval", "0s"]) == 2
    assert "--interval must be longer than zero" in capsys.readouterr().err
    assert main(["watch", "list"]) == 0
    assert "the watchlist is empty" in capsys.readouterr().out
