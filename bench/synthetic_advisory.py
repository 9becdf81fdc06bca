#!/usr/bin/env python3
"""Writes ONE SYNTHETIC OSV advisory (Debian 12) naming source packages, fixed in a version above any
installed one: a knowledge-base change that makes a finding on every host holding one of the packages
at INTRODUCED or above (default 0: every version) — for `KB_CHANGE=` of bench/fleet.sh. Marked: id
PW-SYNTHETIC-…, summary starting with "SYNTHETIC".

    synthetic_advisory.py PACKAGE[,PACKAGE…] OUT.json [ID] [INTRODUCED]
"""
import json
import sys

package, out = sys.argv[1], sys.argv[2]
ident = sys.argv[3] if len(sys.argv) > 3 else "PW-SYNTHETIC-2026-0001"
introduced = sys.argv[4] if len(sys.argv) > 4 else "0"
record = {
    "schema_version": "1.6.0",
    "id": ident,
    "modified": "2026-12-03T00:00:00Z",
    "published": "2026-12-03T00:00:00Z",
    "summary": "SYNTHETIC advisory for a benchmark: not a real vulnerability",
    "affected": [{
        "package": {"ecosystem": "Debian:12", "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": "99:0-1"}]}],
    } for name in package.split(",")],
}
json.dump(record, open(out, "w"), indent=1)
