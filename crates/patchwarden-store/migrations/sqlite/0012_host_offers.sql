-- What each host's own repositories offer for its installed packages (model::updates::HostOffers,
-- JSON: the package manager's candidates and, on RPM systems, the update advisories), as its agent
-- last reported them: the server plans a set of hosts from these and their findings.
CREATE TABLE host_offers (
    host_id BIGINT PRIMARY KEY REFERENCES host (id),
    reported_at TEXT NOT NULL,
    doc TEXT NOT NULL
)
