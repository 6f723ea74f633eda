"""stored heavy analytics results, per-item and per-comment sentiment, impressions by time

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 15:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sentiment_table(name: str, key: str, parent: str) -> None:
    op.create_table(
        name,
        sa.Column(key, BIG_ID, autoincrement=False, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("scored", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            [key], [f"{parent}.id"], name=op.f(f"fk_{name}_{key}_{parent}"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(key, name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    op.create_table(
        "analytics_results",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("requested", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_analytics_results")),
    )
    _sentiment_table("analytics_item_sentiment", "item_id", "items")
    _sentiment_table("analytics_comment_sentiment", "event_id", "events")
    with op.batch_alter_table("feed_impressions", schema=None) as batch_op:
        batch_op.create_index("ix_feed_impressions_served", ["served"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feed_impressions", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_impressions_served")
    op.drop_table("analytics_comment_sentiment")
    op.drop_table("analytics_item_sentiment")
    op.drop_table("analytics_results")
