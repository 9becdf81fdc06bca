-- Findings as facts, not documents (issue 15). What every host holding the same package version
-- shares is stored once: a finding key is one (release, installed package version, advisory entry)
-- verdict, content-addressed by the digest of its document (the verdict's evidence; advisory facts,
-- CVSS, KEV, EPSS, severity, risk and due dates are computed when read). A finding set is one
-- distinct list of keys, shared by every host that holds exactly those findings. Per host: which
-- set it holds, when its findings were first seen (one base time, and the keys seen at another
-- time), and one change row per evaluation that changed anything (the keys opened and closed):
-- first seen, closure and state changes (a key closed and another opened for the same package and
-- advisory) all follow from those rows. Id lists are JSON arrays, ascending.
DROP TABLE host_finding_cve;
DROP TABLE host_finding;
CREATE TABLE finding_key (
    id BIGSERIAL PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    package TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    state TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE finding_key_cve (
    cve TEXT NOT NULL,
    key_id BIGINT NOT NULL REFERENCES finding_key (id),
    PRIMARY KEY (cve, key_id)
);
CREATE TABLE finding_set (
    id BIGSERIAL PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    key_ids TEXT NOT NULL,
    size BIGINT NOT NULL
);
CREATE TABLE host_finding_set (
    host_id BIGINT PRIMARY KEY REFERENCES host (id),
    set_id BIGINT NOT NULL REFERENCES finding_set (id),
    -- When the findings of the set were first seen on the host, unless seen_other says otherwise:
    -- a JSON object from a time to the keys first seen then.
    seen_base TEXT NOT NULL,
    seen_other TEXT NOT NULL
);
CREATE INDEX host_finding_set_by_set ON host_finding_set (set_id);
CREATE TABLE finding_change (
    id BIGSERIAL PRIMARY KEY,
    host_id BIGINT NOT NULL REFERENCES host (id),
    changed_at TEXT NOT NULL,
    -- NULL: the host's first findings (everything in to_set opened).
    from_set BIGINT,
    to_set BIGINT NOT NULL,
    opened TEXT NOT NULL,
    closed TEXT NOT NULL
);
CREATE INDEX finding_change_by_host ON finding_change (host_id, id);
-- Counts the knowledge-base changes applied: every server empties its cache of the knowledge base
-- (matching index, verdicts) when it sees the count move.
CREATE TABLE kb_generation (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO kb_generation (id, generation) VALUES (1, 0);
-- Every host's findings are computed again in the new form.
UPDATE host SET findings_version = NULL
