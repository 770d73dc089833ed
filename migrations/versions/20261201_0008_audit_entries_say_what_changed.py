"""Audit entries say what an edit changed (before -> after).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:10:00

The audit log is append-only (triggers refuse UPDATE and DELETE), so this only adds
a column; existing entries get '' (nothing recorded). A plain ADD COLUMN, not a
batch copy, keeps SQLite's triggers in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_entry", sa.Column("changes", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("audit_entry", "changes")
