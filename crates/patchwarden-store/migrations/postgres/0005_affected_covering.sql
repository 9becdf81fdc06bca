-- A host scan finds its advisories through (distro, release, package) and needs only their keys:
-- with advisory_pk in the index the lookup never visits the affected table itself (one random page
-- per affected row before, see docs/benchmarks.md, "One host beside debsecan").
CREATE INDEX affected_by_package_advisory ON affected (distro, release, package, advisory_pk);
DROP INDEX affected_by_package;
