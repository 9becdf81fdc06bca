-- Report keys (idempotency of check-ins and heartbeats) are kept for a retention period only
-- (`Store::prune_reports`): at a check-in every 5 minutes a fleet writes 288 a host a day.
CREATE INDEX report_by_time ON report (received_at)
