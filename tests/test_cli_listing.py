"""``status`` and ``detections`` on SQLite and PostgreSQL: a page at a time, sorted and filtered in the
database, in a table, JSON lines or CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from service.accounts import AccountRef
from service.cli import main
from service.config import RetentionConfig
from service.samples import AccountState, Sample
from service.store.repository import AccountUpdate, DetectionRow, Store
from service.store.rollups import Maintenance
from tests.conftest import T0, index_definition

STEADY = AccountRef("x", "steady")
GROWER = AccountRef("mastodon", "grower@example.social")
SHRINKER = AccountRef("bluesky", "shrinker.bsky.social")
REPO = AccountRef("github", "octo-org/hello")


def _fleet(engine: Engine) -> Store:
    """Four accounts with eight days of 15-minute samples (rolled up), one of them a repository."""
    store = Store(engine)
    store.watch_many([STEADY, GROWER, SHRINKER, REPO], T0)
    ids = store.account_ids([STEADY, GROWER, SHRINKER, REPO])
    per_step = {STEADY: 1, GROWER: 10, SHRINKER: -3, REPO: 2}
    rows = []
    for step in range(8 * 96 + 1):
        at = T0 + timedelta(minutes=15 * step)
        rows += [(ids[ref], Sample(ref, at, 10_000 + change * step)) for ref, change in per_step.items()]
    store.write(rows, [AccountUpdate(ids[ref], T0 + timedelta(days=8), AccountState.ACTIVE) for ref in ids])
    Maintenance(engine, RetentionConfig()).roll_up_range(T0, T0 + timedelta(days=8, hours=1))
    return store


def _detection(account: AccountRef, account_id: int, kind: str, score: float, severity: str) -> DetectionRow:
    at = T0 + timedelta(days=7)
    return DetectionRow(
        key=f"{account}|{kind}|{kind}|1",
        account_id=account_id,
        platform=account.platform,
        account=str(account),
        kind=kind,
        detector=kind,
        started_at=at,
        detected_at=at + timedelta(hours=score * 10),
        ended_at=None,
        updated_at=at,
        score=score,
        severity=severity,
        summary=f"{kind} of {account}",
    )


def _run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--db", url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_sorts_by_change_and_says_how_many_more(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _fleet(engine)
    code, out, _ = _run(capsys, db_url, "status", "--sort", "change-24h", "--limit", "2")

    assert code == 0
    lines = out.splitlines()
    # From the last hourly point at or before 24 h ago: that hour's last sample (00:45) is after it, so
    # the point of the hour before (23:45), 97 steps back, as /metrics' flockwatch_followers_change.
    assert lines[1].startswith(str(GROWER)) and "+970" in lines[1]
    assert lines[2].startswith(str(REPO)) and "+194" in lines[2]
    assert lines[3] == "... and 2 more (--limit 0 lists them all)"

    code, out, _ = _run(capsys, db_url, "status", "--sort", "change-24h", "--reverse", "--limit", "1")
    assert out.splitlines()[1].startswith(str(SHRINKER)) and "-291" in out


def test_status_says_stars_for_a_repository_and_count_for_a_mixed_table(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _fleet(engine)
    _, out, _ = _run(capsys, db_url, "status", "--platform", "github")
    assert out.split()[:2] == ["ACCOUNT", "STARS"]

    _, out, _ = _run(capsys, db_url, "status", "--sort", "account")
    assert out.split()[:2] == ["ACCOUNT", "COUNT"]
    repository = next(line for line in out.splitlines() if line.startswith(str(REPO)))
    assert "11,536 stars" in repository and "10,768 followers" in out


def test_status_as_json_lines_and_csv(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _fleet(engine)
    _, out, err = _run(capsys, db_url, "status", "--format", "jsonl", "--sort", "growth-7d", "--limit", "3")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["account"] for r in records] == [str(GROWER), str(REPO), str(STEADY)]
    grower = records[0]
    assert grower["noun"] == "followers" and grower["change_7d"] == 6_730
    assert grower["growth_7d"] == pytest.approx(6_730 / (17_680 - 6_730))
    assert records[1]["noun"] == "stars"
    assert "1 more" in err  # the count of rows left out stays out of machine-readable output

    _, out, _ = _run(capsys, db_url, "status", "--format", "csv", "--limit", "0")
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 4 and {row["state"] for row in table} == {"active"}


def test_status_filters_by_ongoing_detections(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _fleet(engine)
    ids = store.account_ids([GROWER, SHRINKER])
    store.write_batch(
        [],
        [],
        [
            _detection(GROWER, ids[GROWER], "regular_growth", 0.9, "critical"),
            _detection(SHRINKER, ids[SHRINKER], "drop", 0.4, "info"),
        ],
    )
    _, out, _ = _run(capsys, db_url, "status")  # by score: the worst first
    assert [line.split()[0] for line in out.splitlines()[1:3]] == [str(GROWER), str(SHRINKER)]
    assert "0.90" in out.splitlines()[1]

    _, out, _ = _run(capsys, db_url, "status", "--active", "--severity", "warning")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(GROWER)]
    _, out, _ = _run(capsys, db_url, "status", "--kind", "drop", "--format", "jsonl")
    assert [json.loads(line)["account"] for line in out.splitlines()] == [str(SHRINKER)]


def test_status_counts_accounts_not_their_ongoing_detections(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _fleet(engine)
    ids = store.account_ids([GROWER])
    burst = _detection(GROWER, ids[GROWER], "burst", 0.5, "warning")
    store.write_batch([], [], [_detection(GROWER, ids[GROWER], "regular_growth", 0.9, "critical"), burst])

    _, out, _ = _run(capsys, db_url, "status", "--limit", "1")  # by score, no filter on detections
    assert out.splitlines()[1].split()[:1] == [str(GROWER)] and out.splitlines()[1].split()[-4] == "2"
    assert out.splitlines()[-1] == "... and 3 more (--limit 0 lists them all)"
    _, out, _ = _run(capsys, db_url, "status", "--active", "--limit", "0")
    assert len(out.splitlines()) == 2  # the header and the one account, once


def test_status_change_falls_back_to_raw_samples_without_rollups(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(engine)
    store.watch(STEADY, T0)
    (account_id,) = store.account_ids([STEADY]).values()
    store.write([(account_id, Sample(STEADY, T0 + timedelta(hours=h), 500 + h)) for h in range(30)], [])

    _, out, _ = _run(capsys, db_url, "status", "--format", "jsonl")
    assert json.loads(out)["change_24h"] == 24 and json.loads(out)["change_7d"] is None


def test_detections_page_sort_and_filters(
    db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _fleet(engine)
    ids = store.account_ids([GROWER, SHRINKER, STEADY])
    store.write_batch(
        [],
        [],
        [
            _detection(GROWER, ids[GROWER], "regular_growth", 0.9, "critical"),
            _detection(SHRINKER, ids[SHRINKER], "drop", 0.4, "info"),
            _detection(STEADY, ids[STEADY], "burst", 0.6, "warning"),
        ],
    )
    _, out, _ = _run(capsys, db_url, "detections", "--limit", "1")  # newest first
    assert "regular_growth" in out and "... and 2 more" in out

    _, out, _ = _run(capsys, db_url, "detections", "--sort", "score", "--reverse", "--format", "jsonl")
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["drop", "burst", "regular_growth"]

    _, out, _ = _run(
        capsys, db_url, "detections", "--severity", "warning", "--platform", "x", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["account"], r["kind"]) for r in rows] == [(str(STEADY), "burst")]


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--limit", "-1"],
        ["status", "--platform", "myspace"],
        ["status", "--state", "sleeping"],
        ["detections", "--kind", "x" * 100_000],
        ["detections", "--limit", "ten"],
    ],
)
def test_bad_listing_options_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err) < 2_000


def test_migration_0003_adds_and_removes_the_ongoing_index(engine: Engine) -> None:
    from alembic import command

    from service.store.database import alembic_config

    def definition() -> str | None:
        return index_definition(engine, "ix_detections_ongoing")

    assert "ended_at IS NULL" in str(definition())  # partial: the ongoing detections only
    command.downgrade(alembic_config(engine), "0002")
    assert definition() is None
    command.upgrade(alembic_config(engine), "head")
    assert "ended_at IS NULL" in str(definition())


def test_migration_0005_adds_and_removes_the_index_of_detections_by_kind(engine: Engine) -> None:
    from alembic import command

    from service.store.database import alembic_config

    def definition() -> str | None:
        return index_definition(engine, "ix_detections_kind")

    assert "kind, severity, detected_at" in str(definition())
    command.downgrade(alembic_config(engine), "0004")
    assert definition() is None
    command.upgrade(alembic_config(engine), "head")
    assert "kind, severity, detected_at" in str(definition())
