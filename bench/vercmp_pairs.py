#!/usr/bin/env python3
"""Writes a benchmark input of N version pairs (`A<TAB>B` lines) per scheme, built from the real
version strings of tests/data/versions (each distinct real version is paired with others, in a fixed
pseudo-random order), so every implementation compares exactly the same pairs.

usage: vercmp_pairs.py OUTDIR [N]
"""
import os, random, re, sys

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "tests", "data", "versions")
files = {
    "deb": ["dpkg.tsv", "osv-scalibr-debian.tsv", "osv-scalibr-debian-generated.tsv"],
    "rpm": ["rpmvercmp.tsv", "osv-scalibr-redhat.tsv"],
    "apk": ["apk.tsv", "osv-scalibr-alpine-generated.tsv"],
}

def versions(scheme):
    out = set()
    for f in files[scheme]:
        with open(os.path.join(data, f)) as fh:
            next(fh)
            for line in fh:
                a, b = line.rstrip("\n").split("\t")[:2]
                out.update([a, b])
    ok = sorted(v for v in out if v and v.isascii() and " " not in v)
    if scheme == "rpm":  # installed packages and advisories always carry a release
        ok = [v if "-" in v else v + "-1.el9" for v in ok if ":" not in v.split("-")[0] or v.count(":") == 1]
        ok = [v for v in ok if not v.endswith("-") and not v.startswith("+")]
    if scheme == "apk":
        # apk-tools 3 rejects a digit after a letter (old OpenSSH-style "5.7.3p2-r1") and unknown suffixes
        ok = [v for v in ok if not re.search(r"[a-z][0-9]", v.split("_")[0]) and "_foo" not in v and "bc" not in v]
    return ok

def main():
    outdir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(20261122)
    for scheme in files:
        vs = versions(scheme)
        with open(os.path.join(outdir, f"{scheme}.tsv"), "w") as out:
            for _ in range(n):
                out.write(f"{rng.choice(vs)}\t{rng.choice(vs)}\n")
        print(f"{scheme}: {n} pairs from {len(vs)} distinct real versions")

main()
