#!/usr/bin/env python3
"""The same interface as `patchwarden vercmp --batch`, backed by the C libraries through Python:
reads `A<TAB>B` lines from stdin and prints `<`, `=` or `>` per line, so end-to-end times compare
like with like. Run with Debian's /usr/bin/python3.

usage: vercmp_oracle_batch.py deb|rpm < PAIRS.tsv > ANSWERS
"""
import sys

scheme = sys.argv[1]
if scheme == "deb":
    import apt_pkg
    apt_pkg.init()
    cmp = apt_pkg.version_compare
else:
    import rpm
    def evr(s):
        e, rest = s.split(":", 1) if ":" in s else (None, s)
        v, r = rest.rsplit("-", 1) if "-" in rest else (rest, None)
        return (e, v, r)
    def cmp(a, b):
        return rpm.labelCompare(evr(a), evr(b))
out = []
for line in sys.stdin:
    a, b = line.rstrip("\n").split("\t")
    r = cmp(a, b)
    out.append("<" if r < 0 else (">" if r > 0 else "="))
sys.stdout.write("\n".join(out) + "\n")
