"""experiments, their arms, exposures and guardrail looks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 13:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def _ref(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "experiments",
        _id(),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("control", sa.String(length=64), nullable=False),
        sa.Column("planned_users", sa.Integer(), nullable=False),
        sa.Column("looks", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("ctr_window_hours", sa.Float(), nullable=False),
        sa.Column("retention_day", sa.Integer(), nullable=False),
        sa.Column("guardrails", sa.JSON(), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("external_id", name=op.f("uq_experiments_external_id")),
    )
    op.create_table(
        "experiment_arms",
        _id(),
        _ref("experiment_id"),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        _fk("experiment_arms", "experiment_id", "experiments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_arms")),
        sa.UniqueConstraint("experiment_id", "name", name="uq_experiment_arms_experiment_name"),
    )
    op.create_table(
        "experiment_exposures",
        _id(),
        _ref("experiment_id"),
        _ref("arm_id"),
        _ref("user_id"),
        sa.Column("first_exposed", sa.DateTime(timezone=True), nullable=False),
        _fk("experiment_exposures", "experiment_id", "experiments"),
        _fk("experiment_exposures", "arm_id", "experiment_arms"),
        _fk("experiment_exposures", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_exposures")),
        sa.UniqueConstraint(
            "experiment_id", "user_id", name="uq_experiment_exposures_experiment_user"
        ),
    )
    op.create_index(
        "ix_experiment_exposures_user", "experiment_exposures", ["user_id"], unique=False
    )
    op.create_table(
        "experiment_looks",
        _id(),
        _ref("experiment_id"),
        sa.Column("look", sa.Integer(), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("tripped", sa.Boolean(), nullable=False),
        sa.Column("tests", sa.JSON(), nullable=False),
        sa.Column("taken", sa.DateTime(timezone=True), nullable=False),
        _fk("experiment_looks", "experiment_id", "experiments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_looks")),
        sa.UniqueConstraint("experiment_id", "look", name="uq_experiment_looks_experiment_look"),
    )


def downgrade() -> None:
    op.drop_table("experiment_looks")
    op.drop_index("ix_experiment_exposures_user", table_name="experiment_exposures")
    op.drop_table("experiment_exposures")
    op.drop_table("experiment_arms")
    op.drop_table("experiments")
