-- The fleet: API users, enrollment tokens, enrolled hosts and their credentials, the reports they
-- sent (idempotency keys), the package versions they hold (each distinct version stored once,
-- hosts point at it), when each version appeared and disappeared on each host, and the findings
-- computed for each host. Secrets are stored as SHA-256 digests only.
CREATE TABLE api_user (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE enroll_token (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    uses_left BIGINT NOT NULL,
    labels TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE host (
    id BIGSERIAL PRIMARY KEY,
    hostname TEXT NOT NULL,
    machine_id TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    revoked_at TEXT,
    os TEXT,
    distro TEXT,
    release TEXT,
    inventory_digest TEXT,
    inventory_at TEXT,
    -- The last inventory without its packages (those are in host_package).
    inventory_doc TEXT,
    -- Counts the inventories stored; the findings record which one they were computed from
    -- (behind: to be recomputed; NULL: never, or the knowledge base changed).
    inventory_version BIGINT NOT NULL DEFAULT 0,
    -- Packages of the last inventory (the host list shows it without counting host_package).
    package_count BIGINT NOT NULL DEFAULT 0,
    findings_version BIGINT,
    findings_at TEXT
);
CREATE INDEX host_by_hostname ON host (hostname);
CREATE TABLE report (
    host_id BIGINT NOT NULL REFERENCES host (id),
    idempotency_key TEXT NOT NULL,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (host_id, idempotency_key)
);
CREATE TABLE package_version (
    id BIGSERIAL PRIMARY KEY,
    -- manager, name, version, arch, source name and source version joined by tabs: one lookup key.
    key TEXT NOT NULL UNIQUE,
    manager TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    arch TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_version TEXT NOT NULL
);
CREATE TABLE host_package (
    host_id BIGINT NOT NULL REFERENCES host (id),
    package_version_id BIGINT NOT NULL REFERENCES package_version (id),
    PRIMARY KEY (host_id, package_version_id)
);
CREATE TABLE package_history (
    host_id BIGINT NOT NULL REFERENCES host (id),
    package_version_id BIGINT NOT NULL REFERENCES package_version (id),
    appeared_at TEXT NOT NULL,
    disappeared_at TEXT
);
CREATE INDEX package_history_by_host ON package_history (host_id, package_version_id);
CREATE TABLE host_finding (
    host_id BIGINT NOT NULL REFERENCES host (id),
    package TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    kev BIGINT NOT NULL,
    overdue BIGINT NOT NULL,
    risk DOUBLE PRECISION NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (host_id, package, advisory_id)
);
CREATE TABLE host_finding_cve (
    cve TEXT NOT NULL,
    host_id BIGINT NOT NULL REFERENCES host (id),
    package TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (cve, host_id, package, advisory_id)
);
CREATE INDEX host_finding_cve_by_host ON host_finding_cve (host_id);
CREATE TABLE expected_asset (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    groups TEXT NOT NULL,
    imported_at TEXT NOT NULL
)
