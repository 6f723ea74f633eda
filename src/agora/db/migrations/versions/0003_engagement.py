"""points ledger, badges, trust levels, tasks

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "engagement_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_cursor", sa.BigInteger(), nullable=False),
        sa.Column("item_cursor", sa.BigInteger(), nullable=False),
        sa.Column("rules", sa.String(length=64), nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_state")),
    )
    op.create_table(
        "engagement_tasks",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("starts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=True),
        sa.Column("first_on_item", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_tasks")),
        sa.UniqueConstraint("task_id", name=op.f("uq_engagement_tasks_task_id")),
    )
    op.create_table(
        "engagement_badges",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("badge", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("awarded", sa.DateTime(timezone=True), nullable=False),
        _user_fk("engagement_badges"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_badges")),
    )
    with op.batch_alter_table("engagement_badges", schema=None) as batch_op:
        batch_op.create_index("ix_engagement_badges_user", ["user_id", "badge"], unique=False)

    op.create_table(
        "engagement_days",
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        _user_fk("engagement_days"),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_engagement_days")),
    )
    op.create_table(
        "engagement_ledger",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("capped", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        _user_fk("engagement_ledger"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_ledger")),
    )
    with op.batch_alter_table("engagement_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_engagement_ledger_time", ["created"], unique=False)
        batch_op.create_index(
            "ix_engagement_ledger_user_time", ["user_id", "created"], unique=False
        )

    op.create_table(
        "engagement_totals",
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        _user_fk("engagement_totals"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_engagement_totals")),
    )
    op.create_table(
        "engagement_trust",
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        _user_fk("engagement_trust"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_engagement_trust")),
    )


def downgrade() -> None:
    op.drop_table("engagement_trust")
    op.drop_table("engagement_totals")
    with op.batch_alter_table("engagement_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_engagement_ledger_user_time")
        batch_op.drop_index("ix_engagement_ledger_time")

    op.drop_table("engagement_ledger")
    op.drop_table("engagement_days")
    with op.batch_alter_table("engagement_badges", schema=None) as batch_op:
        batch_op.drop_index("ix_engagement_badges_user")

    op.drop_table("engagement_badges")
    op.drop_table("engagement_tasks")
    op.drop_table("engagement_state")
