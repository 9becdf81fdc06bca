-- Change requests: the document (scope, targets, lifecycle with its audit trail) as JSON, the state
-- and kind beside it for listing, and a version for optimistic updates (a transition is written only
-- over the version it was computed from).
CREATE TABLE change_request (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX change_request_by_state ON change_request (state, created_at)
