"""Fixtures for the detection tests: the shared database fixture under the name these tests use."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


@pytest.fixture
def database_url(engine: Engine, db_url: str) -> str:
    """A migrated, empty database: SQLite in a temp folder, or a throw-away schema on PostgreSQL."""
    return db_url
