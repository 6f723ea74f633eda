"""feed records compressed with lz4 on PostgreSQL, not pglz

A user's ready record (about 20 KB of candidate arrays) took pglz 3.5-10 ms to compress on
every write, most of a full refresh's time on PostgreSQL; lz4 takes 0.1-0.25 ms for the same
size on disk (measured on the bench community's records). A server built without lz4 stores
them uncompressed instead (about 60% larger). Records written before keep their compression
until the refresher rewrites them (every full refresh does). SQLite does not compress.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 20:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

LZ4_BUILT_IN = sa.text(
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.execute(LZ4_BUILT_IN).scalar():
        op.execute("ALTER TABLE feed_candidates ALTER COLUMN payload SET COMPRESSION lz4")
    else:
        op.execute("ALTER TABLE feed_candidates ALTER COLUMN payload SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE feed_candidates ALTER COLUMN payload SET STORAGE EXTENDED")
    op.execute("ALTER TABLE feed_candidates ALTER COLUMN payload SET COMPRESSION default")
