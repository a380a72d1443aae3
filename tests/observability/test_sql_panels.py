"""The PostgreSQL panels' SQL runs on the flockwatch schema (migrations applied) and returns the account's rows.

Grafana's ``$__timeFilter(column)`` macro is expanded the way its PostgreSQL datasource does; on SQLite, whose
timestamps are stored as text, it becomes a plain ``IS NOT NULL``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, text

from service.store import models
from tests.observability.support import sql_panel_queries, substitute

T0 = datetime(2026, 5, 31, tzinfo=UTC)
VALUES = {"datasource": "flockwatch-prometheus", "platform": "mastodon", "account": "founding@demo.example"}
SQL = sql_panel_queries()


def store_history(engine: Engine) -> None:
    with engine.begin() as conn:
        ids = {}
        for handle in ("founding@demo.example", "someone@else.example"):
            row = {
                "platform": "mastodon",
                "handle": handle,
                "watched": True,
                "state": "active",
                "added_at": T0,
            }
            ids[handle] = conn.execute(
                insert(models.Account).values(row).returning(models.Account.id)
            ).scalar_one()
        for account_id in ids.values():
            conn.execute(
                insert(models.Sample),
                [
                    {
                        "account_id": account_id,
                        "observed_at": T0 + timedelta(days=day),
                        "followers": 9_500 + 768 * day,
                        "following": 150,
                        "posts": 40,
                        "followers_step": 1,
                    }
                    for day in range(40)
                ],
            )
        # before the raw samples' retention only daily rollups are left; one day overlaps the raw samples
        conn.execute(
            insert(models.DailyRollup),
            [
                {
                    "account_id": ids["founding@demo.example"],
                    "bucket": T0 + timedelta(days=day),
                    "first_at": T0 + timedelta(days=day),
                    "first_followers": 1_000 + 10 * day,
                    "last_at": T0 + timedelta(days=day, hours=23),
                    "last_followers": 1_000 + 10 * day,
                    "min_followers": 1_000,
                    "max_followers": 9_000,
                    "samples": 96,
                    "last_following": 150,
                    "last_posts": 40,
                    "followers_step": 1,
                }
                for day in range(-10, 1)
            ],
        )
        conn.execute(
            insert(models.Detection).values(
                platform="mastodon",
                account_id=ids["founding@demo.example"],
                account="mastodon:founding@demo.example",
                kind="regular_growth",
                detector="regular_growth",
                started_at=T0 + timedelta(days=2),
                detected_at=T0 + timedelta(days=9),
                ended_at=None,
                updated_at=T0 + timedelta(days=9),
                score=0.98,
                severity="critical",
                summary="gained +768/day for 7 days with sd 0",
            )
        )


def expand(sql: str, backend: str) -> str:
    if backend == "postgresql":
        frame = (
            f"BETWEEN '{(T0 - timedelta(days=30)).isoformat()}' AND '{(T0 + timedelta(days=90)).isoformat()}'"
        )
        sql = re.sub(r"\$__timeFilter\(([\w.]+)\)", rf"\1 {frame}", sql)
    else:
        sql = re.sub(r"\$__timeFilter\(([\w.]+)\)", r"\1 IS NOT NULL", sql)
    return substitute(sql, VALUES)


@pytest.mark.parametrize("sql", SQL)
def test_panel_sql_returns_only_the_accounts_rows(engine: Engine, sql: str) -> None:
    store_history(engine)
    with engine.connect() as conn:
        rows = conn.execute(text(expand(sql, engine.dialect.name))).mappings().all()
    assert rows, sql
    if "followers" in rows[0]:
        # ten days from the daily rollups, then the 40 raw samples (the rollup day they cover is left out)
        assert [row["followers"] for row in rows[:10]] == [1_000 + 10 * day for day in range(-10, 0)]
        assert len(rows) == 50 and rows[-1]["followers"] == 9_500 + 768 * 39
    else:
        assert [row["summary"] for row in rows] == ["gained +768/day for 7 days with sd 0"]
