"""differential privacy: the epsilon spent per UTC day and every released figure

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "privacy_dp_budget",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("releases", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_privacy_dp_budget")),
    )
    op.create_table(
        "privacy_dp_releases",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("period", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("figure", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("mechanism", sa.String(length=255), nullable=False),
        sa.Column("released", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_dp_releases")),
        sa.UniqueConstraint("key", "period", name="uq_privacy_dp_releases_key_period"),
    )
    op.create_index("ix_privacy_dp_releases_day", "privacy_dp_releases", ["day"])
    op.create_index(
        "ix_privacy_dp_releases_key_released", "privacy_dp_releases", ["key", "released"]
    )


def downgrade() -> None:
    op.drop_index("ix_privacy_dp_releases_key_released", table_name="privacy_dp_releases")
    op.drop_index("ix_privacy_dp_releases_day", table_name="privacy_dp_releases")
    op.drop_table("privacy_dp_releases")
    op.drop_table("privacy_dp_budget")
