"""feed settings, feedback and impressions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:07:18.853132
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_settings",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("diversity", sa.Float(), nullable=True),
        sa.Column("social_weight", sa.Float(), nullable=True),
        sa.Column("freshness", sa.Float(), nullable=True),
        sa.Column("exploration", sa.Float(), nullable=True),
        sa.Column("followed_tags", sa.JSON(), nullable=False),
        sa.Column("muted_tags", sa.JSON(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_feed_settings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_feed_settings")),
    )
    op.create_table(
        "feed_feedback",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("author_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("tag", sa.String(length=255), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_feed_feedback_author_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_feed_feedback_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_feed_feedback_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_feedback")),
    )
    with op.batch_alter_table("feed_feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feed_feedback_user_time", ["user_id", "created"], unique=False)

    op.create_table(
        "feed_impressions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("served", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_feed_impressions_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_feed_impressions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_impressions")),
    )
    with op.batch_alter_table("feed_impressions", schema=None) as batch_op:
        batch_op.create_index("ix_feed_impressions_item", ["item_id"], unique=False)
        batch_op.create_index(
            "ix_feed_impressions_user_session", ["user_id", "session"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feed_impressions", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_impressions_user_session")
        batch_op.drop_index("ix_feed_impressions_item")

    op.drop_table("feed_impressions")
    with op.batch_alter_table("feed_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_feedback_user_time")

    op.drop_table("feed_feedback")
    op.drop_table("feed_settings")
