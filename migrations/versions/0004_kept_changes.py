"""the command line at fleet scale: each account's change and growth over 24 h and 7 d kept on its row

`flockwatch status --sort change-24h` (or growth-7d, ...) worked the old count of every watched account out
of the hourly rollups to sort them: two index probes per account, 1.1-1.6 s at 100,000 accounts. The
values are now written with each account's samples (service/store/changes.py), and an index per
column serves a sort with a limit. On PostgreSQL the indexes are descending with nulls last, the order
of the default sort; SQLite reads a plain index either way. Existing accounts get their values from
what is stored, set-based. Written by hand.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.store.models import DescendingNullsLast

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "change_24h": sa.BigInteger(),
    "change_7d": sa.BigInteger(),
    "growth_24h": sa.Float(),
    "growth_7d": sa.Float(),
}


def upgrade() -> None:
    for name, kind in COLUMNS.items():
        op.add_column("accounts", sa.Column(name, kind, nullable=True))
        index = DescendingNullsLast(name)  # DESC NULLS LAST on PostgreSQL, plain on SQLite
        op.create_index(f"ix_accounts_{name}", "accounts", [index], unique=False)
    _fill()


def _fill() -> None:
    """The values of every account with a latest sample, by the rule the service writes them with."""
    from service.store import changes

    conn = op.get_bind()
    ids = conn.execute(sa.text("SELECT id FROM accounts WHERE latest_at IS NOT NULL")).scalars().all()
    changes.refresh(conn, ids)


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_index(f"ix_accounts_{name}", table_name="accounts")
        op.drop_column("accounts", name)
