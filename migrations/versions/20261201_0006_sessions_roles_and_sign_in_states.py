"""Sessions that end on the server, roles held by one verified address, single-use sign-in states.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch_op:
        batch_op.add_column(
            sa.Column("role_address", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True)
        )
        # A default for the rows already there (ALTER TABLE ADD COLUMN, no table copy).
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
        )
    # Roles granted before 0006 were given by address: they stay with the address the
    # identity has now, and only if it is verified (unverified holders lose them).
    op.execute(
        "UPDATE user_account SET role_address = email "
        "WHERE role != 'participant' AND email_verified"
    )
    op.execute(
        "UPDATE user_account SET role = 'participant' "
        "WHERE role != 'participant' AND NOT email_verified"
    )
    op.create_table(
        "sign_in_state",
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_sign_in_state")),
    )
    op.create_index(
        op.f("ix_sign_in_state_created_at"), "sign_in_state", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_in_state_created_at"), table_name="sign_in_state")
    op.drop_table("sign_in_state")
    with op.batch_alter_table("user_account") as batch_op:
        batch_op.drop_column("session_version")
        batch_op.drop_column("role_address")
