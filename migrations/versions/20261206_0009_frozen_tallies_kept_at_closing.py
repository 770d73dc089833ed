"""Frozen tallies and turnout kept at closing, append-only like the ballots they count.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("ballot_tally", "ballot_turnout")


def upgrade() -> None:
    op.create_table(
        "ballot_tally",
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("amendment_id", sa.Integer(), nullable=False),
        sa.Column("organisation", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("clause_number", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("supports", sa.Integer(), nullable=False),
        sa.Column("opposes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["amendment_id"], ["amendment.id"], name=op.f("fk_ballot_tally_amendment_id_amendment")
        ),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultation.id"],
            name=op.f("fk_ballot_tally_consultation_id_consultation"),
        ),
        sa.PrimaryKeyConstraint(
            "consultation_id", "amendment_id", "organisation", name=op.f("pk_ballot_tally")
        ),
    )
    op.create_table(
        "ballot_turnout",
        sa.Column("consultation_id", sa.Integer(), nullable=False),
        sa.Column("organisation", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("voters", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultation.id"],
            name=op.f("fk_ballot_turnout_consultation_id_consultation"),
        ),
        sa.PrimaryKeyConstraint("consultation_id", "organisation", name=op.f("pk_ballot_turnout")),
    )

    # Consultations already closed get their counts from the ballots frozen then, in SQL
    # (not through app.tallies, so later changes to the models do not break this step).
    op.execute(
        "INSERT INTO ballot_tally"
        " (consultation_id, amendment_id, organisation, clause_number, kind, supports, opposes)"
        " SELECT consultation_id, amendment_id, organisation, clause_number, kind,"
        " SUM(CASE WHEN stance = 'support' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN stance = 'oppose' THEN 1 ELSE 0 END)"
        " FROM ballot GROUP BY consultation_id, amendment_id, organisation, clause_number, kind"
    )
    op.execute(
        "INSERT INTO ballot_turnout (consultation_id, organisation, voters)"
        " SELECT consultation_id, organisation, COUNT(DISTINCT user_id) FROM ballot"
        " WHERE user_id IS NOT NULL GROUP BY consultation_id, organisation"
    )

    # Append-only on both engines, as the ballots are (0004's triggers).
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            for event in ("UPDATE", "DELETE", "TRUNCATE"):
                row = "STATEMENT" if event == "TRUNCATE" else "ROW"
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"FOR EACH {row} EXECUTE FUNCTION ballot_append_only()"
                )
    else:
        for table in TABLES:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'frozen ballots cannot be changed'); END"
                )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        for event in ("update", "delete", "truncate"):
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_no_{event}"
                + (f" ON {table}" if postgresql else "")
            )
    op.drop_table("ballot_turnout")
    op.drop_table("ballot_tally")
