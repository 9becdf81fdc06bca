#!/usr/bin/env bash
# Rebuilds data/snapshot: the small real-data knowledge base `scan --refresh` falls back to when the
# live feeds cannot be reached. Everything comes from tests/data (provenance: tests/data/SOURCES.md):
# the Debian tracker slices (merged into one tracker document), the AlmaLinux 9 / Rocky / Ubuntu /
# Debian OSV records, Alpine secdb v3.11, the CISA KEV catalog, the EPSS rows subset and the NVD
# records. Written as a bundle (manifest of sha256 digests, verified on import).
# usage: scripts/make-snapshot.sh [PATCHWARDEN_BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pw=${1:-$here/target/release/patchwarden}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
d=$here/tests/data
/usr/bin/python3 - "$d" "$work/debian-tracker.json" <<'PY'
import json, sys
d, out = sys.argv[1], sys.argv[2]
merged = {}
for name in ["osvdev-debian_security_tracker_mock.json", "vunnel-debian.json", "vulnerablecode-debian.json"]:
    for k, v in json.load(open(f"{d}/debian-tracker/{name}")).items():
        assert k not in merged, k
        merged[k] = v
json.dump(merged, open(out, "w"))
PY
"$pw" --db "$work/kb.db" feeds import \
  "$work/debian-tracker.json" \
  "$d/osv/almalinux9" "$d/osv/rocky" "$d/osv/ubuntu" "$d/osv/debian" \
  "$d/alpine-secdb/alpine-secdb-repo-v3.11-main.yaml" "$d/alpine-secdb/alpine-secdb-repo-v3.11-community.yaml" \
  "$d/kev/known_exploited_vulnerabilities.json" \
  "$d/epss/epss_scores-2026-09-29.rows-subset.csv" \
  "$d/nvd/api2.0" "$d/nvd/cve-objects" >/dev/null
rm -rf "$here/data/snapshot"
"$pw" --db "$work/kb.db" feeds export "$here/data/snapshot"
