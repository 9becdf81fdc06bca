-- Package sets stored once and shared (issue 15): most hosts of a fleet hold exactly the same
-- package versions, so a host points at its set (content-addressed by the SHA-256 of its JSON id
-- list) instead of carrying its own copy of ~1,000 ids. The existing hosts' lists are moved over
-- by the migration's own step (`migrate.rs`), then 0018 drops the per-host column.
CREATE TABLE package_set (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    package_ids TEXT NOT NULL,
    size BIGINT NOT NULL
);
ALTER TABLE host_package_set ADD COLUMN set_id BIGINT REFERENCES package_set (id);
CREATE INDEX host_package_set_by_set ON host_package_set (set_id)
