"""events partitioned by month on PostgreSQL; event ids kept unique in the event_ids key table;
an index on events.timestamp (both databases)

PostgreSQL: ``events`` becomes a table partitioned by range on ``timestamp`` (one partition
per month, ``events_YYYY_MM``, for every month holding rows and the current one to three
months ahead, and ``events_default``); the rows are copied in id order, the id sequence is
kept. A partitioned table's unique constraints must hold the partition key, so ``event_id``
cannot stay unique on it: the unpartitioned ``event_ids`` (event_id -> id) keeps it unique,
filled by a BEFORE INSERT trigger that skips an event whose id is stored (as ``ON CONFLICT DO
NOTHING`` did; a bulk import writes the keys of its rows itself, set-based, and turns the
trigger off for its one statement: ``agora.db.partitions.KEYS_WRITTEN``) and emptied by an
AFTER DELETE trigger, which also removes the row's comment sentiment (its foreign key to
``events.id`` cannot exist any more: the primary key is (id, timestamp)). See
docs/postgresql-at-volume.md. SQLite keeps its plain table and only gets the new index.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 23:30:00
"""

from datetime import UTC, datetime

from alembic import op

from agora.db.partitions import (
    DEFAULT_PARTITION,
    KEY_TABLE,
    KEYS_WRITTEN,
    create_partition_sql,
    months_ahead,
    months_of,
)

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

COLUMNS = 'id, event_id, user_id, item_id, type, value, "timestamp", context'

KEY_FUNCTION = f"""
CREATE FUNCTION agora_event_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {KEY_TABLE} (event_id, id) VALUES (NEW.event_id, NEW.id)
        ON CONFLICT (event_id) DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    -- the same row moving to another month's partition (its timestamp changed) keeps its key
    PERFORM 1 FROM {KEY_TABLE} WHERE event_id = NEW.event_id AND id = NEW.id;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    RETURN NULL;  -- this event_id is stored: the event is skipped, as ON CONFLICT DO NOTHING did
END
$$
"""
GONE_FUNCTION = f"""
CREATE FUNCTION agora_event_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM events WHERE id = OLD.id) THEN  -- not moved: deleted
        DELETE FROM {KEY_TABLE} WHERE event_id = OLD.event_id AND id = OLD.id;
        DELETE FROM analytics_comment_sentiment WHERE event_id = OLD.id;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("events") as batch_op:
            batch_op.create_index("ix_events_timestamp", ["timestamp"], unique=False)
        return
    stored = months_of(op.get_bind(), "events", '"timestamp"')
    op.execute(
        f"CREATE TABLE {KEY_TABLE} (event_id varchar(255) NOT NULL, id bigint NOT NULL, "
        f"CONSTRAINT pk_{KEY_TABLE} PRIMARY KEY (event_id))"
    )
    op.execute(
        "CREATE TABLE events_partitioned ("
        "id bigint NOT NULL DEFAULT nextval('events_id_seq'), "
        "event_id varchar(255) NOT NULL, user_id bigint NOT NULL, item_id bigint NOT NULL, "
        'type varchar(32) NOT NULL, value double precision, "timestamp" timestamptz NOT NULL, '
        'context json NOT NULL) PARTITION BY RANGE ("timestamp")'
    )
    for start in sorted(set(stored) | set(months_ahead(datetime.now(UTC)))):
        op.execute(create_partition_sql(start, "events_partitioned"))
    op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF events_partitioned DEFAULT")
    op.execute(
        f"INSERT INTO events_partitioned ({COLUMNS}) SELECT {COLUMNS} FROM events ORDER BY id"
    )
    op.execute(f"INSERT INTO {KEY_TABLE} (event_id, id) SELECT event_id, id FROM events")
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events_partitioned.id")
    op.execute("DROP TABLE events CASCADE")  # and the comment sentiment's foreign key to it
    op.execute("ALTER TABLE events_partitioned RENAME TO events")
    op.execute('ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (id, "timestamp")')
    for column, parent in (("user_id", "users"), ("item_id", "items")):
        op.execute(
            f"ALTER TABLE events ADD CONSTRAINT fk_events_{column}_{parent} FOREIGN KEY "
            f"({column}) REFERENCES {parent} (id) ON DELETE CASCADE"
        )
    op.execute("CREATE INDEX ix_events_item ON events (item_id)")
    op.execute('CREATE INDEX ix_events_user_time ON events (user_id, "timestamp")')
    op.execute('CREATE INDEX ix_events_timestamp ON events ("timestamp")')
    op.execute(KEY_FUNCTION)
    op.execute(GONE_FUNCTION)
    op.execute(
        "CREATE TRIGGER events_key BEFORE INSERT ON events FOR EACH ROW "
        f"WHEN (current_setting('{KEYS_WRITTEN}', true) IS DISTINCT FROM 'on') "
        "EXECUTE FUNCTION agora_event_key()"
    )
    op.execute(
        "CREATE TRIGGER events_gone AFTER DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION agora_event_gone()"
    )
    op.execute("ANALYZE events")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("events") as batch_op:
            batch_op.drop_index("ix_events_timestamp")
        return
    op.execute(
        "CREATE TABLE events_plain ("
        "id bigint NOT NULL DEFAULT nextval('events_id_seq'), "
        "event_id varchar(255) NOT NULL, user_id bigint NOT NULL, item_id bigint NOT NULL, "
        'type varchar(32) NOT NULL, value double precision, "timestamp" timestamptz NOT NULL, '
        "context json NOT NULL)"
    )
    op.execute(f"INSERT INTO events_plain ({COLUMNS}) SELECT {COLUMNS} FROM events ORDER BY id")
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events_plain.id")
    op.execute("DROP TABLE events CASCADE")  # its partitions and triggers
    op.execute("DROP FUNCTION agora_event_key()")
    op.execute("DROP FUNCTION agora_event_gone()")
    op.execute(f"DROP TABLE {KEY_TABLE}")
    op.execute("ALTER TABLE events_plain RENAME TO events")
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT uq_events_event_id UNIQUE (event_id)")
    for column, parent in (("user_id", "users"), ("item_id", "items")):
        op.execute(
            f"ALTER TABLE events ADD CONSTRAINT fk_events_{column}_{parent} FOREIGN KEY "
            f"({column}) REFERENCES {parent} (id) ON DELETE CASCADE"
        )
    op.execute("CREATE INDEX ix_events_item ON events (item_id)")
    op.execute('CREATE INDEX ix_events_user_time ON events (user_id, "timestamp")')
    op.execute(
        "DELETE FROM analytics_comment_sentiment s "
        "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = s.event_id)"
    )
    op.execute(
        "ALTER TABLE analytics_comment_sentiment ADD CONSTRAINT "
        "fk_analytics_comment_sentiment_event_id_events FOREIGN KEY (event_id) "
        "REFERENCES events (id) ON DELETE CASCADE"
    )
