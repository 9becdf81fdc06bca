-- Jobs for agents (package operations with exact versions) and their reports. A job is queued,
-- delivered to its host's agent once (the long-poll), and finished by the host's report.
CREATE TABLE host_job (
    id TEXT PRIMARY KEY,
    host_id BIGINT NOT NULL REFERENCES host (id),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    -- The job as the agent receives it (model::job::PackageJob, JSON).
    doc TEXT NOT NULL,
    -- queued, delivered, succeeded, failed
    state TEXT NOT NULL,
    delivered_at TEXT,
    finished_at TEXT,
    -- The agent's report (model::job::JobReport, JSON).
    report TEXT
);
CREATE INDEX host_job_by_host ON host_job (host_id, state, created_at)
