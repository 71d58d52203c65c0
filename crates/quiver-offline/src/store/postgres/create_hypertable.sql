-- Turns a table into a TimescaleDB hypertable partitioned on event time; a no-op if it already is
-- one, and rows already in the table move into chunks.
-- $1: the quoted, schema-qualified table name.
SELECT create_hypertable(
    $1::text::regclass,
    'event_timestamp',
    if_not_exists => TRUE,
    migrate_data => TRUE
)
