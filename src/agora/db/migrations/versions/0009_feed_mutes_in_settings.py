"""feed mutes live in feed_settings only: muted_authors, and mute feedback folded in

Before, a mute or unmute sent as feedback was kept in ``feed_feedback`` and replayed over the
settings' ``muted_tags`` at every page, so the settings route did not show it. This adds
``feed_settings.muted_authors`` (user primary keys), writes into each user's settings what the
feed applied (their ``muted_tags``, then each mute/unmute feedback row in order) and deletes
those feedback rows. Downgrade drops the column (muted authors are lost; muted tags stay).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:20:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MUTE_KINDS = ("mute_author", "mute_tag", "unmute_author", "unmute_tag")


def upgrade() -> None:
    with op.batch_alter_table("feed_settings") as batch:
        batch.add_column(
            sa.Column("muted_authors", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    conn = op.get_bind()
    settings = sa.table(
        "feed_settings",
        sa.column("user_id", sa.Integer),
        sa.column("followed_tags", sa.JSON),
        sa.column("muted_tags", sa.JSON),
        sa.column("muted_authors", sa.JSON),
        sa.column("updated", sa.DateTime(timezone=True)),
    )
    feedback = sa.table(
        "feed_feedback",
        sa.column("id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("author_id", sa.Integer),
        sa.column("tag", sa.String),
    )
    rows = conn.execute(
        sa.select(feedback.c.user_id, feedback.c.kind, feedback.c.author_id, feedback.c.tag)
        .where(feedback.c.kind.in_(MUTE_KINDS))
        .order_by(feedback.c.user_id, feedback.c.id)
    ).all()
    if not rows:
        return
    current = {
        user: (list(tags or []), list(authors or []))
        for user, tags, authors in conn.execute(
            sa.select(settings.c.user_id, settings.c.muted_tags, settings.c.muted_authors)
        )
    }
    folded: dict[int, tuple[list, list]] = {}
    for user, kind, author, tag in rows:
        tags, authors = folded.setdefault(user, current.get(user, ([], [])))
        target, value = (authors, author) if kind.endswith("_author") else (tags, tag)
        if value is None:
            continue
        if kind.startswith("mute_") and value not in target:
            target.append(value)
        elif kind.startswith("unmute_") and value in target:
            target.remove(value)
    now = datetime.now(UTC)
    for user, (tags, authors) in folded.items():
        values = {"muted_tags": tags, "muted_authors": authors, "updated": now}
        if user in current:
            conn.execute(settings.update().where(settings.c.user_id == user).values(**values))
        else:
            conn.execute(settings.insert().values(user_id=user, followed_tags=[], **values))
    conn.execute(feedback.delete().where(feedback.c.kind.in_(MUTE_KINDS)))


def downgrade() -> None:
    with op.batch_alter_table("feed_settings") as batch:
        batch.drop_column("muted_authors")
