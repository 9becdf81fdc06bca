#!/usr/bin/env python3
"""Times the C implementations on a pairs file, in-process (only the comparison loop is timed):
apt_pkg.version_compare (libapt-pkg, dpkg ordering) and rpm.labelCompare (librpm).
Run with Debian's /usr/bin/python3 (python3-apt, python3-rpm).

usage: vercmp_oracles.py deb|rpm PAIRS.tsv
"""
import sys, time

scheme, path = sys.argv[1], sys.argv[2]
pairs = [line.rstrip("\n").split("\t") for line in open(path)]
if scheme == "deb":
    import apt_pkg
    apt_pkg.init()
    cmp = apt_pkg.version_compare
    start = time.perf_counter()
    for a, b in pairs:
        cmp(a, b)
    elapsed = time.perf_counter() - start
    name = "apt_pkg.version_compare (libapt-pkg)"
else:
    import rpm
    def evr(s):
        e, rest = s.split(":", 1) if ":" in s else (None, s)
        v, r = rest.rsplit("-", 1) if "-" in rest else (rest, None)
        return (e, v, r)
    tuples = [(evr(a), evr(b)) for a, b in pairs]
    cmp = rpm.labelCompare
    start = time.perf_counter()
    for a, b in tuples:
        cmp(a, b)
    elapsed = time.perf_counter() - start
    name = "rpm.labelCompare (librpm, EVRs pre-split)"
print(f"{name}: {len(pairs)} pairs in {elapsed:.3f} s = {len(pairs)/elapsed/1e6:.2f} M comparisons/s")
