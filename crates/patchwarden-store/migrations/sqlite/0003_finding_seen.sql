-- When each finding was first and last seen on a host: deadlines counted from first detection
-- (FedRAMP, internal SLAs) need it, and it survives rescans.
CREATE TABLE finding_seen (
    host TEXT NOT NULL,
    package TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (host, package, advisory_id)
)
