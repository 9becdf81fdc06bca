-- An advisory id is unique within its feed, not within its source: per-CVE sources publish one
-- statement per CVE in each feed (Alpine secdb: every release and repository — CVE-2019-1551 is in
-- v3.11/main and v3.12/main). SQLite cannot drop a table constraint: the table is rebuilt (the
-- runner turns foreign keys off for SQLite migrations and checks them before committing).
CREATE TABLE advisory_v4 (
    pk INTEGER PRIMARY KEY,
    feed TEXT NOT NULL,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    published TEXT,
    modified TEXT,
    withdrawn TEXT,
    severity TEXT,
    origin TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (feed, id)
);
INSERT INTO advisory_v4 (pk, feed, source, id, published, modified, withdrawn, severity, origin, sha256, fetched_at, doc)
    SELECT pk, feed, source, id, published, modified, withdrawn, severity, origin, sha256, fetched_at, doc FROM advisory;
DROP TABLE advisory;
ALTER TABLE advisory_v4 RENAME TO advisory;
CREATE INDEX advisory_by_feed ON advisory (feed);
CREATE INDEX advisory_by_id ON advisory (id, source)
