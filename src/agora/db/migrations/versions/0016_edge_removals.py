"""a log of removed social edges (the feed's workers tail it); feed records by store time

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "social_edge_removals",
        sa.Column("id", BigId, nullable=False),
        sa.Column("source_id", BigId, nullable=False),
        sa.Column("removed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["users.id"],
            name=op.f("fk_social_edge_removals_source_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_edge_removals")),
    )
    with op.batch_alter_table("feed_candidates") as batch:
        batch.alter_column("computed", new_column_name="stored")
    op.create_index("ix_feed_candidates_stored", "feed_candidates", ["stored"])


def downgrade() -> None:
    op.drop_index("ix_feed_candidates_stored", table_name="feed_candidates")
    with op.batch_alter_table("feed_candidates") as batch:
        batch.alter_column("stored", new_column_name="computed")
    op.drop_table("social_edge_removals")
