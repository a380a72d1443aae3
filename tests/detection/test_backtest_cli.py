"""``flockwatch backtest`` end to end: the exact output interface other tools depend on."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.cli import main

FIELDS = [
    "platform",
    "account",
    "kind",
    "detector",
    "started_at",
    "detected_at",
    "ended_at",
    "score",
    "severity",
    "summary",
]
ROOT = Path(__file__).resolve().parents[2]


def history_rows() -> list[tuple[str, str, int]]:
    """Two accounts: a quiet one and one with the founding case's drip, as (timestamp, account, followers)."""
    rng = random.Random(1)
    start = datetime(2026, 4, 1, tzinfo=UTC)
    rows = []
    quiet, bought = 5_000, 9_000
    for day in range(60):
        when = start + timedelta(days=day)
        quiet += rng.randint(0, 20)
        bought += 768 if 30 <= day < 45 else rng.randint(0, 12)
        rows.append((when.strftime("%Y-%m-%dT%H:%M:%SZ"), "x:quiet", quiet))
        rows.append((when.strftime("%Y-%m-%dT%H:%M:%SZ"), "x:bought", bought))
    return rows


def write_csv(
    path: Path, rows: list[tuple[str, str, int]], header: str = "timestamp,account,followers"
) -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{a},{f}\n" for t, a, f in rows))
    return path


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_jsonl_has_exactly_the_documented_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = backtest(capsys, str(write_csv(tmp_path / "h.csv", history_rows())), "--format", "jsonl")

    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    regular = [r for r in records if r["kind"] == "regular_growth"]
    assert len(regular) == 1
    assert list(regular[0]) == FIELDS
    assert regular[0]["account"] == "x:bought" and regular[0]["platform"] == "x"
    assert regular[0]["started_at"].endswith("Z") and regular[0]["ended_at"] == "2026-05-15T00:00:00Z"
    assert 0.0 <= regular[0]["score"] <= 1.0 and regular[0]["severity"] == "critical"
    assert "replaying 120 samples of 2 accounts" in err


def test_unsorted_interleaved_rows_give_the_same_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = history_rows()
    _, in_order, _ = backtest(capsys, str(write_csv(tmp_path / "a.csv", rows)))
    random.Random(2).shuffle(rows)
    _, shuffled, _ = backtest(capsys, str(write_csv(tmp_path / "b.csv", rows)))

    assert shuffled == in_order and in_order


def test_unix_seconds_bare_dates_and_columns_in_any_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = history_rows()
    iso = write_csv(tmp_path / "iso.csv", rows)
    unix = tmp_path / "unix.csv"
    unix.write_text(
        "followers,following,account,timestamp\n"
        + "".join(
            f"{f},,{a},{int(datetime.fromisoformat(t.replace('Z', '+00:00')).timestamp())}\n"
            for t, a, f in rows
        )
    )
    dates = write_csv(tmp_path / "dates.csv", [(t[:10], a, f) for t, a, f in rows])

    outputs = [backtest(capsys, str(path))[1] for path in (iso, unix, dates)]

    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]


def test_table_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = backtest(capsys, str(write_csv(tmp_path / "h.csv", history_rows())), "--format", "table")

    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:4] == ["ACCOUNT", "KIND", "SEVERITY", "STARTED"]
    assert any("x:bought" in line and "regular_growth" in line and "+768/day" in line for line in lines)


def test_malformed_row_stops_with_file_line_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = history_rows()
    rows[4] = (rows[4][0], "x:bought", -5)
    path = write_csv(tmp_path / "bad.csv", rows)

    code, out, err = backtest(capsys, str(path))

    assert code == 2 and out == ""
    assert f"{path}:6: followers -5 is negative" in err


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("yesterday,x:a,10", "neither ISO 8601 nor Unix seconds"),
        ("2026-04-01T10:00:00,x:a,10", "no zone"),
        ("2026-04-01,nowhere:a,10", "unknown platform"),
        ("2026-04-01,x:a,ten", "not a number"),
        ("2026-04-01,x:a", "expected at least 3 columns"),
    ],
)
def test_each_kind_of_bad_row_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, reason: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"timestamp,account,followers\n2026-04-01,x:a,5\n{row}\n")

    code, _, err = backtest(capsys, str(path))

    assert code == 2 and f"{path}:3:" in err and reason in err


def test_skip_bad_rows_counts_and_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = history_rows()
    rows[4] = (rows[4][0], "x:bought", -5)
    rows[7] = ("not-a-time", "x:bought", 10)

    code, out, err = backtest(capsys, str(write_csv(tmp_path / "bad.csv", rows)), "--skip-bad-rows")

    assert code == 0 and "regular_growth" in out
    assert "skipped 2 malformed rows" in err


def test_missing_header_column_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.csv"
    path.write_text("time,account,followers\n")

    assert backtest(capsys, str(path))[0] == 2
    code, _, err = backtest(capsys, str(tmp_path / "absent.csv"))
    assert code == 2 and "cannot read" in err


def test_runs_as_a_command(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", history_rows())
    done = subprocess.run(
        [sys.executable, "-m", "service", "backtest", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )

    assert done.returncode == 0, done.stderr
    assert any(json.loads(line)["kind"] == "regular_growth" for line in done.stdout.splitlines())
