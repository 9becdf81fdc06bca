-- What a knowledge-base write changed, so that only the hosts it can touch are re-evaluated.
-- doc_digest: SHA-256 of the stored document (provenance apart), compared by the next write of the
-- same feed (NULL on rows written before this migration: the first write after it counts them as
-- changed). kb_change: one row per write that changed something, written in the write's own
-- transaction and consumed by the server (Store::apply_knowledge_changes).
ALTER TABLE advisory ADD COLUMN doc_digest TEXT;
ALTER TABLE cve ADD COLUMN doc_digest TEXT;
CREATE TABLE kb_change (
    seq BIGSERIAL PRIMARY KEY,
    feed TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    -- JSON array of [distro or null, package name]: advisories naming these packages changed.
    packages TEXT NOT NULL,
    -- JSON array of CVE ids whose enrichment (NVD, KEV, EPSS) changed.
    cves TEXT NOT NULL
)
