"""analytics alert rules and alert episodes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_ONLY = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        "analytics_alert_rules",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=True),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("baseline_buckets", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("min_count", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_analytics_alert_rules_name")),
    )
    op.create_table(
        "analytics_alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("rule_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed", sa.DateTime(timezone=True), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("peak", sa.Float(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["analytics_alert_rules.id"],
            name=op.f("fk_analytics_alerts_rule_id_analytics_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_alerts")),
    )
    with op.batch_alter_table("analytics_alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analytics_alerts_status_opened", ["status", "opened"], unique=False
        )
        batch_op.create_index(
            "uq_analytics_alerts_open_rule_key",
            ["rule_id", "key"],
            unique=True,
            sqlite_where=OPEN_ONLY,
            postgresql_where=OPEN_ONLY,
        )


def downgrade() -> None:
    with op.batch_alter_table("analytics_alerts", schema=None) as batch_op:
        batch_op.drop_index("uq_analytics_alerts_open_rule_key")
        batch_op.drop_index("ix_analytics_alerts_status_opened")
    op.drop_table("analytics_alerts")
    op.drop_table("analytics_alert_rules")
