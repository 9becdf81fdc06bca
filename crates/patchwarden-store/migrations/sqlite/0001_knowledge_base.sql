-- The knowledge base: feeds and their state, advisories with affected packages, CVE enrichment, KEV, EPSS.
CREATE TABLE feed (
    feed TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    record_count BIGINT NOT NULL DEFAULT 0,
    last_attempt TEXT,
    last_success TEXT,
    last_error TEXT,
    origin TEXT,
    sha256 TEXT,
    fetched_at TEXT,
    data_version TEXT,
    etag TEXT,
    http_last_modified TEXT
);
CREATE TABLE advisory (
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
    UNIQUE (source, id)
);
CREATE INDEX advisory_by_feed ON advisory (feed);
CREATE TABLE affected (
    advisory_pk BIGINT NOT NULL REFERENCES advisory (pk),
    distro TEXT,
    release TEXT,
    stream TEXT,
    package TEXT NOT NULL,
    key_kind TEXT NOT NULL,
    state TEXT NOT NULL,
    fixed_version TEXT,
    fixed_key BLOB
);
CREATE INDEX affected_by_package ON affected (distro, release, package);
CREATE INDEX affected_by_advisory ON affected (advisory_pk);
CREATE TABLE advisory_cve (
    advisory_pk BIGINT NOT NULL REFERENCES advisory (pk),
    cve TEXT NOT NULL
);
CREATE INDEX advisory_cve_by_cve ON advisory_cve (cve);
CREATE INDEX advisory_cve_by_advisory ON advisory_cve (advisory_pk);
CREATE TABLE cve (
    id TEXT PRIMARY KEY,
    published TEXT,
    last_modified TEXT,
    status TEXT,
    rejected INTEGER NOT NULL,
    best_score DOUBLE PRECISION,
    best_version TEXT,
    severity TEXT,
    origin TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE kev (
    cve TEXT PRIMARY KEY,
    date_added TEXT NOT NULL,
    due_date TEXT NOT NULL,
    known_ransomware_use INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE epss (
    cve TEXT PRIMARY KEY,
    score DOUBLE PRECISION NOT NULL,
    percentile DOUBLE PRECISION NOT NULL
)
