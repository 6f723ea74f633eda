"""quality flags, reports and the review queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_ONLY = sa.text("status = 'open'")


def _id() -> sa.Column:
    return sa.Column("id", BIG_ID, autoincrement=True, nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "moderation_scores",
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("scored", sa.DateTime(timezone=True), nullable=False),
        _fk("moderation_scores", "item_id", "items"),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_moderation_scores")),
    )
    op.create_table(
        "moderation_cases",
        _id(),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("n_flags", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("opened", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        _fk("moderation_cases", "item_id", "items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_cases")),
    )
    with op.batch_alter_table("moderation_cases", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_cases_item", ["item_id"], unique=False)
        batch_op.create_index(
            "ix_moderation_cases_status_priority", ["status", "priority"], unique=False
        )
        batch_op.create_index(
            "uq_moderation_cases_open_item",
            ["item_id"],
            unique=True,
            sqlite_where=OPEN_ONLY,
            postgresql_where=OPEN_ONLY,
        )

    op.create_table(
        "moderation_flags",
        _id(),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("case_id", BIG_ID, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        _fk("moderation_flags", "case_id", "moderation_cases"),
        _fk("moderation_flags", "item_id", "items"),
        _fk("moderation_flags", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_flags")),
    )
    with op.batch_alter_table("moderation_flags", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_flags_case", ["case_id"], unique=False)
        batch_op.create_index("ix_moderation_flags_user", ["user_id"], unique=False)
        batch_op.create_index(
            "uq_moderation_flags_open_item_user",
            ["item_id", "user_id"],
            unique=True,
            sqlite_where=OPEN_ONLY,
            postgresql_where=OPEN_ONLY,
        )

    op.create_table(
        "moderation_decisions",
        _id(),
        sa.Column("case_id", BIG_ID, nullable=False),
        sa.Column("item_id", BIG_ID, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        _fk("moderation_decisions", "case_id", "moderation_cases"),
        _fk("moderation_decisions", "item_id", "items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_decisions")),
        sa.UniqueConstraint("case_id", name=op.f("uq_moderation_decisions_case_id")),
    )
    with op.batch_alter_table("moderation_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_decisions_item", ["item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("moderation_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_decisions_item")
    op.drop_table("moderation_decisions")
    with op.batch_alter_table("moderation_flags", schema=None) as batch_op:
        batch_op.drop_index("uq_moderation_flags_open_item_user")
        batch_op.drop_index("ix_moderation_flags_user")
        batch_op.drop_index("ix_moderation_flags_case")
    op.drop_table("moderation_flags")
    with op.batch_alter_table("moderation_cases", schema=None) as batch_op:
        batch_op.drop_index("uq_moderation_cases_open_item")
        batch_op.drop_index("ix_moderation_cases_status_priority")
        batch_op.drop_index("ix_moderation_cases_item")
    op.drop_table("moderation_cases")
    op.drop_table("moderation_scores")
