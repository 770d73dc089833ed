"""Organiser workflow: amendment flags, the append-only audit log, ballot keys and lifecycle times.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 15:03:51.648331
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultation_id", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["user_account.id"], name=op.f("fk_audit_entry_actor_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultation.id"],
            name=op.f("fk_audit_entry_consultation_id_consultation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_entry_consultation_id"), ["consultation_id"], unique=False
        )

    op.create_table(
        "amendment_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("amendment_id", sa.Integer(), nullable=False),
        sa.Column("reporter_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["amendment_id"],
            ["amendment.id"],
            name=op.f("fk_amendment_flag_amendment_id_amendment"),
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["user_account.id"],
            name=op.f("fk_amendment_flag_reporter_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amendment_flag")),
        sa.UniqueConstraint("amendment_id", "reporter_id", name="uq_amendment_flag"),
    )
    with op.batch_alter_table("amendment_flag", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amendment_flag_amendment_id"), ["amendment_id"], unique=False
        )

    with op.batch_alter_table("consultation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ballot_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("closed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("published_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("ballots_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    # Each existing consultation gets its own random key for ballot pseudonyms.
    connection = op.get_bind()
    ids = connection.execute(sa.text("SELECT id FROM consultation")).scalars().all()
    for consultation_id in ids:
        connection.execute(
            sa.text("UPDATE consultation SET ballot_key = :key WHERE id = :id"),
            {"key": secrets.token_hex(32), "id": consultation_id},
        )
    with op.batch_alter_table("consultation", schema=None) as batch_op:
        batch_op.alter_column(
            "ballot_key", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        )

    # The audit log is append-only: the database itself refuses to change an entry.
    if connection.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_entry_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit entries cannot be changed'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
            "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
            "BEGIN SELECT RAISE(ABORT, 'audit entries cannot be changed'); END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS audit_entry_no_update"
        + (" ON audit_entry" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    with op.batch_alter_table("consultation", schema=None) as batch_op:
        batch_op.drop_column("ballots_sha256")
        batch_op.drop_column("published_at")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("ballot_key")

    with op.batch_alter_table("amendment_flag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amendment_flag_amendment_id"))

    op.drop_table("amendment_flag")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_consultation_id"))

    op.drop_table("audit_entry")
