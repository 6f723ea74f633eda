"""user erasures: the audit trail of people erased from the store and the models

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 09:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "user_erasures",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_pk", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.String(16), nullable=False),
        sa.Column("removed", sa.JSON(), nullable=False),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("retrain", sa.String(16), nullable=False),
        sa.Column("retrained", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retrained_versions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_erasures")),
    )


def downgrade() -> None:
    op.drop_table("user_erasures")
