-- Changes the rollout driver still has work on (approved standard changes waiting to be scheduled,
-- scheduled and running changes, and ended ones whose hosts are still rolling back): the driver
-- reads only these.
ALTER TABLE change_request ADD COLUMN active INTEGER NOT NULL DEFAULT 0;
CREATE INDEX change_request_active ON change_request (active, updated_at);
