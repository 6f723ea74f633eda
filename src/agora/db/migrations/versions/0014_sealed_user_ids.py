"""pseudonymous user ids: room for a sealed id, and where the store records how its ids are kept

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 12:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_meta")),
    )
    # a sealed id is 16 bytes of pseudonym plus the id's UTF-8 bytes (up to 4 per character),
    # in base64: up to 1,382 characters for a 255-character id. SQLite keeps strings of any
    # length whatever the declared one (and recreating ``users`` there would cascade deletes).
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "users", "external_id", type_=sa.String(length=2048), existing_type=sa.String(255)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "users", "external_id", type_=sa.String(length=255), existing_type=sa.String(2048)
        )
    op.drop_table("store_meta")
