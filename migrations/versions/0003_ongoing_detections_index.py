"""the command line at fleet scale: an index of the ongoing detections per account

`flockwatch status` reads each account's ongoing detections (highest score, how many) for every page, and
filters by them (--active, --kind, --severity). Ended detections are most of the table and grow for a
year (retention.events); this partial index holds the ongoing ones alone, with their scores, so the
aggregate reads a few entries per account instead of the whole table (PostgreSQL, 100,000 accounts and
300,000 detections: 65 ms -> 8 ms). Written by hand.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 12:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONGOING = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_detections_ongoing",
        "detections",
        ["account_id", "score"],
        unique=False,
        postgresql_where=ONGOING,
        sqlite_where=ONGOING,
    )


def downgrade() -> None:
    op.drop_index("ix_detections_ongoing", table_name="detections")
