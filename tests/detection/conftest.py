"""Fixtures for the detection tests: series builders and a database on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from service.store.database import open_engine, upgrade

PG_URL = os.environ.get(
    "FLOCKWATCH_TEST_PG_URL", "postgresql+psycopg://flockwatch:flockwatch@127.0.0.1:5432/flockwatch_test"
)


def _postgres_schema_url() -> tuple[Engine, str, str]:
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    schema = f"detect_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL not reachable at FLOCKWATCH_TEST_PG_URL ({exc.orig})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    separator = "&" if "?" in PG_URL else "?"
    return admin, schema, f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: SQLite in a temp folder, or a throw-away schema on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'flockwatch.db'}"
        engine = open_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    admin, schema, url = _postgres_schema_url()
    engine = open_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
