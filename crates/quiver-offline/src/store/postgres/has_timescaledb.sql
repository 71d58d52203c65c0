-- Whether the TimescaleDB extension is installed in this database.
SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'
