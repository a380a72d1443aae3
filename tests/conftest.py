"""Fixtures shared by every suite: databases (SQLite and PostgreSQL through one parametrized fixture), clocks."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.clock import ManualClock
from service.store.database import open_engine, upgrade
from service.store.repository import Store

PG_URL = os.environ.get(
    "FLOCKWATCH_TEST_PG_URL", "postgresql+psycopg://flockwatch:flockwatch@127.0.0.1:5432/flockwatch_test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
T0 = datetime(2026, 5, 31, tzinfo=UTC)


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    return None


_PG_PROBLEM: str | bool | None = False  # False: not checked yet


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test compiled modules older than their sources: the tests would pass on old code (unless
    FLOCKWATCH_PURE_PYTHON=1 asks for the sources, which the engine's package then loads instead)."""
    if os.environ.get("FLOCKWATCH_PURE_PYTHON", "") not in ("", "0"):
        return
    root = Path(__file__).resolve().parents[1] / "service"
    stale = [
        str(built.relative_to(root.parent))
        for built in root.rglob("*.so")
        if (source := built.with_name(built.name.split(".")[0] + ".py")).exists()
        and source.stat().st_mtime > built.stat().st_mtime
    ]
    if stale:
        raise pytest.UsageError(
            f"compiled modules older than their sources: {', '.join(sorted(stale))}; "
            "rebuild them with `make install` (setup.py compiles service/detection with mypyc)"
        )


def postgres_or_skip() -> None:
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _postgres_problem()
    if _PG_PROBLEM:
        message = f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()}: {_PG_PROBLEM}"
        if IN_CI:
            pytest.fail(message + " (CI must run the PostgreSQL tests; .ci/run starts the server)")
        pytest.skip(message + " (set FLOCKWATCH_TEST_PG_URL or start PostgreSQL to run these)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose connections use a schema of their own, dropped afterwards."""
    postgres_or_skip()
    with pg_schema() as url:
        yield url


@contextmanager
def pg_schema() -> Iterator[str]:
    """A URL whose connections use a new schema, dropped on leaving the block."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against the embedded default and the production database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flockwatch.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def index_definition(engine: Engine, name: str) -> str | None:
    """How the database states the index ``name`` (PostgreSQL's indexdef, SQLite's CREATE INDEX), None
    without one."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            sql = "SELECT indexdef FROM pg_indexes WHERE indexname = :name AND schemaname = current_schema()"
        else:
            sql = "SELECT sql FROM sqlite_master WHERE name = :name"
        found = conn.execute(text(sql), {"name": name}).scalar()
    return None if found is None else str(found)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)
