"""feed candidates: the refresher's ready candidates per user, its progress, wanted users

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_candidates",
        sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("computed", sa.Float(), nullable=False),
    )
    op.create_table(
        "feed_refresh_marks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(4000), nullable=False),
    )
    op.create_table(
        "feed_refresh_wanted",
        sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    )


def downgrade() -> None:
    op.drop_table("feed_refresh_wanted")
    op.drop_table("feed_refresh_marks")
    op.drop_table("feed_candidates")
