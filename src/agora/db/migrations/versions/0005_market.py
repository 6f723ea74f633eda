"""campaigns, ad impressions, clicks and conversions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ad_campaigns",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("advertiser", sa.String(length=255), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("target_tags", sa.JSON(), nullable=False),
        sa.Column("target_segments", sa.JSON(), nullable=False),
        sa.Column("bid", sa.Float(), nullable=False),
        sa.Column("daily_budget", sa.Float(), nullable=False),
        sa.Column("frequency_cap", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("conversion_event", sa.String(length=32), nullable=False),
        sa.Column("conversion_value", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("holdout_salt", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_campaigns")),
        sa.UniqueConstraint("external_id", name=op.f("uq_ad_campaigns_external_id")),
    )
    op.create_table(
        "ad_eligibility",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["ad_campaigns.id"],
            name=op.f("fk_ad_eligibility_campaign_id_ad_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ad_eligibility_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_eligibility")),
        sa.UniqueConstraint("campaign_id", "user_id", name="uq_ad_eligibility_campaign_user"),
    )
    op.create_index("ix_ad_eligibility_user", "ad_eligibility", ["user_id"], unique=False)
    op.create_table(
        "ad_conversions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("conversion_id", sa.String(length=255), nullable=False),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["ad_campaigns.id"],
            name=op.f("fk_ad_conversions_campaign_id_ad_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_ad_conversions_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ad_conversions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_conversions")),
        sa.UniqueConstraint("conversion_id", name=op.f("uq_ad_conversions_conversion_id")),
    )
    op.create_index(
        "ix_ad_conversions_campaign_user",
        "ad_conversions",
        ["campaign_id", "user_id"],
        unique=False,
    )
    op.create_table(
        "ad_impressions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("nth", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("ctr", sa.Float(), nullable=False),
        sa.Column("served", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["ad_campaigns.id"],
            name=op.f("fk_ad_impressions_campaign_id_ad_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_ad_impressions_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ad_impressions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_impressions")),
        sa.UniqueConstraint("campaign_id", "user_id", "day", "nth", name="uq_ad_impressions_cap"),
    )
    op.create_index(
        "ix_ad_impressions_campaign_time", "ad_impressions", ["campaign_id", "served"], unique=False
    )
    op.create_index(
        "ix_ad_impressions_user_day", "ad_impressions", ["user_id", "day"], unique=False
    )
    op.create_table(
        "ad_clicks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "impression_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("clicked", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["ad_campaigns.id"],
            name=op.f("fk_ad_clicks_campaign_id_ad_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["impression_id"],
            ["ad_impressions.id"],
            name=op.f("fk_ad_clicks_impression_id_ad_impressions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ad_clicks_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_clicks")),
        sa.UniqueConstraint("impression_id", name=op.f("uq_ad_clicks_impression_id")),
    )
    op.create_index("ix_ad_clicks_campaign_day", "ad_clicks", ["campaign_id", "day"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ad_clicks_campaign_day", table_name="ad_clicks")
    op.drop_table("ad_clicks")
    op.drop_index("ix_ad_impressions_user_day", table_name="ad_impressions")
    op.drop_index("ix_ad_impressions_campaign_time", table_name="ad_impressions")
    op.drop_table("ad_impressions")
    op.drop_index("ix_ad_conversions_campaign_user", table_name="ad_conversions")
    op.drop_table("ad_conversions")
    op.drop_index("ix_ad_eligibility_user", table_name="ad_eligibility")
    op.drop_table("ad_eligibility")
    op.drop_table("ad_campaigns")
