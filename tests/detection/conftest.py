"""Fixtures for the detection tests: the shared database fixture under the name these tests use, and an
interpreted copy of the service package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database_url(engine: Engine, db_url: str) -> str:
    """A migrated, empty database: SQLite in a temp folder, or a throw-away schema on PostgreSQL."""
    return db_url


@pytest.fixture(scope="session")
def interpreted_service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder to put first on PYTHONPATH: the ``service`` package without its compiled modules, as
    ``FLOCKWATCH_PURE_PYTHON=1`` installs it."""
    folder = tmp_path_factory.mktemp("interpreted")
    shutil.copytree(ROOT / "service", folder / "service", ignore=shutil.ignore_patterns("*.so"))
    return folder
