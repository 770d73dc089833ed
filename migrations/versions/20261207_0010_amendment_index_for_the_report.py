"""An index on a consultation's amendments by status, with their ids and authors.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00

The report joins the kept counts to a consultation's listed amendments (by id) and
counts their distinct authors: with this index both read only the index, not the
amendment rows with their wording (app.tallies.live_tallies,
app.reporting._proposers_by_organisation). The same plain index on both engines.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_amendment_consultation_status"
COLUMNS = ["consultation_id", "status", "id", "author_id"]


def upgrade() -> None:
    op.create_index(INDEX, "amendment", COLUMNS)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="amendment")
