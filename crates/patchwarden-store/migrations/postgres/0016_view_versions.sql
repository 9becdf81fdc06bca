-- Counts the changes of what reading a host's findings depends on (its finding set and first
-- sightings, inventory head, labels, hostname, revocation): a server keeps the fleet's grouping
-- in memory and re-reads only the hosts whose count moved (`Store::view_versions`), through
-- the covering index (the host row itself is wide: its inventory head).
ALTER TABLE host ADD COLUMN view_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX host_view ON host (id, view_version)
