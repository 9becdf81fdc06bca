-- An advisory id is unique within its feed, not within its source: per-CVE sources publish one
-- statement per CVE in each feed (Alpine secdb: every release and repository).
ALTER TABLE advisory DROP CONSTRAINT advisory_source_id_key;
ALTER TABLE advisory ADD CONSTRAINT advisory_feed_id_key UNIQUE (feed, id)
